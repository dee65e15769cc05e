"""The adapter contract itself: a third-party adapter installed through the entry point passes
it, and adapters with planted faults fail the check that should catch each fault."""

import sys
from pathlib import Path

import pytest
import torch

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.registry import MODELS
from ultrabench_eval.models.testing import (
    check_adapter,
    check_embeddings,
    check_full_size_layouts,
    check_input_spec,
    check_metadata,
    check_rejects_broken_checkpoints,
    check_tokens,
    runnable_variants,
)

THIRD_PARTY = Path(__file__).parent / "thirdparty"


@pytest.fixture
def toy(monkeypatch):
    """The toy package on the path, as if pip-installed, and the model registry re-read."""
    monkeypatch.syspath_prepend(str(THIRD_PARTY))
    monkeypatch.setattr(MODELS, "_populated", False)
    yield __import__("ubench_toy_adapter")
    MODELS.unregister("toy-convnet")
    sys.modules.pop("ubench_toy_adapter", None)


def test_third_party_adapter_is_listed(toy, capsys):
    assert main(["models"]) == 0
    assert "| toy-convnet" in capsys.readouterr().out


def test_third_party_adapter_passes_the_contract(toy, tmp_path):
    adapter = MODELS.get("toy-convnet")()
    check_adapter(adapter, tmp_path)


def test_third_party_adapter_passes_models_check(toy, capsys):
    assert main(["models", "--check", "--models", "toy-convnet"]) == 0
    out = capsys.readouterr().out
    assert "toy-convnet-official" in out and "1 passed, 0 failed" in out


# --- planted faults, each caught by its check ------------------------------------------------


def test_wrong_documented_width_is_caught(toy, tmp_path):
    class Wrong(toy.ToyConvNet):
        @property
        def embed_dims(self):
            return {"avg": 31}

    (loaded,) = runnable_variants(Wrong(), tmp_path, depth=1)
    with pytest.raises(AssertionError, match=r"shape \(8, 32\), documented \(8, 31\)"):
        check_embeddings(loaded)


def test_dropped_weights_are_caught(toy):
    class Drops(toy.ToyConvNet):
        def build_model(self):
            model = super().build_model()
            model.blocks[0].norm = torch.nn.Identity()  # a published layer left out
            return model

        def convert_checkpoint(self, checkpoint, source):
            state = super().convert_checkpoint(checkpoint, source)
            return {k: v for k, v in state.items() if not k.startswith("blocks.0.norm")}

    with pytest.raises(AssertionError, match="drops or invents weights"):
        check_full_size_layouts(Drops())


def test_a_lenient_loader_is_caught(toy, tmp_path):
    class Lenient(toy.ToyConvNet):
        def load(self, weights=None):
            from ultrabench_eval.models.weights import read_checkpoint

            model = self.build_model()
            state = self.convert_checkpoint(read_checkpoint(weights), str(weights))
            model.load_state_dict(state, strict=False)  # the fault: missing keys tolerated
            self._finish(model, "x")
            return self

    with pytest.raises(AssertionError, match="renamed key"):
        check_rejects_broken_checkpoints(Lenient(), tmp_path, depth=1)


def test_batch_dependent_features_are_caught(toy, tmp_path):
    class BatchNormed(toy.ToyConvNet):
        def forward_features(self, x):
            features = super().forward_features(x)["avg"]
            return {"avg": features - features.mean(dim=0, keepdim=True)}  # leaks across images

    (loaded,) = runnable_variants(BatchNormed(), tmp_path, depth=1)
    with pytest.raises(AssertionError, match="batch of 1 differs"):
        check_embeddings(loaded)


def test_wrong_token_grid_and_batch_dependent_tokens_are_caught(toy, tmp_path):
    class WrongGrid(toy.ToyConvNet):
        @property
        def token_grid(self):
            return (8, 8)

    class Leaky(toy.ToyConvNet):
        def forward_tokens(self, x):
            tokens, grid = super().forward_tokens(x)
            return tokens - tokens.mean(dim=0, keepdim=True), grid

    (loaded,) = runnable_variants(WrongGrid(), tmp_path, depth=1)
    with pytest.raises(AssertionError, match=r"token grid \(16, 16\), documented \(8, 8\)"):
        check_tokens(loaded)
    (loaded,) = runnable_variants(Leaky(), tmp_path, depth=1)
    with pytest.raises(AssertionError, match="tokens of a batch of 1 differ"):
        check_tokens(loaded)


def test_an_adapter_without_tokens_still_passes(toy, tmp_path, capsys, monkeypatch):
    """Tokens are for dense probes: a third-party adapter written before them, pooled features
    only, keeps passing the contract and `ubench models --check`."""
    from ultrabench_eval.models.adapter import Adapter

    monkeypatch.setattr(toy.ToyConvNet, "forward_tokens", Adapter.forward_tokens)
    adapter = MODELS.get("toy-convnet")()
    assert not adapter.gives_tokens
    check_adapter(adapter, tmp_path)
    assert main(["models", "--check", "--models", "toy-convnet"]) == 0
    assert "no patch tokens" in capsys.readouterr().out


def test_input_spec_against_the_model_card_and_metadata(toy):
    class OtherSize(toy.ToyConvNet):
        @property
        def input_spec(self):
            from ultrabench_eval.models.adapter import InputSpec

            return InputSpec(size=(96, 96), mean=(0.5,) * 3, std=(0.25,) * 3)

    with pytest.raises(AssertionError, match="input size"):
        check_input_spec(OtherSize())

    class NoLicence(toy.ToyConvNet):
        @property
        def info(self):
            from dataclasses import replace

            return replace(super().info, license="")

    with pytest.raises(AssertionError, match="'license' is empty"):
        check_metadata(NoLicence())
