"""The `ubench` command line. User errors end as one line on stderr and exit code 2.

Each command's flags are built next to its handler (`catalogue`, `data`, `bench`, `reports`);
this module puts them together and runs the one asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from ultrabench_eval.cli import bench, catalogue, data, hub_export, reports
from ultrabench_eval.cli.arguments import OneLineParser, Subparsers
from ultrabench_eval.core.errors import UserError

# In the order `ubench --help` lists them.
_COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    data.add_synth,
    catalogue.add_models,
    catalogue.add_tasks,
    catalogue.add_probes,
    catalogue.add_corruptions,
    bench.add_bench,
    bench.add_fewshot,
    bench.add_sweep,
    bench.add_extract,
    data.add_cache,
    reports.add_leaderboard,
    bench.add_robust,
    data.add_prepare,
    hub_export.add_export,
    reports.add_compare,
    reports.add_check,
    reports.add_plot,
    reports.add_report,
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="ubench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="on an error, also print its full detail (the traceback of what caused it)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for add_command in _COMMANDS:
        add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as exc:
        if args.verbose and exc.__cause__ is not None:
            # the detail a one-line error leaves out (e.g. torch's own text), before that line
            sys.stderr.write("".join(traceback.format_exception(exc.__cause__)))
        sys.stderr.write(f"ubench {args.command}: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ubench: interrupted; finished work is kept, run again to resume\n")
        return 130
    except BrokenPipeError:
        # the reader went away (`ubench tasks | head`): stop quietly, as other tools do; stdout
        # points at /dev/null so the interpreter's final flush does not fail again
        with contextlib.suppress(OSError, ValueError):  # a stdout that is not a file
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
