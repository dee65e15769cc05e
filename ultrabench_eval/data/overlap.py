"""Train/validation/test overlap: an image (by path or by content) or a group (patient, source
video) in two splits. A test image seen in training inflates the scores.

Content is compared by a digest of each file's bytes. Reading every file costs about as much as
decoding them once, so the digests are kept in the cache (`images/<dataset>/.file-digests.json`,
keyed by path, size and modification time) and a later run only stats the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ultrabench_eval.core.atomic import write_text
from ultrabench_eval.data.task_card import SPLITS, TaskCard

if TYPE_CHECKING:
    from ultrabench_eval.data.dataset import Split

DIGESTS_FILE = ".file-digests.json"


def file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_overlap(
    card: TaskCard, splits: dict[str, Split], digest_cache: Path | None, by_content: bool = True
) -> list[str]:
    """One line per kind of overlap between two splits: which splits, how many, an example."""
    found = _shared("image path", _places(splits, lambda s: (r.image for r in s.records)))
    if by_content:
        digests = ContentDigests(card.dataset, digest_cache)
        found += _shared(
            "image content",
            _places(splits, lambda s: (digests.of(s.root / r.image) for r in s.records)),
            # the same path is already reported above
            examples=lambda split, index: splits[split].records[index].image,
            skip_same_path=splits,
        )
        digests.save()
    if card.group_field:
        field_name = card.group_field
        found += _shared(
            f"{field_name}",
            _places(splits, lambda s: (r.group for r in s.records)),
        )
    return found


def _places(splits: dict[str, Split], keys) -> dict[object, list[tuple[str, int]]]:
    """key -> [(split, record index)] for every record whose key is not None."""
    where: dict[object, list[tuple[str, int]]] = defaultdict(list)
    for name in SPLITS:
        if name not in splits:
            continue
        for index, key in enumerate(keys(splits[name])):
            if key is not None:
                where[key].append((name, index))
    return where


def _shared(what, where, examples=None, skip_same_path=None) -> list[str]:
    pairs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, places in where.items():
        names = [s for s in SPLITS if any(p[0] == s for p in places)]
        if len(names) < 2:
            continue
        if skip_same_path is not None:
            paths = {skip_same_path[s].records[i].image for s, i in places}
            if len(paths) == 1:
                continue
        first = next(i for s, i in places if s == names[0])
        example = examples(names[0], first) if examples else str(key)
        for a, b in _pairs(names):
            pairs[(a, b)].append(example)
    return [
        f"{a}.json and {b}.json share {len(shown)} {what}(s) (e.g. {shown[0]})"
        for (a, b), shown in pairs.items()
    ]


def _pairs(names: list[str]) -> Iterable[tuple[str, str]]:
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            yield a, b


class ContentDigests:
    """Digests of files' bytes, kept between runs in the cache when there is one."""

    def __init__(self, dataset: str, cache_root: Path | None):
        folder = None if cache_root is None else Path(cache_root) / "images" / dataset
        self.path = None if folder is None else folder / DIGESTS_FILE
        self.known: dict[str, list] = {}
        self.changed = False
        if self.path is not None:
            try:
                loaded = json.loads(self.path.read_text())
                self.known = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                pass

    def of(self, path: Path) -> str | None:
        try:
            stat = path.stat()
        except OSError:
            return None  # a missing file is reported elsewhere
        key = str(path.resolve())
        entry = self.known.get(key)
        if isinstance(entry, list) and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(entry[2])
        digest = file_digest(path)
        self.known[key] = [stat.st_size, stat.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        # only a speed-up: an unwritable cache is reported when a store is built
        with contextlib.suppress(OSError):
            write_text(self.path, json.dumps(self.known))
