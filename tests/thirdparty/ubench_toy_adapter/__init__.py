"""A model author's adapter package, as it would be installed: it registers through the
`ultrabench_eval.models` entry point (see the dist-info beside it) and ships the layout of its
own checkpoint file. The project's tests use it to show that third-party adapters appear in
`ubench models` and pass the same contract as the built-in ones."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.adapter import (
    CheckpointAdapter,
    InputSpec,
    ModelInfo,
    PatchTokens,
    count_parameters,
    map_tokens,
)
from ultrabench_eval.models.layouts import CheckpointLayout
from ultrabench_eval.models.weights import strip_prefixes

LAYOUT_FILE = Path(__file__).parent / "layouts" / "toy-convnet-official.json"
WIDTH = 32


class ToyConvNet(CheckpointAdapter):
    """A small convolutional encoder: stem, `depth` residual conv blocks, global average."""

    name = "toy-convnet"
    poolings = ("avg",)
    full_depth = 3

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture=f"conv stem + {self.depth or self.full_depth} residual 3x3 blocks, "
            f"{WIDTH} channels",
            pretraining_data="none (a test fixture)",
            weights_source="local file only (toy.pth)",
            license="MIT",
            citation="ultrabench-eval test fixture",
            family="toy",
            params=count_parameters(self.meta_model()),
        )

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(size=(64, 64), mean=(0.5,) * 3, std=(0.25,) * 3, interpolation="bilinear")

    @property
    def embed_dims(self) -> dict[str, int]:
        return {"avg": WIDTH}

    def checkpoint_layouts(self) -> list[CheckpointLayout]:
        layout = CheckpointLayout.from_dict(json.loads(LAYOUT_FILE.read_text()))
        return [layout.reduced(self.depth)] if self.depth else [layout]

    def build_model(self) -> nn.Module:
        return ToyNet(self.depth or self.full_depth)

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        state = checkpoint.get("state_dict")
        if not isinstance(state, Mapping):
            raise UserError(f"{source}: expected {{'state_dict': {{'backbone.*': ...}}}}")
        return strip_prefixes(
            {k: v for k, v in state.items() if k.startswith("backbone.")}, ("backbone.",)
        )

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.model is not None, "load() first"
        return {"avg": self.model(x).mean(dim=(2, 3))}

    # patch tokens: the last map, 16x16 at 64 px (stride 4); "avg" is their mean
    mean_of_tokens = "avg"

    @property
    def token_dim(self) -> int:
        return WIDTH

    @property
    def token_grid(self) -> tuple[int, int]:
        return (16, 16)

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        assert self.model is not None, "load() first"
        return map_tokens(self.model(x))


class ToyNet(nn.Module):
    def __init__(self, depth: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, WIDTH, 4, stride=4)
        self.blocks = nn.ModuleList(ToyBlock() for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x


class ToyBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(4, WIDTH)
        self.conv = nn.Conv2d(WIDTH, WIDTH, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(torch.relu(self.norm(x)))


def register(registry: Any) -> None:
    registry.register("toy-convnet", ToyConvNet)
