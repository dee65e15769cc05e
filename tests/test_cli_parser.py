"""The parser: every command and its help, and defaults that are the library's own."""

from __future__ import annotations

import dataclasses

import pytest

from ultrabench_eval.cli import bench as bench_cli
from ultrabench_eval.cli.parser import build_parser, main
from ultrabench_eval.core import config
from ultrabench_eval.features.extract_run import ExtractConfig
from ultrabench_eval.protocols.config import DEFAULT_REFERENCE, BenchConfig
from ultrabench_eval.protocols.robust import RobustConfig
from ultrabench_eval.protocols.sweep import ClusterOptions

COMMANDS = [
    "synth",
    "models",
    "tasks",
    "probes",
    "corruptions",
    "bench",
    "fewshot",
    "sweep",
    "extract",
    "cache",
    "leaderboard",
    "robust",
    "prepare",
    "export",
    "compare",
    "check",
    "plot",
    "report",
]


def test_help_lists_every_command_in_order(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    listed = out.split("{", 1)[1].split("}", 1)[0].split(",")
    assert listed == COMMANDS


@pytest.mark.parametrize(
    "argv",
    [[c] for c in COMMANDS]
    + [["tasks", "check"], ["tasks", "add"], ["corruptions", "show"], ["cache", "ls"]]
    + [["cache", "rm"]],
)
def test_every_command_has_help(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: ubench {' '.join(argv)}")


def test_bench_flags_left_out_give_the_library_defaults():
    args = build_parser().parse_args(["bench", "--model", "pixels", "--tasks", "synth-view"])
    built = bench_cli.bench_config(args)
    expected = BenchConfig(
        models=["pixels"],
        tasks=["synth-view"],
        data_root=config.data_root(),
        cache_root=config.cache_root(),
        results_root=config.results_root(),
    )
    assert built == expected


def test_extract_and_sweep_flags_left_out_give_the_library_defaults():
    parser = build_parser()
    args = parser.parse_args(["extract", "--model", "pixels", "--tasks", "synth-view"])
    expected = ExtractConfig(
        models=["pixels"],
        tasks=["synth-view"],
        data_root=config.data_root(),
        cache_root=config.cache_root(),
    )
    assert bench_cli.extract_config(args) == expected
    assert bench_cli.cluster_options(parser.parse_args(["sweep"])) == ClusterOptions()
    given = parser.parse_args(["sweep", "--mem-gb", "8", "--partition", "gpu"])
    assert bench_cli.cluster_options(given) == ClusterOptions(mem_gb=8, partition="gpu")


def test_robust_reference_default_is_the_protocols():
    args = build_parser().parse_args(["robust"])
    reference = next(f for f in dataclasses.fields(RobustConfig) if f.name == "reference")
    assert args.reference == DEFAULT_REFERENCE == reference.default


def test_probe_options_are_yaml_values_and_flags_join_them():
    args = build_parser().parse_args(
        [
            "bench",
            "--probe-option",
            "max_epochs=10",
            "--probe-option",
            "ks=[1, 5]",
            "--probe-backend",
            "sklearn",
            "--class-weight",
            "balanced",
        ]
    )
    assert bench_cli.probe_options(args) == {
        "max_epochs": 10,
        "ks": [1, 5],
        "backend": "sklearn",
        "class_weight": "balanced",
    }


def test_a_reader_that_stops_early_is_no_traceback(monkeypatch, capsys):
    import io
    import os
    import sys

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    monkeypatch.setattr(os, "dup2", lambda *args: None)  # keep the test's own stdout
    assert main(["tasks"]) == 141
    assert capsys.readouterr().err == ""
