"""The adapter contract as checks a test suite calls: ours runs them on every registered adapter,
and an adapter author runs them on theirs:

    from ultrabench_eval.models.testing import check_adapter

    def test_my_adapter(tmp_path):
        check_adapter(MyAdapter(), tmp_path)

Checks that need weights build checkpoint files with random values in each official layout
the adapter declares (`checkpoint_layouts()`), with fewer blocks (`reduced(depth)`) so they run
in seconds on a CPU; the full-size key layout is checked on the meta device, shapes only.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.adapter import Adapter, CheckpointAdapter
from ultrabench_eval.models.layouts import CheckpointLayout
from ultrabench_eval.models.weights import state_mismatches

BATCH = 8
TOLERANCE = 1e-4


def check_adapter(adapter: Adapter, workdir: Path, depth: int = 2) -> None:
    """Every check of the contract; raises AssertionError naming the first one that fails."""
    check_metadata(adapter)
    check_input_spec(adapter)
    check_full_size_layouts(adapter)
    for runnable in runnable_variants(adapter, Path(workdir), depth):
        check_embeddings(runnable)
        check_tokens(runnable)
    check_rejects_broken_checkpoints(adapter, Path(workdir), depth)


def check_metadata(adapter: Adapter) -> None:
    info = adapter.info
    for field in ("architecture", "pretraining_data", "weights_source", "license"):
        assert getattr(info, field), f"{adapter.name}: metadata '{field}' is empty"
    assert info.params is not None and info.params >= 0, f"{adapter.name}: no parameter count"
    weight_free = not adapter.checkpoint_layouts() and info.params == 0
    assert weight_free or info.citation, f"{adapter.name}: no citation"
    assert adapter.poolings, f"{adapter.name}: no pooling"
    dims = adapter.embed_dims
    assert set(dims) == set(adapter.poolings), f"{adapter.name}: embed_dims {dims} vs poolings"


def check_input_spec(adapter: Adapter) -> None:
    """The input spec is the one the model card documents (recorded in each layout)."""
    spec = adapter.input_spec
    for layout in adapter.checkpoint_layouts():
        card = layout.preprocessing
        if "size" in card:
            assert tuple(spec.size) == tuple(card["size"]), (
                f"{adapter.name}: input size {spec.size} vs model card {card['size']} "
                f"({layout.name})"
            )
        for key in ("mean", "std"):
            if key in card:
                got, want = getattr(spec, key), card[key]
                assert len(got) == len(want) and all(
                    math.isclose(a, b, rel_tol=1e-4) for a, b in zip(got, want, strict=True)
                ), f"{adapter.name}: {key} {got} vs model card {want} ({layout.name})"


def check_full_size_layouts(adapter: Adapter) -> None:
    """Each official layout, at full size, maps onto the model with nothing missing, left over or
    mis-shaped, and every tensor the adapter should use is used."""
    if not isinstance(adapter, CheckpointAdapter):
        return
    model = adapter.meta_model()
    expected = model.state_dict()
    for layout in adapter.checkpoint_layouts():
        state = adapter.convert_checkpoint(layout.random_checkpoint(device="meta"), layout.name)
        problems = state_mismatches(expected, state)
        assert not problems, f"{adapter.name}: layout {layout.name}: {'; '.join(problems)}"
        used = layout.parameter_count() + layout.values_added
        loaded = sum(t.numel() for t in state.values())
        assert used == loaded, (
            f"{adapter.name}: layout {layout.name} has {used} values in its used tensors "
            f"(with {layout.values_added} the conversion adds) but {loaded} reach the model "
            "(a conversion drops or invents weights)"
        )


def runnable_variants(adapter: Adapter, workdir: Path, depth: int) -> list[Adapter]:
    """The adapter loaded once per official layout, from a reduced random checkpoint (or
    loaded as it is when it has no weights to read)."""
    if not isinstance(adapter, CheckpointAdapter):
        return [adapter.load()]
    small = adapter.reduced(depth)
    layouts = small.checkpoint_layouts()
    if not layouts:
        return [small.load()]
    loaded = []
    for layout in layouts:
        path = layout.build(workdir / f"{layout.name}-d{depth}" / layout.file_name)
        loaded.append(adapter.reduced(depth).load(str(path)))
        path.unlink()  # the weights are in memory now; these files can be large
    return loaded


def check_embeddings(adapter: Adapter) -> None:
    """float32 [B, D] per pooling, the documented D, eval mode, no grad, batch-independent,
    grayscale in and channels repeated as the input spec says."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (BATCH, 1, 48, 56), generator=generator, dtype=torch.uint8)
    out = adapter.embed(images)
    assert set(out) == set(adapter.poolings), f"{adapter.name}: poolings {sorted(out)}"
    for pooling, features in out.items():
        want = (BATCH, adapter.embed_dims[pooling])
        got = tuple(features.shape)
        assert got == want, f"{adapter.name}/{pooling}: shape {got}, documented {want}"
        assert features.dtype == torch.float32, f"{adapter.name}/{pooling}: {features.dtype}"
        assert not features.requires_grad, f"{adapter.name}/{pooling}: output requires grad"
        assert torch.isfinite(features).all(), f"{adapter.name}/{pooling}: non-finite features"
    model = getattr(adapter, "model", None)
    if isinstance(model, torch.nn.Module):
        assert not model.training, f"{adapter.name}: model left in training mode"
        assert not any(p.requires_grad for p in model.parameters()), f"{adapter.name}: grads on"
    single = adapter.embed(images[:1])
    for pooling in out:
        torch.testing.assert_close(
            single[pooling],
            out[pooling][:1],
            rtol=TOLERANCE,
            atol=TOLERANCE,
            msg=lambda m, p=pooling: f"{adapter.name}/{p}: batch of 1 differs from batch of 8: {m}",
        )
    # Grayscale in; a colour batch is converted upstream (decode), never passed here.
    try:
        adapter.embed(images.expand(-1, 3, -1, -1).contiguous())
    except ValueError:
        pass
    else:
        raise AssertionError(f"{adapter.name}: embed accepted a 3-channel batch")
    x = adapter.preprocess(images[:1])
    spec = adapter.input_spec
    assert tuple(x.shape) == (1, spec.channels, *spec.size), f"{adapter.name}: input {x.shape}"
    if spec.channels == 3:
        raw = x * torch.tensor(spec.std).view(1, 3, 1, 1) + torch.tensor(spec.mean).view(1, 3, 1, 1)
        torch.testing.assert_close(raw[:, 0], raw[:, 1])
        torch.testing.assert_close(raw[:, 0], raw[:, 2])


def check_tokens(adapter: Adapter) -> None:
    """Patch tokens float32 [B, h * w, D] on the documented grid and width, batch-independent,
    and (where a pooling is their mean) equal to the pooled output once averaged. Nothing to
    check for an adapter that gives no tokens (`gives_tokens`)."""
    if not adapter.gives_tokens:
        return
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (BATCH, 1, 48, 56), generator=generator, dtype=torch.uint8)
    tokens, grid = adapter.embed_tokens(images)
    h, w = adapter.token_grid
    assert grid == (h, w), f"{adapter.name}: token grid {grid}, documented {(h, w)}"
    want = (BATCH, h * w, adapter.token_dim)
    assert tuple(tokens.shape) == want, f"{adapter.name}: tokens {tuple(tokens.shape)} vs {want}"
    assert tokens.dtype == torch.float32, f"{adapter.name}: tokens are {tokens.dtype}"
    assert not tokens.requires_grad, f"{adapter.name}: tokens require grad"
    assert torch.isfinite(tokens).all(), f"{adapter.name}: non-finite tokens"
    single, _ = adapter.embed_tokens(images[:1])
    torch.testing.assert_close(
        single,
        tokens[:1],
        rtol=TOLERANCE,
        atol=TOLERANCE,
        msg=lambda m: f"{adapter.name}: tokens of a batch of 1 differ from a batch of 8: {m}",
    )
    pooling = adapter.mean_of_tokens
    if pooling is not None:
        assert pooling in adapter.poolings, f"{adapter.name}: mean_of_tokens '{pooling}' unknown"
        pooled = adapter.embed(images)[pooling]
        torch.testing.assert_close(
            tokens.mean(dim=1),
            pooled,
            rtol=TOLERANCE,
            atol=TOLERANCE,
            msg=lambda m: f"{adapter.name}: mean of tokens differs from '{pooling}': {m}",
        )
    try:
        adapter.embed_tokens(images.expand(-1, 3, -1, -1).contiguous())
    except ValueError:
        pass
    else:
        raise AssertionError(f"{adapter.name}: embed_tokens accepted a 3-channel batch")


def check_rejects_broken_checkpoints(adapter: Adapter, workdir: Path, depth: int) -> None:
    """A renamed key or a changed shape in an official-layout file is a clear UserError."""
    if not isinstance(adapter, CheckpointAdapter):
        return
    for layout in adapter.reduced(depth).checkpoint_layouts():
        key = _a_used_weight(layout)
        for kind, broken in (
            ("renamed", _renamed(layout, key)),
            ("reshaped", _reshaped(layout, key)),
        ):
            path = broken.build(workdir / f"{layout.name}-{kind}" / layout.file_name)
            try:
                adapter.reduced(depth).load(str(path))
            except UserError:
                continue
            finally:
                path.unlink()
            raise AssertionError(f"{adapter.name}: a {kind} key ({key}) in {layout.name} loaded")


def _a_used_weight(layout: CheckpointLayout) -> str:
    used = [k for k in layout.used_keys() if len(layout.tensors[k].shape) >= 2]
    assert used, f"layout {layout.name} has no used weight matrix"
    return used[len(used) // 2]


def _renamed(layout: CheckpointLayout, key: str) -> CheckpointLayout:
    tensors = dict(layout.tensors)
    tensors[key + "_renamed"] = tensors.pop(key)
    return _with_tensors(layout, tensors)


def _reshaped(layout: CheckpointLayout, key: str) -> CheckpointLayout:
    tensors = dict(layout.tensors)
    spec = tensors[key]
    tensors[key] = type(spec)((*spec.shape[:-1], spec.shape[-1] + 1), spec.dtype)
    return _with_tensors(layout, tensors)


def _with_tensors(layout: CheckpointLayout, tensors: dict) -> CheckpointLayout:
    from dataclasses import replace

    return replace(layout, tensors=tensors)
