"""What every corruption is: a name, graded severities and a batched, seeded `apply`."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Corruption(ABC):
    """A corruption with severities 1..max_severity; `levels[s - 1]` is its strength at s."""

    name: str = ""
    description: str = ""
    levels: tuple[float, ...] = ()

    @property
    def max_severity(self) -> int:
        return len(self.levels)

    def parameter(self, severity: int) -> float:
        return self.levels[severity - 1]

    @abstractmethod
    def apply(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        severity: int,
        generators: list[torch.Generator],
    ) -> torch.Tensor:
        """float [B, 1, H, W] in [0, 1] -> corrupted float [B, 1, H, W]; one generator per image."""
