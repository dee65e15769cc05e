import errno
import json

import pytest

from ultrabench_eval.core import atomic
from ultrabench_eval.core.errors import UserError


def test_replace_and_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "r.json"
    atomic.write_json(path, {"a": 1})
    atomic.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "r.txt"
    atomic.write_text(path, "old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write_with(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.txt"]


def test_written_files_have_ordinary_permissions(tmp_path):
    import os
    import stat

    path = tmp_path / "r.json"
    atomic.write_json(path, {})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_a_full_disk_is_one_user_error_and_leaves_no_temporary_file(tmp_path):
    def fill_the_disk(path):
        path.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "record.json"
    with pytest.raises(UserError, match=r"cannot write .*record\.json: No space left on device"):
        atomic.write_with(target, fill_the_disk)
    assert list(tmp_path.iterdir()) == []
