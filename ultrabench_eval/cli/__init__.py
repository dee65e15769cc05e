"""The `ubench` command line: the only place that sees argparse."""

from ultrabench_eval.cli.parser import main

__all__ = ["main"]
