import pytest
from conftest import make_dataset

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.features import cache_admin


@pytest.fixture
def filled_cache(tmp_path, monkeypatch, capsys):
    card = make_dataset(tmp_path / "data", counts={"train": 6, "validation": 2, "test": 2})
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "toy.yaml").write_text(f"name: toy\ndataset: {card.dataset}\nclasses: [a, b]\n")
    monkeypatch.setenv("UBENCH_TASKS", str(cards))
    from ultrabench_eval.core.registry import TASKS

    monkeypatch.setattr(TASKS, "_populated", False)
    cache = tmp_path / "cache"
    for model in ("pixels", "hog"):
        assert (
            main(
                [
                    "extract",
                    "--model",
                    model,
                    "--tasks",
                    "toy",
                    "--data",
                    str(tmp_path / "data"),
                    "--cache",
                    str(cache),
                    "--no-progress",
                ]
            )
            == 0
        )
    capsys.readouterr()
    return cache


def test_extract_then_list(filled_cache, capsys):
    found = cache_admin.entries(filled_cache)
    kinds = sorted((e.kind, e.name) for e in found)
    assert kinds.count(("features", "pixels")) == 3 and kinds.count(("features", "hog")) == 3
    # pixels (32 px, area) and hog (128 px, bilinear) each have their own stores
    assert kinds.count(("images", "toy_v1")) == 6
    assert main(["cache", "ls", "--cache", str(filled_cache)]) == 0
    out = capsys.readouterr().out
    assert "toy/train/clean [raw 1024]" in out and "train 32px area" in out
    assert "12 entries" in out


def test_rm_by_model_and_dry_run(filled_cache, capsys):
    assert main(["cache", "rm", "--cache", str(filled_cache), "--model", "hog", "--dry-run"]) == 0
    assert "3 entries, would free" in capsys.readouterr().out
    assert len(cache_admin.entries(filled_cache)) == 12
    assert main(["cache", "rm", "--cache", str(filled_cache), "--model", "hog"]) == 0
    left = cache_admin.entries(filled_cache)
    assert not [e for e in left if e.name == "hog"] and len(left) == 9


def test_rm_images_and_everything(filled_cache):
    found = cache_admin.entries(filled_cache)
    assert {e.kind for e in cache_admin.select(found, images=True)} == {"images"}
    assert cache_admin.select(found, datasets=["other_v1"]) == []
    cache_admin.remove(cache_admin.select(found, everything=True))
    assert cache_admin.entries(filled_cache) == []


def test_rm_needs_a_filter(filled_cache):
    with pytest.raises(UserError, match="say what to remove"):
        cache_admin.select(cache_admin.entries(filled_cache))
