"""Published weights fetched once into the cache's weights folder: files on the Hugging Face hub
through `huggingface_hub` (cached, resumable, at a revision), plain URLs (Meta's
dl.fbaipublicfiles, university servers...) through torch.hub's download. Both answer the file and
the weights id that reaches the result record: where the file came from and its sha256."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.weights import file_sha256

# what every failed download suggests (an adapter may say which file to pass)
PASS_THE_FILE = "download the file yourself and pass it with --weights FILE"


class DownloadError(UserError):
    """A download that failed: one line naming the source, the reason and the way round it."""

    def __init__(self, source: str, reason: str, fix: str = PASS_THE_FILE) -> None:
        super().__init__(f"cannot download {source}: {reason} ({fix})")
        self.source = source
        self.reason = reason


@dataclass(frozen=True)
class Downloaded:
    """A weights file in the cache and the weights id naming it."""

    path: Path
    weights_id: str


def weights_folder() -> Path:
    from ultrabench_eval.core.config import cache_root

    return cache_root() / "weights"


def first_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def hub_label(repo_id: str, filename: str, revision: str | None) -> str:
    at = f"@{revision}" if revision else ""
    return f"hf-hub:{repo_id}/{filename}{at}"


def download_hub_file(
    repo_id: str, filename: str, revision: str | None = None, fix: str = PASS_THE_FILE
) -> Downloaded:
    """`filename` of the hub repository `repo_id` at `revision` (a commit hash pins it; None is
    the main branch). The weights id names the commit the file came from, so a record says
    which revision it was computed with even where none is pinned."""
    import huggingface_hub

    try:
        path = huggingface_hub.hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=str(weights_folder())
        )
    except Exception as exc:  # hub errors come in many types
        raise DownloadError(hub_label(repo_id, filename, revision), first_line(exc), fix) from None
    path = Path(path)
    commit = snapshot_commit(path) or revision
    return Downloaded(path, f"{hub_label(repo_id, filename, commit)}:sha256={file_sha256(path)}")


def snapshot_commit(path: Path) -> str | None:
    """The commit a hub file was downloaded at: huggingface_hub's cache keeps every file under
    `models--<org>--<name>/snapshots/<commit>/`."""
    parts = path.parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i - 1] == "snapshots" and parts[i - 2].startswith("models--"):
            return parts[i]
    return None


def download_url(url: str, folder: str, fix: str = PASS_THE_FILE) -> Downloaded:
    """The file at `url`, downloaded once into the weights folder's `folder` (torch.hub writes
    to a temporary name and renames it when complete: no half files in the cache)."""
    import torch.hub

    path = weights_folder() / folder / url.rsplit("/", 1)[-1]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), progress=True)
        except Exception as exc:  # network errors come in many types
            raise DownloadError(url, first_line(exc), fix) from None
    return Downloaded(path, f"url:{url}:sha256={cached_file_sha256(path)}")


def cached_file_sha256(path: Path) -> str:
    """sha256 of a large downloaded file, remembered beside it (keyed on size and mtime) so that
    every load does not re-read gigabytes."""
    stat = path.stat()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        saved_stamp, _, digest = sidecar.read_text().strip().partition(" ")
        if saved_stamp == stamp and digest:
            return digest
    digest = file_sha256(path)
    sidecar.write_text(f"{stamp} {digest}\n")
    return digest
