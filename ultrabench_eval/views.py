"""Views of the image store: the clean images, or a corruption at a severity, applied on the
device inside the scan mask, deterministically for a (seed, image id) whatever the batch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ultrabench_eval.errors import UserError
from ultrabench_eval.registry import CORRUPTIONS


@dataclass(frozen=True)
class View:
    corruption: str | None = None
    severity: int = 0
    seed: int = 0

    @classmethod
    def clean(cls) -> View:
        return cls()

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> View:
        """`clean`, or `<corruption>:<severity>` (e.g. `gaussian-noise:3`)."""
        if text == "clean":
            return cls.clean()
        name, sep, level = text.rpartition(":")
        if not sep or not level.isdigit():
            raise UserError(f"view '{text}' must be 'clean' or '<corruption>:<severity>'")
        corruption = CORRUPTIONS.get(name)
        severity = int(level)
        if not 1 <= severity <= corruption.max_severity:
            raise UserError(
                f"corruption '{name}' has severities 1..{corruption.max_severity}, not {severity}"
            )
        return cls(name, severity, seed)

    @property
    def is_clean(self) -> bool:
        return self.corruption is None

    @property
    def name(self) -> str:
        if self.is_clean:
            return "clean"
        return f"{self.corruption}-s{self.severity}-seed{self.seed}"

    def generators(self, ids: list[str], device: torch.device) -> list[torch.Generator]:
        """One random stream per image, from (seed, view, image id) alone."""
        out = []
        for image_id in ids:
            digest = hashlib.sha256(f"{self.seed}|{self.name}|{image_id}".encode()).digest()
            generator = torch.Generator(device=device)
            generator.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
            out.append(generator)
        return out

    def apply(self, images: torch.Tensor, masks: torch.Tensor, ids: list[str]) -> torch.Tensor:
        """uint8 [B, 1, H, W] -> uint8 [B, 1, H, W]; pixels outside the mask are unchanged."""
        if self.is_clean:
            return images
        corruption = CORRUPTIONS.get(self.corruption)
        x = images.float() / 255.0
        inside = masks.bool()
        changed = corruption.apply(x, inside, self.severity, self.generators(ids, images.device))
        out = torch.where(inside, changed.clamp(0.0, 1.0), x)
        return (out * 255.0).round_().to(torch.uint8)
