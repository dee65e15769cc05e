"""A picture of the corruptions: one image of a task, a row per corruption, a column per
severity (the clean image first), so a person can judge the severities by eye.

`ubench corruptions show --task T --image N --out FILE.png` draws it (`write_grid`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ultrabench_eval.core import atomic
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import CORRUPTIONS, TASKS
from ultrabench_eval.corruptions.presets import PRESETS
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.image_store import decode_record, read_grayscale

LABEL_WIDTH = 150
HEADER = 22
GAP = 2
BACKGROUND = 255
INK = 0


def default_rows() -> list[str]:
    """Every suite's corruptions in suite order, any other registered one, then a composition."""
    rows: list[str] = []
    for preset in PRESETS.values():
        rows += [c for c in preset.corruptions if c not in rows]
    rows += [name for name in CORRUPTIONS.names() if name not in rows]
    return [*rows, "speckle+shadow"]


def render_grid(
    image: np.ndarray,
    mask: np.ndarray,
    image_id: str,
    rows: list[str],
    seed: int = 0,
) -> Image.Image:
    """The grid for one uint8 image [H, W] and its 0/1 mask [H, W]."""
    h, w = image.shape
    views = {spec: _views(spec, seed) for spec in rows}
    columns = max(len(v) for v in views.values())
    font = _font(13)
    width = LABEL_WIDTH + (columns + 1) * (w + GAP)
    height = HEADER + len(rows) * (h + GAP)
    canvas = Image.new("L", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((LABEL_WIDTH, 4), "clean", fill=INK, font=font)
    for s in range(1, columns + 1):
        draw.text((LABEL_WIDTH + s * (w + GAP), 4), f"severity {s}", fill=INK, font=font)
    images = torch.from_numpy(np.array(image, dtype=np.uint8)).view(1, 1, h, w)
    masks = torch.from_numpy(np.array(mask, dtype=np.uint8)).view(1, 1, h, w)
    for r, spec in enumerate(rows):
        top = HEADER + r * (h + GAP)
        draw.text((4, top + h // 2 - 8), spec, fill=INK, font=font)
        canvas.paste(Image.fromarray(image), (LABEL_WIDTH, top))
        for s, view in enumerate(views[spec], start=1):
            out = view.apply(images, masks, [image_id])[0, 0].numpy()
            canvas.paste(Image.fromarray(out), (LABEL_WIDTH + s * (w + GAP), top))
    return canvas


def _views(spec: str, seed: int) -> list[View]:
    parts = [CORRUPTIONS.get(p) for p in spec.split("+")]
    most = min(p.max_severity for p in parts)
    return [View.parse(f"{spec}:{s}", seed=seed) for s in range(1, most + 1)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def task_image(
    task: str, data_root: Path, index: int, split: str = "test", size: int | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """(image uint8 [S, S] or as stored, mask 0/1, id) of image `index` of a task's split."""
    dataset = open_dataset(TASKS.get(task), data_root)
    if split not in dataset.splits:
        raise UserError(f"task '{task}' has no split '{split}' (train, validation or test)")
    records = dataset.splits[split].records
    if not 0 <= index < len(records):
        raise UserError(
            f"--image {index} is outside the {split} split of '{task}' "
            f"({len(records)} images: 0..{len(records) - 1})"
        )
    record = records[index]
    if size is None:
        size = max(read_grayscale(dataset.root / record.image).shape)
    image, mask = decode_record(dataset.root, record, size)
    return image, mask, record.image


def write_grid(
    out: Path,
    task: str,
    data_root: Path,
    index: int,
    rows: list[str] | None = None,
    split: str = "test",
    size: int | None = None,
    seed: int = 0,
) -> Path:
    """Render the grid for image `index` of the task and write it to `out` (PNG)."""
    if Path(out).suffix.lower() != ".png":
        raise UserError(f"--out {out} must be a .png file")
    rows = rows or default_rows()
    for spec in rows:
        _views(spec, seed)  # unknown names fail here, before any work
    image, mask, image_id = task_image(task, data_root, index, split, size)
    grid = render_grid(image, mask, image_id, rows, seed)
    atomic.write_with(out, lambda tmp: grid.save(tmp, format="PNG"))
    return Path(out)
