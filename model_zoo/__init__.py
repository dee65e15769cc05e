"""Built-in model adapters, one module per family. Importing this package registers them all:
every module here is imported, so a new family needs no edit to this file."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
