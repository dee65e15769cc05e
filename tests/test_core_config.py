from pathlib import Path

from ultrabench_eval.core import config


def test_flag_beats_environment_beats_default(monkeypatch, tmp_path):
    monkeypatch.setenv("UBENCH_DATA", str(tmp_path / "env"))
    assert config.data_root("flagged") == Path("flagged")
    assert config.data_root() == tmp_path / "env"
    monkeypatch.delenv("UBENCH_DATA")
    assert config.data_root() == Path("data")
    monkeypatch.delenv("UBENCH_RESULTS")
    assert config.results_root() == Path("results/runs")
    monkeypatch.delenv("UBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.cache_root() == tmp_path / "xdg" / "ultrabench-eval"
