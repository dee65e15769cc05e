"""The adapter contract, on every registered model (ultrabench_eval.models.testing)."""

import pytest

from ultrabench_eval.core.registry import MODELS
from ultrabench_eval.models.factory import make_adapter
from ultrabench_eval.models.testing import (
    check_embeddings,
    check_full_size_layouts,
    check_input_spec,
    check_metadata,
    check_rejects_broken_checkpoints,
    check_tokens,
    runnable_variants,
)

NAMES = MODELS.names()


@pytest.mark.parametrize("name", NAMES)
def test_metadata_and_input_spec(name):
    adapter = make_adapter(name)
    check_metadata(adapter)
    check_input_spec(adapter)


@pytest.mark.parametrize("name", NAMES)
def test_full_size_layouts_fit_the_model(name):
    check_full_size_layouts(make_adapter(name))


@pytest.mark.parametrize("name", NAMES)
def test_every_built_in_model_gives_patch_tokens(name):
    assert make_adapter(name).gives_tokens, f"{name}: no forward_tokens"


@pytest.mark.parametrize("name", NAMES)
def test_loads_and_embeds(name, tmp_path):
    for adapter in runnable_variants(make_adapter(name), tmp_path, depth=2):
        check_embeddings(adapter)
        check_tokens(adapter)


@pytest.mark.parametrize("name", NAMES)
def test_broken_checkpoints_are_errors(name, tmp_path):
    check_rejects_broken_checkpoints(make_adapter(name), tmp_path, depth=2)
