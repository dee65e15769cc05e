"""The dense (segmentation) probe: it finds planted masks and nothing in shuffled ones, a batched
run equals one problem at a time and a plain training loop, and pixels outside the scan count
nowhere."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.probes import dense_data
from ultrabench_eval.probes.dense import (
    DenseProbe,
    LinearSegmentationHead,
    predict_masks,
    score_masks,
)
from ultrabench_eval.probes.dense_training import INIT_STD
from ultrabench_eval.probes.segmentation_metrics import (
    confusion_counts,
    scores_of_totals,
    segmentation_scores,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tensors this small train fastest on one thread (several fight over a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


GRID = (6, 6)
SIZE = 24  # 4 pixels per patch side
CLASSES = 3
DIM = 16


def _scan(size=SIZE):
    """A fan: the sector under an apex above the image, as an ultrasound scan."""
    yy, xx = np.mgrid[0:size, 0:size]
    return (np.abs(xx - size / 2 + 0.5) < (yy + 4) * 0.6).astype(np.uint8)


def codes(separation=4.0):
    """Each class's token: a one-hot of `separation` in a random rotation of the token space,
    off-centre. The class lives in a 3-d subspace of 16; a head that has not learnt which sees
    mostly noise (so a head fitted to unrelated labels predicts nothing of the planted masks)."""
    rng = np.random.default_rng(123)
    rotation, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    return separation * np.eye(CLASSES, DIM) @ rotation + 2.0


def planted(n, seed, noise=0.5, dtype=np.float32):
    """Images with a rectangle of class 1 and one of class 2 (patch-aligned) on background,
    and tokens that encode each patch's class (a fixed vector per class) plus noise."""
    rng = np.random.default_rng(seed)
    h, w = GRID
    classes = np.zeros((n, h, w), dtype=np.int64)
    for i in range(n):
        for c in range(1, CLASSES):
            # a rectangle rolled to a uniform position (wrapping round): every patch is equally
            # likely to be of each class, so masks of other images say nothing of this one's
            height, width = rng.integers(2, 4, size=2)
            rectangle = np.zeros((h, w), dtype=bool)
            rectangle[:height, :width] = True
            shifted = np.roll(rectangle, tuple(rng.integers(0, (h, w))), axis=(0, 1))
            classes[i][shifted] = c
    masks = classes.repeat(SIZE // h, axis=1).repeat(SIZE // w, axis=2).astype(np.uint8)
    valid = np.repeat(_scan()[None], n, axis=0)
    masks[valid == 0] = 0
    tokens = codes()[classes.reshape(n, -1)] + noise * rng.normal(size=(n, h * w, DIM))
    return tokens.astype(dtype), masks, valid


def _splits(n_train=24, n_val=8, n_test=8, **kwargs):
    return planted(n_train, 1, **kwargs), planted(n_val, 2, **kwargs), planted(n_test, 3, **kwargs)


def _fit(probe, train, val, test, subsets, seeds):
    return probe.fit_predict_subsets(
        *train, subsets, *val, *test, grid=GRID, n_classes=CLASSES, seeds=seeds
    )


def _probe(**options):
    return DenseProbe(device="cpu", **{"epochs": 6, "batch_size": 4, "lr": 0.1, **options})


def test_recovers_planted_masks():
    train, val, test = _splits()
    probe = _probe()
    (result,) = _fit(probe, train, val, test, [np.arange(24)], [0])
    assert result.test_dice > 90 and result.val_dice > 90 and result.test_miou > 85
    assert len(result.test_dice_per_class) == CLASSES - 1
    assert result.test_counts.shape == (8, CLASSES, 3) and result.test_counts.dtype == np.int64
    # the stored counts are those of the masks the head predicts
    masks = probe.predict_masks(0, test[0], GRID)
    assert masks.shape == (8, SIZE, SIZE) and masks.dtype == np.uint8
    np.testing.assert_array_equal(
        confusion_counts(masks, test[1], test[2], CLASSES), result.test_counts
    )
    assert segmentation_scores(result.test_counts).dice == result.test_dice
    assert 1 <= result.params["best_epoch"] <= 6
    assert len(result.params["val_dice_per_epoch"]) == 6
    assert result.params["eval_size"] == [SIZE, SIZE] and result.params["grid"] == list(GRID)


def test_finds_nothing_in_labels_shuffled_across_images():
    train, val, test = _splits()
    # each image gets another image's mask (a cyclic shift: none keeps its own)
    train = (train[0], np.roll(train[1], 5, axis=0), train[2])
    results = _fit(_probe(), train, val, test, [np.arange(24)] * 2, [0, 2])
    # a foreground class covers about 15 % of the scanned pixels: guessing scores about that
    assert all(r.test_dice < 30 for r in results)


def test_batched_problems_equal_each_problem_alone():
    train, val, test = _splits()
    subsets = [np.arange(7), np.arange(3, 6), np.arange(24), np.arange(7)]
    seeds = [0, 1, 2, 5]  # sizes 7, 3, 24, 7: 2, 1, 6 and 2 minibatches per epoch
    together = _fit(_probe(), train, val, test, subsets, seeds)
    for subset, seed, batched in zip(subsets, seeds, together, strict=True):
        (alone,) = _fit(_probe(), train, val, test, [subset], [seed])
        np.testing.assert_allclose(batched.head.weight, alone.head.weight, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batched.head.bias, alone.head.bias, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(batched.test_counts, alone.test_counts)
        assert batched.params["best_epoch"] == alone.params["best_epoch"]
    # the two problems on one subset differ only by their seed, and that changes the head
    assert not np.allclose(together[0].head.weight, together[3].head.weight)


def plain_loop(train, val, subset, seed, options):
    """What a user writes for one seed: standardise with the subset's token statistics, a 1x1
    Conv2d (normal(0, 0.01) weights from the seed's generator, zero bias), bilinear upsampling,
    cross-entropy ignoring the pixels outside the scan, torch.optim.AdamW with the learning rate
    set per epoch, a fresh image order per epoch, and the weights of the epoch with the best
    validation mean Dice. Returns the head on raw tokens."""
    g = torch.Generator().manual_seed(seed)
    h, w = GRID
    tokens = torch.tensor(train[0][subset], dtype=torch.float64)
    mean = tokens.reshape(-1, DIM).mean(0)
    std = tokens.reshape(-1, DIM).std(0, correction=0)

    def images(x):
        x = ((torch.tensor(x, dtype=torch.float64) - mean) / std).float()
        return x.view(len(x), h, w, DIM).permute(0, 3, 1, 2)

    x, val_x = images(train[0][subset]), images(val[0])
    target = torch.tensor(np.where(train[2][subset] > 0, train[1][subset], 255)).long()
    conv = torch.nn.Conv2d(DIM, CLASSES, 1)
    with torch.no_grad():
        conv.weight.copy_((torch.randn(CLASSES, DIM, generator=g) * INIT_STD)[:, :, None, None])
        conv.bias.zero_()
    optimiser = torch.optim.AdamW(
        conv.parameters(), lr=options.lr, weight_decay=options.weight_decay, foreach=False
    )
    best, best_dice = None, -np.inf
    for epoch in range(options.epochs):
        for group in optimiser.param_groups:
            group["lr"] = options.lr * (1 - epoch / options.epochs)
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), options.batch_size):
            batch = order[start : start + options.batch_size]
            logits = F.interpolate(
                conv(x[batch]), size=(SIZE, SIZE), mode="bilinear", align_corners=False
            )
            loss = F.cross_entropy(logits, target[batch], ignore_index=255)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            logits = F.interpolate(conv(val_x), size=(SIZE, SIZE), mode="bilinear")
            counts = confusion_counts(logits.argmax(1).numpy(), val[1], val[2], CLASSES)
        dice = float(scores_of_totals(counts.sum(0)).dice)
        if dice > best_dice:
            best_dice = dice
            best = (conv.weight.detach()[:, :, 0, 0].clone(), conv.bias.detach().clone())
    weight, bias = best
    raw = weight.double() / std
    return raw.numpy(), (bias.double() - raw @ mean).numpy()


def test_each_problem_is_the_plain_training_loop():
    train, val, test = _splits()
    probe = _probe(epochs=4)
    subset = np.arange(2, 13)  # 11 images: a last minibatch of 3
    (result,) = _fit(probe, train, val, test, [subset], [7])
    weight, bias = plain_loop(train, val, subset, 7, probe.options)
    np.testing.assert_allclose(result.head.weight, weight, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.head.bias, bias, rtol=1e-4, atol=1e-4)


def test_pixels_outside_the_scan_change_neither_fit_nor_score():
    train, val, test = _splits()
    rng = np.random.default_rng(9)

    def scribble(split):
        tokens, masks, valid = split
        masks = np.where(valid > 0, masks, rng.integers(0, CLASSES, masks.shape)).astype(np.uint8)
        return tokens, masks, valid

    subsets, seeds = [np.arange(24), np.arange(5)], [0, 1]
    clean = _fit(_probe(), train, val, test, subsets, seeds)
    scribbled = _fit(_probe(), scribble(train), scribble(val), scribble(test), subsets, seeds)
    assert (scribble(train)[1] != train[1]).any()
    for a, b in zip(clean, scribbled, strict=True):
        np.testing.assert_array_equal(a.head.weight, b.head.weight)
        np.testing.assert_array_equal(a.test_counts, b.test_counts)
        np.testing.assert_array_equal(a.val_counts, b.val_counts)


def test_same_seed_same_numbers():
    train, val, test = _splits()
    first, second = (_fit(_probe(), train, val, test, [np.arange(10)], [4])[0] for _ in "ab")
    np.testing.assert_array_equal(first.head.weight, second.head.weight)
    assert first.params["val_dice_per_epoch"] == second.params["val_dice_per_epoch"]


def test_read_only_mapped_float16_tokens_read_a_minibatch_at_a_time(tmp_path):
    train, val, test = _splits(dtype=np.float16)
    path = tmp_path / "train.f16"
    train[0].tofile(path)
    mapped = np.memmap(path, dtype=np.float16, mode="r", shape=train[0].shape)
    subsets, seeds = [np.arange(24), np.arange(9)], [0, 3]
    in_memory = _fit(_probe(), train, val, test, subsets, seeds)
    from_map = _fit(_probe(), (mapped, *train[1:]), val, test, subsets, seeds)
    for a, b in zip(in_memory, from_map, strict=True):
        np.testing.assert_allclose(a.head.weight, b.head.weight, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(a.test_counts, b.test_counts)


def test_a_map_moves_to_the_device_a_piece_at_a_time(tmp_path, monkeypatch):
    path = tmp_path / "tokens.f16"
    tokens = np.random.default_rng(0).normal(size=(20, 36, 16)).astype(np.float16)
    tokens.tofile(path)
    mapped = np.memmap(path, dtype=np.float16, mode="r", shape=tokens.shape)
    monkeypatch.setattr(dense_data, "_UPLOAD_BYTES", 5 * tokens[0].nbytes)  # pieces of 5 images
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when handed a read-only array
        on_device = dense_data._upload(mapped, torch.device("cpu"))
    assert on_device.dtype == torch.float16
    np.testing.assert_array_equal(on_device.numpy(), tokens)


def test_scoring_new_tokens_with_the_fitted_heads():
    train, val, test = _splits()
    probe = _probe()
    results = _fit(probe, train, val, test, [np.arange(24), np.arange(6)], [0, 1])
    every = probe.score(None, *test, GRID)
    assert every.shape == (2, 8, CLASSES, 3)
    for p, result in enumerate(results):
        np.testing.assert_array_equal(every[p], result.test_counts)
        np.testing.assert_array_equal(probe.score(p, *test, GRID), result.test_counts)
    # the heads stand alone: the module-level functions need no probe
    heads = [r.head for r in results]
    np.testing.assert_array_equal(score_masks(heads, *test, GRID, device="cpu"), every)
    masks = predict_masks(heads[0], test[0], GRID, SIZE, device="cpu")
    np.testing.assert_array_equal(masks, probe.predict_masks(0, test[0], GRID))
    # noisier tokens score lower with the same head
    noisy = test[0] + np.random.default_rng(0).normal(0, 3.0, test[0].shape).astype(np.float32)
    noisy_dice = segmentation_scores(probe.score(0, noisy, test[1], test[2], GRID)).dice
    assert noisy_dice < results[0].test_dice - 10


def test_unknown_and_out_of_range_options():
    with pytest.raises(TypeError, match="momentum"):
        DenseProbe(device="cpu", momentum=0.9)
    with pytest.raises(ValueError, match="epochs"):
        DenseProbe(device="cpu", epochs=0)
    assert dataclasses.asdict(DenseProbe(device="cpu").options)["schedule"] == "poly"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t, v, s: (t[:, :35], v, s), "grid 6x6 has 36"),
        (lambda t, v, s: (t, (v[0], v[1] + 3, v[2]), s), "class 5"),
        (lambda t, v, s: (t, (v[0][..., :4], v[1], v[2]), s), "dimension"),
        (lambda t, v, s: (t, (v[0], v[1][:, :12], v[2]), s), "scan masks"),
        (lambda t, v, s: (t, v, [np.arange(30)]), "indexes image 29"),
        (lambda t, v, s: (t, v, [np.array([], dtype=np.int64)]), "non-empty"),
    ],
)
def test_bad_inputs_are_user_errors(change, message):
    train, val, test = _splits()
    tokens, val, subsets = change(train[0], val, [np.arange(24)])
    with pytest.raises(UserError, match=message):
        _fit(_probe(), (tokens, *train[1:]), val, test, subsets, [0])


def test_seeds_tokens_and_classes_are_checked_and_nothing_predicts_before_a_fit():
    train, val, test = _splits()
    with pytest.raises(UserError, match="2 seeds"):
        _fit(_probe(), train, val, test, [np.arange(24)], [0, 1])
    broken = train[0].copy()
    broken[3, 5, 0] = np.nan
    with pytest.raises(UserError, match="NaN"):
        _fit(_probe(), (broken, *train[1:]), val, test, [np.arange(24)], [0])
    with pytest.raises(UserError, match="2 to 256"):
        _probe().fit_predict_subsets(
            *train, [np.arange(24)], *val, *test, grid=GRID, n_classes=1, seeds=[0]
        )
    with pytest.raises(UserError, match="nothing fitted"):
        _probe().predict_masks(0, test[0], GRID)
    head = LinearSegmentationHead(np.zeros((CLASSES, 4), np.float32), np.zeros(CLASSES, np.float32))
    with pytest.raises(UserError, match="fitted on 4"):
        predict_masks(head, test[0], GRID, SIZE, device="cpu")
