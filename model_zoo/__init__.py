"""Built-in model adapters, one module per family. Importing this package registers them."""

from model_zoo import classical, timm_models  # noqa: F401
