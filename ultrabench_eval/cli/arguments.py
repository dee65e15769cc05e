"""What every command's parser shares: the one-line error parser and the flag value types."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

from ultrabench_eval.core import config
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.writable import check_writable_folder


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


Subparsers = Any  # argparse's private _SubParsersAction, as `add_subparsers` returns it


def csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def csv_tuple(text: str) -> tuple[str, ...]:
    return tuple(csv_list(text))


def fractions(text: str) -> tuple[float, ...]:
    """`1,0.1`, or in percent (any value above 1) `100,50,10,5,1`, as fractions in (0, 1]."""
    from ultrabench_eval.probes.fewshot import Budget

    try:
        values = tuple(float(v) for v in csv_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a comma-separated list of numbers"
        ) from None
    if any(v > 1.0 for v in values):
        values = tuple(v / 100.0 for v in values)
    try:
        if not values:
            raise ValueError("no fraction")
        for value in values:
            Budget(fraction=value)  # the budget's own limits
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"fractions must be in (0, 1] or (0, 100] %, got '{text}'"
        ) from None
    return values


def shots(text: str) -> tuple[int, ...]:
    """`1,5,10`: K training labels per class."""
    from ultrabench_eval.probes.fewshot import Budget

    try:
        values = tuple(int(v) for v in csv_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a comma-separated list of integers"
        ) from None
    try:
        if not values:
            raise ValueError("no shots")
        for value in values:
            Budget(shots=value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shots must be positive integers, got '{text}'") from None
    return values


def given(args: argparse.Namespace, **names: str) -> dict[str, Any]:
    """{parameter: value} of the flags the user gave (`parameter=attribute`), so that a
    library default applies to the others: those flags default to None in the parser."""
    values = {key: getattr(args, attribute) for key, attribute in names.items()}
    return {key: value for key, value in values.items() if value is not None}


def profile_path(text: str | None) -> Path | None:
    """`--profile PATH`, a file the command writes when the run ends: in a folder that exists
    and can be written, not itself a folder, a device or a pipe (a link: its target). Checked
    before any work; UserError otherwise."""
    if text is None:
        return None
    if not text.strip():
        raise UserError("--profile needs a file name, e.g. --profile run.prof")
    given = Path(text).expanduser()
    if given.is_dir():
        raise UserError(f"--profile: {given} is a folder: give a file name in it")
    # a link is written through (the file is replaced, not the link)
    path = given.resolve() if given.is_symlink() else given
    if path.exists() and not path.is_file():
        raise UserError(
            f"--profile: {given} is not a regular file (a device or a pipe): give a file name"
        )
    folder = path.parent
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise UserError(f"--profile: folder {folder} {what}: make it or pick another")
    check_writable_folder(folder, "--profile: folder", "--profile")
    return path


def profile_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="write a cProfile trace of the whole run to PATH (pstats format; the main "
        "process only, not the decoding workers); read it with `python -m pstats PATH` "
        "(then `sort cumtime` and `stats 30`) or view it with `snakeviz PATH`",
    )


def data_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help=f"dataset root (default: ${config.DATA_ENV} or ./data)")


def results_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results", help=f"results folder (default: ${config.RESULTS_ENV} or ./results/runs)"
    )


def cache_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", help=f"cache root (default: ${config.CACHE_ENV})")
