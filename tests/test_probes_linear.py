"""The `linear` probe: the batched torch L-BFGS must land where scikit-learn lands."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression

from ultrabench_eval.core.registry import PROBES
from ultrabench_eval.probes import LinearProbe, ProbeResult
from ultrabench_eval.probes.linear import DEFAULT_CS, select_C
from ultrabench_eval.probes.logistic import fit_logistic_batched
from ultrabench_eval.probes.metrics import macro_f1
from ultrabench_eval.probes.standardise import standardise

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]

# name: (n_train, n_val, n_test, dim, classes, centre distance, class proportions)
CASES: dict[str, tuple] = {
    "easy": (300, 200, 200, 24, 5, 4.0, None),
    "hard": (300, 200, 200, 24, 5, 1.2, None),
    "binary": (300, 200, 200, 16, 2, 1.5, None),
    "imbalanced": (400, 200, 200, 20, 4, 2.0, [0.6, 0.25, 0.1, 0.05]),
    "d_gt_n": (80, 150, 150, 160, 3, 3.0, None),
}
TIGHT_SKLEARN = {"tol": 1e-10, "max_iter": 10_000}
TIGHT_TORCH = {"tol": 1e-8}  # to compare the objectives reached, not only the selections


def mixture(name: str, seed: int = 0) -> Split:
    """Gaussian clusters at a known distance, then per-column scale and offset (so the probe
    has to standardise). Returns train_x, train_y, val_x, val_y, test_x, test_y."""
    n_train, n_val, n_test, dim, k, sep, weights = CASES[name]
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    centres *= sep / np.linalg.norm(centres, axis=1, keepdims=True)
    scale = np.exp(rng.normal(size=dim))
    shift = 5.0 * rng.normal(size=dim)
    out: list[np.ndarray] = []
    for n in (n_train, n_val, n_test):
        y = rng.choice(k, size=n, p=weights)
        x = (centres[y] + rng.normal(size=(n, dim))) * scale + shift
        out += [x.astype(np.float32), y]
    return tuple(out)  # type: ignore[return-value]


@functools.cache
def fitted(name: str, backend: str, class_weight: str | None = None):
    """(result, probe) for a case; cached because several tests look at the same fits."""
    opts = TIGHT_SKLEARN if backend == "sklearn" else TIGHT_TORCH
    probe = LinearProbe(backend=backend, class_weight=class_weight, **opts)
    data = mixture(name)
    return probe.fit_predict(*data, n_classes=CASES[name][4]), probe


def objective(x, y, coef, intercept, C, class_weight=None) -> float:
    """scikit-learn's scaled objective, written independently of the module under test."""
    z = x @ coef.T + intercept
    if coef.shape[0] == 1:  # binary: logit of class 1 against a zero reference
        z = np.hstack([np.zeros_like(z), z])
    ce = logsumexp(z, axis=1) - z[np.arange(len(y)), y]
    if class_weight == "balanced":
        counts = np.bincount(y)
        w = (len(y) / (len(counts) * counts))[y]
    else:
        w = np.ones(len(y))
    return float(w @ ce / w.sum() + 0.5 * np.sum(coef**2) / (C * w.sum()))


# ---------------------------------------------------------------------------------------------
# Agreement with scikit-learn
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("class_weight", [None, "balanced"])
@pytest.mark.parametrize("name", list(CASES))
def test_torch_agrees_with_sklearn(name: str, class_weight: str | None) -> None:
    got, probe = fitted(name, "torch", class_weight)
    ref, ref_probe = fitted(name, "sklearn", class_weight)
    assert got.params["C"] == ref.params["C"]
    assert abs(got.test_macro_f1 - ref.test_macro_f1) < 0.5
    assert abs(got.val_macro_f1 - ref.val_macro_f1) < 0.5
    assert all(got.params["converged"]) and all(ref.params["converged"])

    # Compare the objective itself, for every C, not only the predictions.
    train_x, train_y = mixture(name)[:2]
    xs = standardise(train_x)[0]
    fit, ref_fit = probe.last_fit, ref_probe.last_fit
    for i, c in enumerate(got.params["C_grid"]):
        ours = objective(xs, train_y, fit.coef[i], fit.intercept[i], c, class_weight)
        theirs = objective(xs, train_y, ref_fit.coef[i], ref_fit.intercept[i], c, class_weight)
        assert ours == pytest.approx(theirs, rel=1e-7, abs=1e-12), (c, ours, theirs)
        # The reported objective is the one just checked.
        assert got.params["objective"][i] == pytest.approx(ours, rel=1e-9)


def test_binary_uses_one_weight_vector_like_sklearn() -> None:
    _, probe = fitted("binary", "torch")
    assert probe.last_fit.coef.shape[1:] == (1, CASES["binary"][3])


def test_solution_matches_sklearn_coefficients_single_C() -> None:
    train_x, train_y = mixture("hard")[:2]
    xs = standardise(train_x)[0]
    fit = fit_logistic_batched(xs, train_y, [0.1], n_classes=5, tol=1e-10)
    ref = LogisticRegression(C=0.1, **TIGHT_SKLEARN).fit(xs, train_y)
    np.testing.assert_allclose(fit.coef[0], ref.coef_, atol=1e-6)
    # Multinomial intercepts are defined up to a common shift; sklearn's sum to ~0 as ours do
    # (both start at zero and the gradient of the shift direction is always zero).
    np.testing.assert_allclose(fit.intercept[0], ref.intercept_, atol=1e-6)


def test_problems_in_a_batch_do_not_interact() -> None:
    train_x, train_y = mixture("imbalanced")[:2]
    xs = standardise(train_x)[0]
    grid = [1e-3, 0.1, 10.0]
    together = fit_logistic_batched(xs, train_y, grid, n_classes=4, tol=1e-10)
    for i, c in enumerate(grid):
        alone = fit_logistic_batched(xs, train_y, [c], n_classes=4, tol=1e-10)
        np.testing.assert_allclose(together.coef[i], alone.coef[0], rtol=1e-6, atol=1e-8)
    # Converged problems stop: the heavily regularised one needs fewer iterations.
    assert together.iterations[0] < together.iterations[-1]
    assert together.converged.all()


# ---------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------


def test_select_C_prefers_smaller_C_on_ties() -> None:
    assert select_C([0.01, 0.1, 1.0, 10.0], np.array([0.5, 0.7, 0.7, 0.6])) == 1
    assert select_C([10.0, 1.0, 0.1], np.array([0.9, 0.9, 0.8])) == 1  # order-independent
    assert select_C([1.0], np.array([0.0])) == 0


def test_tie_in_probe_goes_to_smallest_C() -> None:
    # Far-apart clusters: every C classifies validation perfectly, so all scores tie.
    rng = np.random.default_rng(3)
    centres = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        return centres[y] + rng.normal(size=(n, 2)), y

    (tx, ty), (vx, vy), (sx, sy) = draw(60), draw(60), draw(60)
    res = LinearProbe(Cs=[10.0, 0.5, 2.0]).fit_predict(tx, ty, vx, vy, sx, sy, n_classes=3)
    assert res.params["val_macro_f1_per_C"] == [100.0, 100.0, 100.0]
    assert res.params["C"] == 0.5
    assert res.params["C_grid"] == [0.5, 2.0, 10.0]


def test_test_labels_do_not_influence_selection() -> None:
    tx, ty, vx, vy, sx, sy = mixture("hard")
    base = LinearProbe().fit_predict(tx, ty, vx, vy, sx, sy, n_classes=5)
    shuffled = np.random.default_rng(0).permutation(sy)
    other = LinearProbe().fit_predict(tx, ty, vx, vy, sx, shuffled, n_classes=5)
    assert other.params["C"] == base.params["C"]
    assert np.array_equal(other.test_pred, base.test_pred)
    assert np.array_equal(other.val_pred, base.val_pred)
    assert other.params["val_macro_f1_per_C"] == base.params["val_macro_f1_per_C"]
    assert other.test_macro_f1 == pytest.approx(100 * macro_f1(shuffled, base.test_pred))


# ---------------------------------------------------------------------------------------------
# Standardisation (the function itself: tests/test_probes_standardise.py)
# ---------------------------------------------------------------------------------------------


def test_probe_does_not_look_at_test_features_for_statistics() -> None:
    tx, ty, vx, vy, sx, sy = mixture("hard")
    base = LinearProbe().fit_predict(tx, ty, vx, vy, sx, sy, n_classes=5)
    moved = sx.copy()
    moved[100:] = moved[100:] * 50.0 + 1000.0  # wild test rows must not move the others
    res = LinearProbe().fit_predict(tx, ty, vx, vy, moved, sy, n_classes=5)
    assert res.params["C"] == base.params["C"]
    assert np.array_equal(res.test_pred[:100], base.test_pred[:100])
    assert np.array_equal(res.val_pred, base.val_pred)


def test_probe_is_invariant_to_per_feature_affine_maps() -> None:
    tx, ty, vx, vy, sx, sy = (a.astype(np.float64) for a in mixture("easy"))
    ty, vy, sy = ty.astype(int), vy.astype(int), sy.astype(int)
    rng = np.random.default_rng(5)
    a, b = np.exp(3 * rng.normal(size=tx.shape[1])), 100 * rng.normal(size=tx.shape[1])
    base = LinearProbe().fit_predict(tx, ty, vx, vy, sx, sy, n_classes=5)
    res = LinearProbe().fit_predict(tx * a + b, ty, vx * a + b, vy, sx * a + b, sy, n_classes=5)
    assert res.params["C"] == base.params["C"]
    assert np.array_equal(res.test_pred, base.test_pred)


# ---------------------------------------------------------------------------------------------
# Behaviour and bookkeeping
# ---------------------------------------------------------------------------------------------


def test_result_shape_and_params() -> None:
    res, _ = fitted("imbalanced", "torch", "balanced")
    assert isinstance(res, ProbeResult)
    assert res.test_pred.dtype == np.int64 and res.val_pred.dtype == np.int64
    assert res.test_pred.shape == (200,) and res.val_pred.shape == (200,)
    assert 0.0 <= res.test_macro_f1 <= 100.0 and 0.0 <= res.val_macro_f1 <= 100.0
    p = res.params
    assert p["C_grid"] == pytest.approx(list(DEFAULT_CS))
    assert len(p["val_macro_f1_per_C"]) == len(p["iterations"]) == len(p["converged"]) == 13
    assert p["backend"] == "torch" and p["class_weight"] == "balanced"
    assert p["val_macro_f1_per_C"][p["C_grid"].index(p["C"])] == res.val_macro_f1
    json.dumps(p)  # must be JSON-serialisable


def test_repeated_calls_are_identical() -> None:
    data = mixture("hard")
    a = LinearProbe().fit_predict(*data, n_classes=5, seed=0)
    b = LinearProbe().fit_predict(*data, n_classes=5, seed=7)  # the seed does not matter
    assert np.array_equal(a.test_pred, b.test_pred) and np.array_equal(a.val_pred, b.val_pred)
    assert a.test_macro_f1 == b.test_macro_f1
    assert a.params == b.params


def test_class_absent_from_train_is_never_predicted() -> None:
    tx, ty, vx, vy, sx, sy = mixture("easy")
    keep = ty != 4
    got = LinearProbe(**TIGHT_TORCH).fit_predict(tx[keep], ty[keep], vx, vy, sx, sy, n_classes=5)
    ref = LinearProbe(backend="sklearn", **TIGHT_SKLEARN).fit_predict(
        tx[keep], ty[keep], vx, vy, sx, sy, n_classes=5
    )
    assert got.params["classes_fitted"] == [0, 1, 2, 3]
    assert 4 not in set(got.test_pred) and 4 not in set(got.val_pred)
    assert got.params["C"] == ref.params["C"]
    assert np.array_equal(got.test_pred, ref.test_pred)


def test_single_training_class_predicts_it() -> None:
    tx, ty, vx, vy, sx, sy = mixture("easy")
    one = ty == 2
    res = LinearProbe().fit_predict(tx[one], ty[one], vx, vy, sx, sy, n_classes=5)
    assert set(res.test_pred) == {2} and set(res.val_pred) == {2}


def test_registered_and_configurable() -> None:
    assert PROBES.get("linear") is LinearProbe
    probe = PROBES.get("linear")(Cs=[1.0, 0.1], backend="sklearn", class_weight="balanced")
    assert probe.Cs == [0.1, 1.0] and probe.name == "linear"
    assert probe.backend == "sklearn" and probe.class_weight == "balanced"
    assert LinearProbe(Cs=[1, 10]).Cs == [1.0, 10.0]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"backend": "jax"}, ValueError, "backend must be 'torch' or 'sklearn', got 'jax'"),
        ({"class_weight": "inverse"}, ValueError, "class_weight must be 'balanced'"),
        ({"Cs": []}, ValueError, "Cs must have at least 1 item"),
        ({"Cs": [1.0, -1.0]}, ValueError, "Cs[1] must be greater than 0"),
        ({"Cs": 0.1}, TypeError, "Cs must be a list, got 0.1"),
        ({"max_iter": 0}, ValueError, "max_iter must be at least 1, got 0"),
        ({"tol": "small"}, TypeError, "tol must be a number, got 'small'"),
        ({"tol": -1e-8}, ValueError, "tol must be greater than 0"),
        ({"device": "gpu"}, ValueError, "device is not valid, got 'gpu' (use auto, cpu, cuda"),
        ({"batch_size": 32}, TypeError, "unknown field(s) batch_size (known: Cs, backend,"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(options, error, message) -> None:
    with pytest.raises(error) as caught:
        LinearProbe(**options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_numbers_written_as_text_are_read_as_numbers() -> None:
    # YAML 1.1 (what --probe-option parses) reads 1e-6 as the text '1e-6'
    assert LinearProbe(tol="1e-6", max_iter="50").tol == 1e-6


def test_cpu_device_is_kept_when_a_gpu_is_visible(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert LinearProbe().device == torch.device("cuda")  # auto
    probe = LinearProbe(device="cpu")
    assert probe.device == torch.device("cpu")
    tx, ty, vx, vy, sx, sy = mixture("binary")
    assert probe.fit_predict(tx, ty, vx, vy, sx, sy, n_classes=2).params["device"] == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    data = mixture("hard")
    cpu = LinearProbe(device="cpu").fit_predict(*data, n_classes=5)
    gpu = LinearProbe(device="cuda").fit_predict(*data, n_classes=5)
    assert gpu.params["device"] == "cuda" and gpu.params["C"] == cpu.params["C"]
    assert np.array_equal(gpu.test_pred, cpu.test_pred)


def test_default_tolerance_selects_what_sklearn_selects_on_real_like_features() -> None:
    """At the default tol (1e-6, for both backends) they choose the same C and predict the
    same test labels on ill-conditioned, overlapping classes."""
    from benchmarks.workloads import realistic_features

    data = realistic_features((900, 300, 300), 48, 4, seed=1)
    got = LinearProbe().fit_predict(*data, n_classes=4)
    ref = LinearProbe(backend="sklearn").fit_predict(*data, n_classes=4)
    assert got.params["tol"] == ref.params["tol"] == 1e-6
    assert got.params["C"] == ref.params["C"]
    assert np.array_equal(got.test_pred, ref.test_pred)
    assert got.test_macro_f1 == ref.test_macro_f1
