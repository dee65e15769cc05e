"""The batched AdamW probes: each problem equals a plain one-seed training loop."""

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from ultrabench_eval.core.registry import PROBES
from ultrabench_eval.probes.metrics import macro_f1
from ultrabench_eval.probes.sgd import MLP, US_JEPA_2026, SGDProbe, _BatchedRun, _Data
from ultrabench_eval.probes.standardise import train_statistics


def _mixture(seed=0, n=(120, 60, 80), dim=16, classes=3, sep=1.6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * sep / math.sqrt(dim) * 3
    out = []
    for size in n:
        y = rng.integers(0, classes, size)
        out += [(centres[y] + rng.normal(size=(size, dim))).astype(np.float32), y]
    return out


def plain_loop(train_x, train_y, val_x, val_y, test_x, seed, config, n_classes):
    """What a user writes for one seed: nn.Linear layers (initialised from the seed's
    generator), torch.optim.AdamW, CosineAnnealingLR, a fresh batch order per epoch, early
    stopping on validation loss keeping the best epoch's weights. Standardisation (the MLP's)
    with the training subset's mean and population std."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.tensor(train_x), torch.tensor(train_y)
    vx, vy, tx = torch.tensor(val_x), torch.tensor(val_y), torch.tensor(test_x)
    if config.standardize:
        mean, std = x.double().mean(0), x.double().std(0, correction=0)
        mean, std = mean.float(), torch.where(std > 0, std, 1.0).float()
        x, vx, tx = ((a - mean) / std for a in (x, vx, tx))
    widths = [x.shape[1], config.hidden, n_classes] if config.hidden else [x.shape[1], n_classes]
    layers = [torch.nn.Linear(a, b) for a, b in itertools.pairwise(widths)]
    with torch.no_grad():
        for layer in layers:
            torch.nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=g)
            bound = 1 / math.sqrt(layer.in_features)
            layer.bias.uniform_(-bound, bound, generator=g)
    model = torch.nn.Sequential(*[m for layer in layers for m in (layer, torch.nn.ReLU())][:-1])
    optimiser = torch.optim.AdamW(
        model.parameters(),
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
        weight_decay=config.weight_decay,
        foreach=False,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.max_epochs)
    best, best_loss, best_epoch, waiting, epochs_run = None, math.inf, 0, 0, 0
    for epoch in range(config.max_epochs):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if config.cosine:
            schedule.step()
        epochs_run = epoch + 1
        with torch.no_grad():
            val_loss = torch.nn.functional.cross_entropy(model(vx), vy).item()
        if val_loss < best_loss:
            best_loss, best_epoch, waiting = val_loss, epoch + 1, 0
            best = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            waiting += 1
            if waiting >= config.patience:
                break
    model.load_state_dict(best)
    with torch.no_grad():
        return {
            "test_pred": model(tx).argmax(1).numpy(),
            "val_pred": model(vx).argmax(1).numpy(),
            "best_epoch": best_epoch,
            "epochs_run": epochs_run,
            "best_val_loss": best_loss,
            "weights": [model.state_dict()[k] for k in sorted(model.state_dict())],
        }


CONFIGS = {
    "linear": US_JEPA_2026,
    "linear-standardised": replace(
        US_JEPA_2026, standardize=True, lr=4e-3, max_epochs=60, patience=6
    ),
    "mlp": replace(MLP, hidden=16, batch_size=16, lr=2e-3, max_epochs=40, patience=4),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_each_problem_equals_its_plain_loop(name):
    """Subsets of different sizes (whole batches, a short last batch, a single batch), given out
    of size order, with different seeds; early stopping ends some problems while others run on.
    Each problem's predictions, best epoch, epochs run, validation loss and best weights are
    the plain loop's."""
    config = CONFIGS[name]
    # few, wide examples: the probe overfits and early stopping has work to do
    # (every problem stops well before the end of the schedule, where the learning rate is so
    # small that the validation loss of successive epochs ties up to rounding)
    train_x, train_y, val_x, val_y, test_x, _ = _mixture(n=(80, 80, 100), dim=256, sep=0.4)
    rng = np.random.default_rng(9)
    sizes = [37, 80, 9, 64, 75, 80]
    subsets = [np.sort(rng.choice(80, size, replace=False)) for size in sizes]
    seeds = [3, 0, 1, 7, 2, 5]
    data = _Data(train_x, train_y, val_x, val_y, test_x, torch.device("cpu"))
    run = _BatchedRun(config, data, subsets, seeds, 3)
    run.train()
    val_pred, test_pred = run.predict()
    layers = run._layers(run.best)
    for p, (subset, seed) in enumerate(zip(subsets, seeds, strict=True)):
        ref = plain_loop(
            train_x[subset], train_y[subset], val_x, val_y, test_x, seed, config, n_classes=3
        )
        assert run.best_epoch[p] == ref["best_epoch"], p
        assert run.epochs_run[p] == ref["epochs_run"], p
        assert run.best_loss[p] == pytest.approx(ref["best_val_loss"], rel=1e-5, abs=1e-6)
        assert np.array_equal(test_pred[p], ref["test_pred"]), p
        assert np.array_equal(val_pred[p], ref["val_pred"]), p
        # state_dict order, sorted by name: 0.bias, 0.weight, (2.bias, 2.weight)
        ours = [t[p] for weight, bias in layers for t in (bias, weight)]
        for a, b in zip(ours, ref["weights"], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert (run.epochs_run < config.max_epochs).all()
    assert len(set(run.epochs_run.tolist())) > 3  # stopped at different epochs


def test_the_probe_returns_the_runs_results():
    train_x, train_y, val_x, val_y, test_x, test_y = _mixture(n=(120, 60, 80), dim=200, sep=0.5)
    subsets, seeds = [np.arange(120), np.arange(0, 120, 3)], [0, 1]
    config = replace(US_JEPA_2026, max_epochs=20)
    results = SGDProbe(config, device="cpu").fit_predict_subsets(
        train_x, train_y, subsets, val_x, val_y, test_x, test_y, n_classes=3, seeds=seeds
    )
    for subset, seed, result in zip(subsets, seeds, results, strict=True):
        ref = plain_loop(train_x[subset], train_y[subset], val_x, val_y, test_x, seed, config, 3)
        assert np.array_equal(result.test_pred, ref["test_pred"])
        assert result.test_macro_f1 == pytest.approx(100 * macro_f1(test_y, ref["test_pred"]))
        assert result.params["best_epoch"] == ref["best_epoch"]
        assert result.params["epochs_run"] == ref["epochs_run"]
        assert result.params["train_size"] == len(subset) and result.params["device"] == "cpu"


def test_seeds_change_the_result_and_repeat():
    data = _mixture(seed=1, n=(60, 40, 200), sep=0.8)
    probe = SGDProbe(device="cpu")
    a = probe.fit_predict(*data, n_classes=3, seed=0)
    b = probe.fit_predict(*data, n_classes=3, seed=0)
    c = probe.fit_predict(*data, n_classes=3, seed=5)
    assert np.array_equal(a.test_pred, b.test_pred)
    assert not np.array_equal(a.test_pred, c.test_pred)


def test_mlp_learns_what_a_linear_layer_cannot():
    rng = np.random.default_rng(3)

    def xor(n):
        x = rng.normal(size=(n, 2)).astype(np.float32)
        y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
        return x * 5 + 3, y  # not standardised: the MLP standardises itself

    (tx, ty), (vx, vy), (sx, sy) = xor(400), xor(200), xor(200)
    mlp = SGDProbe(MLP, device="cpu").fit_predict(tx, ty, vx, vy, sx, sy, n_classes=2)
    linear = SGDProbe(device="cpu").fit_predict(tx, ty, vx, vy, sx, sy, n_classes=2)
    assert mlp.test_macro_f1 > 85 > linear.test_macro_f1 + 15


def test_options_and_params():
    probe = SGDProbe(max_epochs=3, patience=1)
    result = probe.fit_predict(*_mixture(n=(30, 20, 20)), n_classes=3)
    assert result.params["max_epochs"] == 3 and 1 <= result.params["epochs_run"] <= 3
    with pytest.raises(TypeError):
        SGDProbe(learning_rate=1.0)
    probe = PROBES.get("mlp")(lr="1.0e-2", betas=[0.8, 0.9])
    assert probe.config.lr == 0.01 and probe.config.betas == (0.8, 0.9)
    assert probe.config.hidden == MLP.hidden  # the other fields stay the preset's


@pytest.mark.parametrize("name", ["us-jepa-2026", "mlp"])
@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1, got 0"),
        ({"max_epochs": -1}, ValueError, "max_epochs must be at least 1, got -1"),
        ({"patience": 2.5}, TypeError, "patience must be a whole number, got 2.5"),
        ({"lr": "fast"}, TypeError, "lr must be a number, got 'fast'"),
        ({"lr": 0}, ValueError, "lr must be greater than 0"),
        ({"betas": [0.9, 1.0]}, ValueError, "betas[1] must be less than 1"),
        ({"standardize": "maybe"}, TypeError, "standardize must be true or false"),
        ({"hidden": 0}, ValueError, "hidden must be at least 1, got 0"),
        ({"backend": "torch"}, TypeError, "unknown field(s) backend (known: hidden, lr,"),
        ({"device": "tpu"}, ValueError, "device is not valid, got 'tpu'"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(name, options, error, message):
    with pytest.raises(error) as caught:
        PROBES.get(name)(**options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_option_lists_the_device_too():
    with pytest.raises(TypeError, match=r"known: .*eps, device\)"):
        PROBES.get("mlp")(epochs=3)


def test_cpu_device_is_kept_when_a_gpu_is_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert SGDProbe().device == torch.device("cuda")  # auto
    probe = PROBES.get("mlp")(device="cpu", max_epochs=2)
    assert probe.device == torch.device("cpu")
    result = probe.fit_predict(*_mixture(n=(30, 20, 20)), n_classes=3)
    assert result.params["device"] == "cpu"


def test_mlp_standardises_with_the_shared_statistics():
    train_x, train_y, val_x, val_y, test_x, _ = _mixture(n=(40, 20, 20))
    train_x[:, 3] = 2.0  # a constant column
    data = _Data(train_x, train_y, val_x, val_y, test_x, torch.device("cpu"))
    run = _BatchedRun(MLP, data, [np.arange(40)], [0], 3)
    mean, std = train_statistics(torch.tensor(train_x).double())
    assert torch.equal(run.shift[0], mean.float()) and torch.equal(run.scale[0], std.float())
    assert run.scale[0, 3] == 1.0
