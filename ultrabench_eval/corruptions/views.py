"""Views of the image store: the clean images, or a corruption at a severity, applied on the
device inside the scan mask, deterministically for a (seed, image id) whatever the batch.

A view names one corruption (`speckle:3`) or several applied in turn at the same severity
(`speckle+shadow:3`), each with its own random stream per image. Between steps and at the end
the image is clipped to [0, 1] and the outside of the scan mask put back as it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import CORRUPTIONS
from ultrabench_eval.corruptions.base import to_bytes

# On a CPU, corrupt this many pixels at a time: the intermediates of a chunk stay in the cache,
# which makes the batch several times faster than one pass over it (results are per image, so
# the chunking changes nothing).
CPU_CHUNK_PIXELS = 1 << 19


@dataclass(frozen=True)
class View:
    corruption: str | None = None  # one name, or names joined by "+"
    severity: int = 0
    seed: int = 0

    @classmethod
    def clean(cls) -> View:
        return cls()

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> View:
        """`clean`, or `<corruption>[+<corruption>...]:<severity>` (e.g. `gaussian-noise:3`,
        `speckle+shadow:2`)."""
        if text == "clean":
            return cls.clean()
        name, sep, level = text.rpartition(":")
        if not sep or not level.isdigit() or not name:
            raise UserError(
                f"view '{text}' must be 'clean' or '<corruption>[+<corruption>]:<severity>'"
            )
        parts = name.split("+")
        severity = int(level)
        for part in parts:
            corruption = CORRUPTIONS.get(part)
            if not 1 <= severity <= corruption.max_severity:
                raise UserError(
                    f"corruption '{part}' has severities 1..{corruption.max_severity}, "
                    f"not {severity}"
                )
        return cls(name, severity, seed)

    @property
    def is_clean(self) -> bool:
        return self.corruption is None

    @property
    def parts(self) -> list[str]:
        return [] if self.is_clean else self.corruption.split("+")

    @property
    def label(self) -> str:
        """`clean`, or `<corruption>-s<severity>` (`-seed<n>` added for a seed other than 0):
        what tables and record ids call the view."""
        if self.is_clean:
            return "clean"
        seed = f"-seed{self.seed}" if self.seed else ""
        return f"{self.corruption}-s{self.severity}{seed}"

    @property
    def spec(self) -> str:
        return "clean" if self.is_clean else f"{self.corruption}:{self.severity}"

    @property
    def name(self) -> str:
        """The cache key of the view: its corruptions, severity and seed, and a digest of the
        corruptions' code version and parameters, so features of a changed corruption are never
        reused."""
        if self.is_clean:
            return "clean"
        return f"{self.corruption}-s{self.severity}-seed{self.seed}-{self._digest()}"

    def _digest(self) -> str:
        fingerprints = "+".join(CORRUPTIONS.get(p).fingerprint() for p in self.parts)
        return hashlib.sha256(fingerprints.encode()).hexdigest()[:8]

    def parameters(self) -> dict[str, dict[str, float]]:
        """Every parameter of every corruption of the view at its severity."""
        return {p: CORRUPTIONS.get(p).parameters(self.severity) for p in self.parts}

    def generators(self, ids: list[str], part: int = 0) -> list[torch.Generator]:
        """One CPU random stream per image, from (seed, corruptions, step, image id) alone. The
        severity is left out on purpose: an image draws the same shadows, bands and noise at
        every severity, only stronger, so severities differ by strength and not by luck."""
        key = f"{self.seed}|{self.corruption}|{self._digest()}|{part}"
        out = []
        for image_id in ids:
            digest = hashlib.sha256(f"{key}|{image_id}".encode()).digest()
            generator = torch.Generator()
            generator.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
            out.append(generator)
        return out

    def apply(self, images: torch.Tensor, masks: torch.Tensor, ids: list[str]) -> torch.Tensor:
        """uint8 [B, 1, H, W] -> uint8 [B, 1, H, W] on the same device; pixels outside the mask
        are unchanged."""
        if self.is_clean:
            return images
        if len(ids) != images.shape[0]:
            raise ValueError(f"{len(ids)} image ids for a batch of {images.shape[0]}")
        corruptions = [CORRUPTIONS.get(p) for p in self.parts]
        if len(corruptions) == 1:  # a lone corruption may go from bytes to bytes
            out = corruptions[0].apply_bytes(images, masks, self.severity)
            if out is not None:
                return out
        step = len(ids) or 1
        if images.device.type == "cpu":
            step = max(1, CPU_CHUNK_PIXELS // (images.shape[-2] * images.shape[-1]))
        out = [
            self._corrupt(corruptions, images[i : i + step], masks[i : i + step], ids[i : i + step])
            for i in range(0, len(ids), step)
        ]
        return torch.cat(out) if out else images

    def _corrupt(
        self, corruptions: list, images: torch.Tensor, masks: torch.Tensor, ids: list[str]
    ) -> torch.Tensor:
        inside = masks.bool()
        x = images.to(torch.float32).div_(255.0)
        last = len(corruptions) - 1
        for part, corruption in enumerate(corruptions):
            changed = corruption.apply(x, inside, self.severity, self.generators(ids, part))
            changed = changed.clamp_(0.0, 1.0)
            # the next corruption sees the outside as it was (the last's is put back below)
            x = torch.where(inside, changed, x) if part < last else changed
        out = to_bytes(x.mul_(255.0))
        # The outside put back byte for byte by a bitwise select (torch.where runs as a scalar
        # loop on a CPU: it alone would take a third of a light corruption's time). The stored
        # byte is what the float outside would have rounded back to.
        keep = inside.view(torch.uint8).neg()  # 0xFF inside the mask, 0 outside
        return out.bitwise_xor_(images).bitwise_and_(keep).bitwise_xor_(images)
