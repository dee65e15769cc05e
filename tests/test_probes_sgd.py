"""The batched AdamW probes: each problem equals a plain one-seed training loop."""

import math

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


def plain_loop(train_x, train_y, val_x, val_y, test_x, seed, config=US_JEPA_2026):
    """What a user writes: nn.Linear, torch.optim.AdamW, CosineAnnealingLR, early stopping."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.tensor(train_x), torch.tensor(train_y)
    vx, vy = torch.tensor(val_x), torch.tensor(val_y)
    layer = torch.nn.Linear(x.shape[1], int(max(train_y.max(), val_y.max())) + 1)
    with torch.no_grad():
        torch.nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=g)
        bound = 1 / math.sqrt(x.shape[1])
        layer.bias.uniform_(-bound, bound, generator=g)
    optimiser = torch.optim.AdamW(
        layer.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=False
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.max_epochs)
    best, best_loss, best_epoch, waiting = None, math.inf, 0, 0
    for epoch in range(config.max_epochs):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = torch.nn.functional.cross_entropy(layer(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
        with torch.no_grad():
            val_loss = torch.nn.functional.cross_entropy(layer(vx), vy).item()
        if val_loss < best_loss:
            best_loss, best_epoch, waiting = val_loss, epoch + 1, 0
            best = {k: v.clone() for k, v in layer.state_dict().items()}
        else:
            waiting += 1
            if waiting >= config.patience:
                break
    layer.load_state_dict(best)
    with torch.no_grad():
        return layer(torch.tensor(test_x)).argmax(1).numpy(), best_epoch


def test_batched_equals_one_seed_at_a_time():
    # few, wide examples: the probe overfits and early stopping has work to do
    train_x, train_y, val_x, val_y, test_x, test_y = _mixture(n=(120, 60, 80), dim=200, sep=0.5)
    rng = np.random.default_rng(9)
    subsets = [np.arange(120), np.sort(rng.choice(120, 37, replace=False)), np.arange(120)]
    seeds = [0, 1, 2]
    results = SGDProbe(device="cpu").fit_predict_subsets(
        train_x, train_y, subsets, val_x, val_y, test_x, test_y, n_classes=3, seeds=seeds
    )
    for subset, seed, result in zip(subsets, seeds, results, strict=True):
        pred, best_epoch = plain_loop(train_x[subset], train_y[subset], val_x, val_y, test_x, seed)
        assert result.params["best_epoch"] == best_epoch
        assert abs(result.test_macro_f1 - 100 * macro_f1(test_y, pred)) <= 0.1
        assert result.params["epochs_run"] < US_JEPA_2026.max_epochs  # early stopping ran


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
