"""The attentive probe: V-JEPA's attentive classifier on patch tokens, every problem and learning
rate trained at once. Each copy equals the textbook block trained by a plain loop; a batch of
problems equals each problem alone; attention finds what mean pooling averages away."""

import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional

import ultrabench_eval.probes.attentive as attentive
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.probes.attentive import (
    AttentiveOptions,
    AttentiveProbe,
    _Tokens,
    _Training,
    choose_heads,
)
from ultrabench_eval.probes.attentive_pooler import (
    INIT_STD,
    PoolerLayout,
    PoolerShape,
    normalise_tokens,
)
from ultrabench_eval.probes.linear import LinearProbe
from ultrabench_eval.probes.metrics import macro_f1

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tensors this small train fastest on one thread (several fight over a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _noise_tokens(n, seed, tokens=6, dim=8, classes=3):
    """Noisy tokens that all lean towards their class, the first one more: a little to learn."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = np.random.default_rng(99).normal(size=(classes, dim))
    x = rng.normal(size=(n, tokens, dim)) * 2.0 + 0.7 * centres[y][:, None]
    x[:, 0] += centres[y]  # one token says more
    return x.astype(np.float32), y


def _region(n, seed, tokens=16, dim=8, classes=3):
    """The class is written in one token at a random place (with a marker that says which);
    the other tokens are noise, which dominates their mean."""
    fixed = np.random.default_rng(100)
    marker = fixed.normal(size=dim)
    centres = fixed.normal(size=(classes, dim))
    marker /= np.linalg.norm(marker)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, tokens, dim))
    x[np.arange(n), rng.integers(0, tokens, n)] += 4 * marker + 3 * centres[y]
    return x.astype(np.float32), y


def _spread(n, seed, tokens=16, dim=8, classes=3):
    """Every token carries the class equally (and a shift of its image): the mean of the tokens
    is all there is to know."""
    centres = np.random.default_rng(101).normal(size=(classes, dim)) * 0.2
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, tokens, dim)) + centres[y][:, None] + 0.5 * rng.normal(size=(n, 1, dim))
    return x.astype(np.float32), y


# --- the pooler ---------------------------------------------------------------------------------
def textbook_logits(layout, p, x):
    """V-JEPA's attentive classifier written out for one copy (parameters `p` as
    `PoolerLayout.views` gives them), every token projected to keys and values."""
    s = layout.shape
    b, t, d = x.shape
    heads, e, q_count = s.heads, s.head_dim, s.queries
    tokens = functional.layer_norm(x, (d,), p["norm_weight"], p["norm_bias"], 1e-5)
    queries = p["query"].expand(b, -1, -1)
    q = (queries @ p["q_weight"] + p["q_bias"]).view(b, q_count, heads, e).transpose(1, 2)
    k = (tokens @ p["k_weight"].T).view(b, t, heads, e).transpose(1, 2)
    v = (tokens @ p["v_weight"].T + p["v_bias"]).view(b, t, heads, e).transpose(1, 2)
    attended = ((q @ k.transpose(2, 3)) / math.sqrt(e)).softmax(dim=3) @ v
    attended = attended.transpose(1, 2).reshape(b, q_count, d)
    h = queries + attended @ p["proj_weight"] + p["proj_bias"]
    if s.hidden:
        normed = functional.layer_norm(h, (d,), p["mlp_norm_weight"], p["mlp_norm_bias"], 1e-5)
        inner = functional.gelu(normed @ p["fc1_weight"] + p["fc1_bias"])
        h = h + inner @ p["fc2_weight"] + p["fc2_bias"]
    return h.mean(dim=1) @ p["head_weight"] + p["head_bias"]


@pytest.mark.parametrize("hidden", [0, 20])
def test_the_batched_pooler_is_the_textbook_block(hidden):
    """Logits and gradients of 2 groups x 3 copies (each copy's own weights; 2 queries, 3 heads)
    equal the textbook block's, which projects every token to keys and values."""
    layout = PoolerLayout(PoolerShape(dim=12, heads=3, queries=2, hidden=hidden, classes=4))
    rows = torch.stack([layout.initialise(torch.Generator().manual_seed(i)) for i in range(6)])
    rows = (rows.double() + 0.3 * torch.randn(rows.shape, dtype=torch.float64)).view(2, 3, -1)
    rows.requires_grad_(True)
    x = torch.randn(2, 5, 7, 12, dtype=torch.float64) * 2 + 1  # 2 groups of 5 images
    ours = layout.logits(layout.views(rows), functional.layer_norm(x, (12,), eps=1e-5))
    theirs = torch.stack(
        [
            torch.stack([textbook_logits(layout, layout.views(rows[g, j]), x[g]) for j in range(3)])
            for g in range(2)
        ]
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    weights = torch.randn(ours.shape, dtype=torch.float64)
    (ours_grad,) = torch.autograd.grad((ours * weights).sum(), rows)
    (theirs_grad,) = torch.autograd.grad((theirs * weights).sum(), rows)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-9, atol=1e-10)


def test_initialisation_is_v_jepas():
    layout = PoolerLayout(PoolerShape(dim=64, heads=4, queries=2, hidden=256, classes=5))
    row = layout.initialise(torch.Generator().manual_seed(0))
    p = layout.views(row)
    for name in ("query", "q_weight", "k_weight", "v_weight", "fc1_weight"):
        assert p[name].std().item() == pytest.approx(INIT_STD, rel=0.05), name
    for name in ("proj_weight", "fc2_weight"):  # the residual branches' last layers
        assert p[name].std().item() == pytest.approx(INIT_STD / math.sqrt(2), rel=0.05), name
    for name in ("norm_weight", "mlp_norm_weight"):
        assert torch.equal(p[name], torch.ones(64))
    for name in ("norm_bias", "q_bias", "v_bias", "proj_bias", "fc1_bias", "fc2_bias"):
        assert not p[name].any(), name
    bound = 1 / math.sqrt(64)  # the classifier: nn.Linear's draws
    assert p["head_weight"].abs().max() <= bound and p["head_weight"].std() > bound / 3
    assert p["head_bias"].abs().max() <= bound and p["head_bias"].any()
    again = layout.initialise(torch.Generator().manual_seed(0))
    assert torch.equal(row, again)
    assert not torch.equal(row, layout.initialise(torch.Generator().manual_seed(1)))
    # biases and LayerNorms take no weight decay, as in V-JEPA
    assert set(layout.decayed) == {
        "query", "q_weight", "k_weight", "v_weight", "proj_weight", "fc1_weight",
        "fc2_weight", "head_weight",
    }  # fmt: skip


# --- training -----------------------------------------------------------------------------------
def plain_loop(layout, options, lr, seed, train, val, test):
    """What a user writes for one seed and rate: the textbook block initialised from the seed's
    generator, torch.optim.AdamW (no decay on biases and LayerNorms), CosineAnnealingLR, a
    fresh batch order per epoch, early stopping on validation loss keeping the best weights."""
    g = torch.Generator().manual_seed(seed)
    row = layout.initialise(g)
    params = {name: torch.nn.Parameter(v.clone()) for name, v in layout.views(row).items()}
    groups = [
        {"params": [params[n] for n in layout.decayed], "weight_decay": options.weight_decay},
        {"params": [params[n] for n in layout.undecayed], "weight_decay": 0.0},
    ]
    optimiser = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=options.max_epochs)
    x, y = torch.tensor(train[0]), torch.tensor(train[1])
    vx, vy, tx = torch.tensor(val[0]), torch.tensor(val[1]), torch.tensor(test)
    best, best_loss, best_epoch, waiting, epochs_run = None, math.inf, 0, 0, 0
    for epoch in range(options.max_epochs):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), options.batch_size):
            batch = order[start : start + options.batch_size]
            loss = functional.cross_entropy(textbook_logits(layout, params, x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
        epochs_run = epoch + 1
        with torch.no_grad():
            val_loss = functional.cross_entropy(textbook_logits(layout, params, vx), vy).item()
        if val_loss < best_loss:
            best_loss, best_epoch, waiting = val_loss, epoch + 1, 0
            best = {name: v.detach().clone() for name, v in params.items()}
        else:
            waiting += 1
            if waiting >= options.patience:
                break
    with torch.no_grad():
        return {
            "val_pred": textbook_logits(layout, best, vx).argmax(1).numpy(),
            "test_pred": textbook_logits(layout, best, tx).argmax(1).numpy(),
            "best_epoch": best_epoch,
            "epochs_run": epochs_run,
            "best_val_loss": best_loss,
            "best": best,
        }


def _run(options, layout, train, val, subsets, seeds):
    run = _Training(
        options,
        tuple(sorted(options.lrs)),
        layout,
        _Tokens(train[0], CPU, "train"),
        train[1],
        _Tokens(val[0], CPU, "validation"),
        val[1],
        [np.asarray(s) for s in subsets],
        seeds,
    )
    run.train()
    return run


SMALL = AttentiveOptions(
    num_queries=2,
    num_heads=2,
    mlp_ratio=2.0,
    lrs=(1e-2, 3e-2),
    weight_decay=0.05,
    batch_size=8,
    max_epochs=14,
    patience=3,
    device="cpu",
)


def test_each_problem_and_rate_equals_its_plain_loop():
    """Subsets of different sizes (whole batches, a short last batch, one batch), out of size
    order, with their seeds, two rates each; early stopping ends rates and problems at different
    epochs. Every copy's best epoch, epochs run, validation loss, predictions and best weights
    are the plain loop's."""
    train, val, test = _noise_tokens(40, 1), _noise_tokens(24, 2), _noise_tokens(20, 3)
    layout = PoolerLayout(PoolerShape(dim=8, heads=2, queries=2, hidden=16, classes=3))
    subsets = [np.arange(0, 40, 2), np.arange(40), np.arange(5, 14)]
    seeds = [4, 0, 7]
    run = _run(SMALL, layout, train, val, subsets, seeds)
    val_pred, test_pred = (
        run.predict(_Tokens(val[0], CPU, "v")),
        run.predict(_Tokens(test[0], CPU, "t")),
    )
    for p, (subset, seed) in enumerate(zip(subsets, seeds, strict=True)):
        for j, lr in enumerate(sorted(SMALL.lrs)):
            ref = plain_loop(
                layout, SMALL, lr, seed, (train[0][subset], train[1][subset]), val, test[0]
            )
            where = (p, lr)
            assert run.best_epoch[p, j] == ref["best_epoch"], where
            assert run.epochs_run[p, j] == ref["epochs_run"], where
            assert run.best_loss[p, j] == pytest.approx(ref["best_val_loss"], rel=1e-5), where
            assert np.array_equal(val_pred[p, j], ref["val_pred"]), where
            assert np.array_equal(test_pred[p, j], ref["test_pred"]), where
            ours = layout.views(run.best[p, j])
            for name, value in ref["best"].items():
                torch.testing.assert_close(ours[name], value, rtol=1e-4, atol=1e-5)
    # early stopping ended rates, and whole problems, at different epochs
    assert len(set(run.epochs_run.ravel().tolist())) > 3
    assert (run.epochs_run.max(axis=1) < SMALL.max_epochs).sum() >= 2


def test_a_batch_of_problems_equals_each_problem_alone():
    train, val = _noise_tokens(50, 4), _noise_tokens(24, 5)
    layout = PoolerLayout(PoolerShape(dim=8, heads=4, queries=1, hidden=8, classes=3))
    subsets = [np.arange(50), np.arange(3, 30), np.arange(0, 50, 5), np.arange(10, 50)]
    seeds = [1, 2, 3, 1]
    together = _run(SMALL, layout, train, val, subsets, seeds)
    for p, (subset, seed) in enumerate(zip(subsets, seeds, strict=True)):
        alone = _run(SMALL, layout, train, val, [subset], [seed])
        assert np.array_equal(together.best_epoch[p], alone.best_epoch[0]), p
        assert np.array_equal(together.epochs_run[p], alone.epochs_run[0]), p
        np.testing.assert_allclose(together.best_loss[p], alone.best_loss[0], rtol=1e-5)
        torch.testing.assert_close(together.best[p], alone.best[0], rtol=1e-5, atol=1e-5)


def _probe_data():
    return _noise_tokens(60, 6), _noise_tokens(30, 7), _noise_tokens(40, 8)


def _fit(probe, data, subsets, seeds, n_classes=3):
    (tx, ty), (vx, vy), (sx, sy) = data
    return probe.fit_predict_subsets(
        tx, ty, subsets, vx, vy, sx, sy, n_classes=n_classes, seeds=seeds
    )


def test_the_probe_reports_the_rate_chosen_on_validation():
    data = _probe_data()
    probe = AttentiveProbe(lrs=[3e-2, 1e-3], max_epochs=8, patience=3, device="cpu")
    subsets = [np.arange(60), np.arange(0, 60, 3)]
    results = _fit(probe, data, subsets, [0, 1])
    test_y = data[2][1]
    for subset, result in zip(subsets, results, strict=True):
        params = result.params
        assert params["lrs"] == [1e-3, 3e-2] and params["lr"] in params["lrs"]
        scores = params["val_macro_f1_per_lr"]
        assert result.val_macro_f1 == max(scores)
        assert params["lr"] == params["lrs"][scores.index(max(scores))] or scores[0] == scores[1]
        assert result.test_macro_f1 == pytest.approx(100 * macro_f1(test_y, result.test_pred))
        assert 1 <= params["best_epoch"] <= params["epochs_run"] <= 8
        assert params["train_size"] == len(subset) and params["device"] == "cpu"
        assert params["num_heads"] == 1 and params["mlp_ratio"] == 4.0
        json.dumps(params)  # JSON-safe


def test_seeds_repeat_and_matter_and_test_labels_change_nothing():
    data = _probe_data()
    probe = AttentiveProbe(max_epochs=6, device="cpu")
    a, b, c = _fit(probe, data, [np.arange(60)] * 3, [0, 0, 5])
    assert np.array_equal(a.test_pred, b.test_pred) and a.params == b.params
    again = _fit(probe, data, [np.arange(60)], [0])[0]
    assert np.array_equal(a.test_pred, again.test_pred) and a.params == again.params
    assert not (np.array_equal(a.val_pred, c.val_pred) and a.params == c.params)
    (tx, ty), val, (sx, sy) = data
    shuffled = _fit(probe, ((tx, ty), val, (sx, np.roll(sy, 7))), [np.arange(60)], [0])[0]
    assert np.array_equal(shuffled.test_pred, a.test_pred) and shuffled.params == a.params


def test_streamed_float16_maps_and_chunk_sizes_do_not_change_the_result(tmp_path, monkeypatch):
    """Tokens read from read-only float16 memory maps a step at a time, evaluation one image per
    chunk: the same fit as the resident float32 tokens of those values."""
    (tx, ty), (vx, vy), (sx, sy) = _probe_data()
    maps = []
    for name, x in (("train", tx), ("val", vx), ("test", sx)):
        np.save(tmp_path / f"{name}.npy", x.astype(np.float16))
        maps.append(np.load(tmp_path / f"{name}.npy", mmap_mode="r"))
    probe = AttentiveProbe(max_epochs=6, device="cpu")
    subsets, seeds = [np.arange(60), np.arange(20, 45)], [0, 3]
    resident = probe.fit_predict_subsets(
        *(maps[0].astype(np.float32), ty), subsets, maps[1].astype(np.float32), vy,
        maps[2].astype(np.float32), sy, n_classes=3, seeds=seeds,
    )  # fmt: skip
    monkeypatch.setattr(attentive, "_RESIDENT_BYTES", 0)
    monkeypatch.setattr(attentive, "_EVAL_ELEMENTS", 1)
    streamed = probe.fit_predict_subsets(
        maps[0], ty, subsets, maps[1], vy, maps[2], sy, n_classes=3, seeds=seeds
    )
    for a, b in zip(resident, streamed, strict=True):
        assert np.array_equal(a.test_pred, b.test_pred) and np.array_equal(a.val_pred, b.val_pred)
        assert a.params["best_epoch"] == b.params["best_epoch"]
        assert a.params["best_val_loss"] == pytest.approx(b.params["best_val_loss"], rel=1e-6)


def test_tokens_are_normalised_alike_however_they_are_read():
    x, _ = _noise_tokens(30, 9, tokens=5, dim=6)
    tokens = _Tokens(x, CPU, "train")
    index = torch.tensor([3, 3, 0, 29, 7])
    expected = normalise_tokens(torch.tensor(x)[index])
    torch.testing.assert_close(tokens.take(index), expected, rtol=0, atol=1e-6)
    assert tokens.resident is not None
    chunks = torch.cat([c for _, c in tokens.chunks(7)])
    torch.testing.assert_close(chunks, normalise_tokens(torch.tensor(x)), rtol=0, atol=1e-6)


# --- what attention buys ------------------------------------------------------------------------
def _against_mean_pooling(make, seeds):
    (tx, ty), (vx, vy), (sx, sy) = make(150, 1), make(80, 2), make(300, 3)
    results = AttentiveProbe(device="cpu").fit_predict_subsets(
        tx, ty, [np.arange(150)] * len(seeds), vx, vy, sx, sy, n_classes=3, seeds=seeds
    )
    attended = float(np.mean([r.test_macro_f1 for r in results]))
    pooled = LinearProbe(device="cpu").fit_predict(
        tx.mean(1), ty, vx.mean(1), vy, sx.mean(1), sy, n_classes=3
    )
    return attended, pooled.test_macro_f1


def test_attention_finds_a_small_region_that_mean_pooling_drowns():
    attended, pooled = _against_mean_pooling(_region, [0])
    assert attended > pooled + 20, (attended, pooled)


def test_attention_matches_mean_pooling_when_every_token_carries_the_class():
    attended, pooled = _against_mean_pooling(_spread, [0, 1, 2, 3, 4])
    assert pooled > 50  # a case with something to learn, not solved outright either
    assert attended > pooled - 5, (attended, pooled)


# --- options and inputs -------------------------------------------------------------------------
def test_the_probe_declares_what_the_bench_reads():
    assert AttentiveProbe.name == "attentive"
    assert AttentiveProbe.needs_tokens is True and AttentiveProbe.uses_seed is True
    probe = AttentiveProbe(lrs=["1e-2", 1e-3, 1e-2], num_heads=2, device="cpu")
    assert probe.lrs == (1e-3, 1e-2) and probe.options.num_heads == 2
    assert probe.device == torch.device("cpu")


@pytest.mark.parametrize(
    ("dim", "asked", "heads"),
    [(384, None, 6), (768, None, 12), (1024, None, 16), (16, None, 1), (36, None, 1), (8, 4, 4)],
)
def test_heads(dim, asked, heads):
    assert choose_heads(dim, asked) == heads


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"num_queries": 0}, ValueError, "num_queries must be at least 1, got 0"),
        ({"num_heads": 0}, ValueError, "num_heads must be at least 1, got 0"),
        ({"mlp_ratio": -1}, ValueError, "mlp_ratio must be at least 0"),
        ({"lrs": []}, ValueError, "lrs must have at least 1 item"),
        ({"lrs": [0.1, -1]}, ValueError, "lrs[1] must be greater than 0"),
        ({"lrs": [float("nan")]}, ValueError, "lrs[0] input should be a finite number"),
        ({"weight_decay": "x"}, TypeError, "weight_decay must be a number, got 'x'"),
        ({"patience": 1.5}, TypeError, "patience must be a whole number, got 1.5"),
        ({"lr": 0.1}, TypeError, "unknown field(s) lr (known: num_queries,"),
        ({"device": "tpu"}, ValueError, "device is not valid, got 'tpu'"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(options, error, message):
    with pytest.raises(error) as caught:
        AttentiveProbe(**options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _broken(change):
    (tx, ty), (vx, vy), (sx, sy) = _probe_data()
    inputs = {"tx": tx, "ty": ty, "vx": vx, "vy": vy, "sx": sx, "sy": sy}
    inputs["subsets"], inputs["seeds"] = [np.arange(60)], [0]
    change(inputs)
    return inputs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i: i.update(tx=i["tx"].mean(1)), r"shape \(60, 8\).*needs float patch tokens"),
        (lambda i: i.update(vx=i["vx"][..., :4]), "validation tokens are 4 wide but train"),
        (lambda i: i.update(sy=i["sy"][:5]), "40 test images but 5 labels"),
        (lambda i: i.update(ty=i["ty"] + 1), r"train labels must lie in \[0, 3\)"),
        (lambda i: i.update(seeds=[0, 1]), "1 training subsets but 2 seeds"),
        (lambda i: i.update(subsets=[np.arange(61)]), "indexes image 60"),
        (lambda i: i.update(subsets=[np.array([], dtype=np.int64)]), "subset 0 is empty"),
        (lambda i: i["tx"].__setitem__((3, 2, 1), np.nan), "train tokens hold NaN"),
    ],
)
def test_bad_inputs_are_user_errors(change, message):
    i = _broken(change)
    with pytest.raises(UserError, match=message):
        AttentiveProbe(max_epochs=1, device="cpu").fit_predict_subsets(
            i["tx"], i["ty"], i["subsets"], i["vx"], i["vy"], i["sx"], i["sy"],
            n_classes=3, seeds=i["seeds"],
        )  # fmt: skip


def test_heads_that_do_not_divide_the_width_are_a_user_error():
    with pytest.raises(UserError, match="num_heads=3 does not divide the token width 8"):
        _fit(AttentiveProbe(num_heads=3, device="cpu"), _probe_data(), [np.arange(60)], [0])
