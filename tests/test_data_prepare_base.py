"""Finding a raw tree inside what the user points at, and reporting what it lacks."""

import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare.base import find_root, listing, require


def _marked(folder):
    return (folder / "MARK").is_file()


def test_the_root_is_found_in_wrapper_folders(tmp_path):
    root = tmp_path / "download" / "Dataset_v2" / "data"
    root.mkdir(parents=True)
    (root / "MARK").write_text("")
    assert find_root(tmp_path, _marked, "X", "a MARK file") == root
    assert find_root(root, _marked, "X", "a MARK file") == root


def test_too_deep_missing_or_ambiguous_roots_are_errors(tmp_path):
    deep = tmp_path / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    (deep / "MARK").write_text("")
    with pytest.raises(UserError, match=r"does not hold the X download: expected a MARK file"):
        find_root(tmp_path, _marked, "X", "a MARK file", depth=3)
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "MARK").write_text("")
    with pytest.raises(UserError, match=r"holds several X trees .*one.*two"):
        find_root(tmp_path, _marked, "X", "a MARK file")


def test_a_missing_path_or_a_file_is_an_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        find_root(tmp_path / "nowhere", _marked, "X", "")
    (tmp_path / "f.zip").write_text("")
    with pytest.raises(UserError, match="is a file; give the folder"):
        find_root(tmp_path / "f.zip", _marked, "X", "")


def test_listing_and_require():
    assert listing(["a", "b"]) == "a, b"
    assert listing(range(5)) == "0, 1, 2 and 2 more"
    require([], None, "X")
    with pytest.raises(UserError, match="the X download at here is incomplete: p1, p2"):
        require(["p1", "p2"], "here", "X")
