"""Downloads of published weights: what huggingface_hub and torch.hub are asked for (repository,
file, revision, cache folder), what the weights id then records, and failures as one line."""

import hashlib
import os
from pathlib import Path

import huggingface_hub
import pytest
import torch

from ultrabench_eval.core.config import cache_root
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.downloads import (
    DownloadError,
    cached_file_sha256,
    download_hub_file,
    download_url,
    snapshot_commit,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONTENT = b"weights"
SHA = hashlib.sha256(CONTENT).hexdigest()


def fake_hub(calls):
    """hf_hub_download as huggingface_hub lays its cache out: snapshots/<commit>/<file>."""

    def download(repo_id, filename, revision=None, cache_dir=None, **kwargs):
        calls.append({"repo_id": repo_id, "filename": filename, "revision": revision, **kwargs})
        calls[-1]["cache_dir"] = cache_dir
        folder = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}" / "snapshots" / COMMIT
        folder.mkdir(parents=True, exist_ok=True)
        (folder / filename).write_bytes(CONTENT)
        return str(folder / filename)

    return download


def test_hub_file_lands_in_the_weights_folder_and_its_commit_reaches_the_weights_id(monkeypatch):
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hub(calls))
    downloaded = download_hub_file("org/model", "model.safetensors")
    assert calls == [
        {
            "repo_id": "org/model",
            "filename": "model.safetensors",
            "revision": None,
            "cache_dir": str(cache_root() / "weights"),
        }
    ]
    assert downloaded.path.read_bytes() == CONTENT
    assert downloaded.weights_id == f"hf-hub:org/model/model.safetensors@{COMMIT}:sha256={SHA}"


def test_a_pinned_revision_is_asked_for(monkeypatch):
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hub(calls))
    downloaded = download_hub_file("org/model", "f.pth", revision=COMMIT)
    assert calls[0]["revision"] == COMMIT
    assert f"@{COMMIT}:sha256=" in downloaded.weights_id


def test_a_pinned_revision_is_recorded_where_the_path_does_not_name_it(monkeypatch, tmp_path):
    (tmp_path / "f.pth").write_bytes(CONTENT)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: str(tmp_path / "f.pth"))
    pinned = download_hub_file("org/model", "f.pth", revision="v1.0")
    assert pinned.weights_id == f"hf-hub:org/model/f.pth@v1.0:sha256={SHA}"
    unpinned = download_hub_file("org/model", "f.pth")
    assert unpinned.weights_id == f"hf-hub:org/model/f.pth:sha256={SHA}"


def test_snapshot_commit_reads_huggingface_hubs_cache_layout():
    path = Path("/c/models--a--b/snapshots") / COMMIT / "sub" / "f.pth"
    assert snapshot_commit(path) == COMMIT
    assert snapshot_commit(Path("/c/models--a--b/snapshots") / COMMIT / "f.pth") == COMMIT
    assert snapshot_commit(Path("/somewhere/f.pth")) is None


def test_hub_failure_is_one_line_with_the_fix(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network\nsecond line")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(DownloadError) as caught:
        download_hub_file("org/model", "f.pth", revision="abc", fix="pass f.pth with --weights")
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    assert message == (
        "cannot download hf-hub:org/model/f.pth@abc: OSError: no network "
        "(pass f.pth with --weights)"
    )
    assert caught.value.reason == "OSError: no network"


def test_url_file_is_downloaded_once_into_its_folder(monkeypatch):
    calls = []

    def fake_download(url, dst, **kwargs):
        calls.append((url, dst))
        Path(dst).write_bytes(CONTENT)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    url = "https://example.org/files/w.pth"
    first = download_url(url, "family")
    second = download_url(url, "family")
    target = cache_root() / "weights" / "family" / "w.pth"
    assert calls == [(url, str(target))]
    assert first == second and first.path == target
    assert first.weights_id == f"url:{url}:sha256={SHA}"


def test_url_failure_is_a_user_error_and_leaves_nothing(monkeypatch):
    def unreachable(url, dst, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(
        UserError, match=r"^cannot download https://x.org/w.pth: OSError: .*--weights"
    ):
        download_url("https://x.org/w.pth", "family")
    assert not (cache_root() / "weights" / "family" / "w.pth").exists()


def test_file_hash_is_remembered_until_the_file_changes(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(CONTENT)
    assert cached_file_sha256(path) == SHA
    sidecar = tmp_path / "w.pth.sha256"
    stamp = sidecar.read_text().split()[0]
    sidecar.write_text(f"{stamp} remembered\n")
    assert cached_file_sha256(path) == "remembered"  # not read again
    path.write_bytes(b"other weights")
    os.utime(path, ns=(1, 1))
    assert cached_file_sha256(path) == hashlib.sha256(b"other weights").hexdigest()
