"""The installed `ultrabench` package's processors, called as library functions.

Three things are fixed around each call so that its output is the same on every machine and
its failures read as one line:

- Directory listings are sorted. ultrabench 1.0.1 reads `glob.glob` and `os.listdir` in the
  order the filesystem returns, and its AUL split (a stratified shuffle over rows in that
  order) changes with it; sorted, the split is the same everywhere (and every JSON file is
  written in the same order).
- pandas' string inference is off. Under pandas 3 a missing value in a text column becomes
  NaN, which ultrabench 1.0.1 (written for pandas 2) takes for a path: AUL's image without
  a liver outline then crashes it.
- Its prints and warnings are kept off the terminal; an assertion or crash becomes a UserError
  naming the processor, the raw folder and the layout it expects.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from unittest import mock

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare.base import Preparer


def processor_module(name: str) -> ModuleType:
    """`ultrabench.datasets.<name>` (the package re-exports the functions under the same
    names, so the module is imported by its full path)."""
    try:
        return importlib.import_module(f"ultrabench.datasets.{name}")
    except ImportError as exc:
        raise UserError(
            f"cannot import ultrabench's {name} processor ({exc}); install it with "
            "`pip install ultrabench==1.0.1`"
        ) from None


def output_folder(module: ModuleType, attribute: str = "OUTPUT_NAME") -> str:
    """The folder the processor writes: its name template filled with the installed version."""
    return getattr(module, attribute).format(module.__version__)


def run_processor(name: str, raw: Path, out: Path, layout: str) -> None:
    """Run `ultrabench.datasets.<name>.<name>(raw, out)`; failures become one UserError."""
    module = processor_module(name)
    function = getattr(module, name)
    log = io.StringIO()
    try:
        with (
            _sorted_listings(),
            _pandas2_strings(),
            contextlib.redirect_stdout(log),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            function(str(raw), str(out))
    except Exception as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        last = [line for line in log.getvalue().splitlines() if line.strip()][-1:]
        after = f" after '{last[0].strip()}'" if last else ""
        raise UserError(
            f"ultrabench {module.__version__}'s {name} processor failed on {raw}{after}: "
            f"{type(exc).__name__}: {detail} (expected {layout})"
        ) from None


@contextlib.contextmanager
def _sorted_listings() -> Iterator[None]:
    def sort(function: Callable) -> Callable:
        return lambda *args, **kwargs: sorted(function(*args, **kwargs))

    with (
        mock.patch.object(glob, "glob", sort(glob.glob)),
        mock.patch.object(os, "listdir", sort(os.listdir)),
    ):
        yield


@contextlib.contextmanager
def _pandas2_strings() -> Iterator[None]:
    import pandas as pd

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the option is deprecated in pandas 3
            previous = pd.get_option("future.infer_string")
            pd.set_option("future.infer_string", False)
    except pd.errors.OptionError:  # pandas 4 has no such option (and no pandas-2 strings)
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pd.set_option("future.infer_string", previous)


def ultrabench_preparer(
    *,
    name: str,
    dataset: str,
    layout: str,
    download: str,
    split: str,
    locate: Callable[[Path], Path],
    output_attribute: str = "OUTPUT_NAME",
) -> Preparer:
    """A preparer that runs ultrabench's `<name>` processor and keeps the folder `dataset`
    (AUL's processor writes a mass and a liver folder; only `dataset` is kept)."""

    def write(root: Path, out: Path) -> None:
        module = processor_module(name)
        produced = output_folder(module, output_attribute)
        if produced != dataset:
            raise UserError(
                f"the installed ultrabench {module.__version__} writes {produced}, but the task "
                f"card expects {dataset}; install the version the card names "
                f"(`pip install ultrabench=={dataset.rsplit('_v', 1)[-1]}`), since splits can "
                "change between versions"
            )
        run_processor(name, root, out, layout)
        if not (out / dataset).is_dir():
            raise UserError(f"ultrabench's {name} processor wrote no {dataset} folder from {root}")

    return Preparer(
        id=f"ultrabench:{name}",
        dataset=dataset,
        layout=layout,
        download=download,
        split=split,
        locate=locate,
        write=write,
    )
