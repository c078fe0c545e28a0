"""Threshold sweeps and mask coverage checked against torchmetrics and against the mask files read by hand."""

import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.functional.classification import binary_stat_scores

from unet_lib.cli.carvana import DEFAULT_THRESHOLDS, mask_coverage, sweep_thresholds
from unet_lib.cli.pictures import predict_items
from unet_lib.data.carvana import CarvanaDataset
from unet_lib.errors import InputError
from unet_lib.metrics import dice_per_image


def channel_zero_model() -> nn.Module:
    """logits = channel 0 of the image, exactly (a 1x1 convolution with weights 1, 0, 0)."""
    model = nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))
        model.bias.zero_()
    return model.eval()


@pytest.fixture
def data():
    """Images whose channel 0 holds logits of probabilities halfway between the swept thresholds."""
    gen = torch.Generator().manual_seed(0)
    n, h, w = 7, 6, 9
    probs = (torch.randint(0, 20, (n, h, w), generator=gen).double() + 0.5) / 20  # 0.025, 0.075, ..., 0.975
    masks = (torch.rand(n, h, w, generator=gen) < probs.float()).long()
    masks[3] = 0  # an image without a car ...
    probs[3] = 0.025  # ... where nothing is predicted at any threshold: Dice 1
    images = torch.rand(n, 3, h, w, generator=gen)
    images[:, 0] = torch.log(probs / (1 - probs)).float()
    return images, masks, probs


def reference_counts(probs, masks, t):
    """[N, 4] as (TP, FP, FN, TN) from torchmetrics' [tp, fp, tn, fn, support]."""
    stats = binary_stat_scores(probs, masks, threshold=t, multidim_average="samplewise")
    return stats[:, [0, 1, 3, 2]]


def test_counts_match_torchmetrics_at_every_threshold(data):
    images, masks, probs = data
    loader = DataLoader(TensorDataset(images, masks), batch_size=3)
    sweep = sweep_thresholds(channel_zero_model(), loader, progress=False)
    assert sweep.counts.shape == (len(DEFAULT_THRESHOLDS), len(images), 4)
    assert sweep.thresholds.tolist() == list(DEFAULT_THRESHOLDS)
    for k, t in enumerate(DEFAULT_THRESHOLDS):
        assert torch.equal(sweep.counts[k], reference_counts(probs, masks, t)), t
    # Per-image Dice, its mean, the best threshold and the worst images, from an independent Dice.
    reference = torch.stack([dice_per_image(probs > t, masks).double() for t in DEFAULT_THRESHOLDS])  # [T, N]
    assert torch.allclose(sweep.dice(), reference)
    assert sweep.dice()[:, 3].eq(1).all()
    assert torch.allclose(sweep.mean_dice(), reference.mean(1))
    best = int(reference.mean(1).argmax())
    assert sweep.best_threshold() == pytest.approx((DEFAULT_THRESHOLDS[best], reference.mean(1)[best].item()))
    at_half = reference[DEFAULT_THRESHOLDS.index(0.5)]
    assert sweep.worst(3, 0.5) == torch.argsort(at_half, stable=True)[:3].tolist()
    assert at_half[sweep.worst(1, 0.5)[0]] == at_half.min()
    with pytest.raises(InputError, match="several were counted"):
        sweep.worst(3)


def test_pooled_scores_match_torchmetrics(data):
    images, masks, probs = data
    sweep = sweep_thresholds(channel_zero_model(), DataLoader(TensorDataset(images, masks), 4), progress=False)
    for t in (0.25, 0.5, 0.8):
        tp, fp, tn, fn, _ = binary_stat_scores(probs, masks, threshold=t).double().tolist()
        scores = sweep.scores(t)
        assert scores["pixel_accuracy"] == pytest.approx((tp + tn) / (tp + fp + tn + fn))
        assert scores["precision"] == pytest.approx(tp / (tp + fp))
        assert scores["recall"] == pytest.approx(tp / (tp + fn))
        assert scores["iou"] == pytest.approx(tp / (tp + fp + fn))
        assert scores["dice"] == pytest.approx(dice_per_image(probs > t, masks).double().mean().item())
    curves = sweep.curves()
    assert curves["dice"] == pytest.approx(sweep.mean_dice().tolist())
    assert curves["recall"] == sorted(curves["recall"], reverse=True)  # a higher threshold never finds more


def test_nothing_predicted_gives_nan_precision():
    images = torch.full((2, 3, 4, 4), -20.0)  # logits far below every threshold
    masks = torch.ones(2, 4, 4, dtype=torch.long)
    scores = sweep_thresholds(channel_zero_model(), [(images, masks)], progress=False).scores(0.5)
    assert math.isnan(scores["precision"]) and scores["recall"] == 0 and scores["dice"] == 0


def test_tta_averages_with_the_mirrored_prediction():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 1, (1, 3), padding=(0, 1)).eval()  # looks left and right: not mirror-symmetric
    images = torch.rand(5, 3, 8, 10)
    masks = (torch.rand(5, 8, 10) < 0.5).long()
    with torch.no_grad():
        logits = (model(images) + model(images.flip(-1)).flip(-1)) / 2
        plain = model(images)
    thresholds = (0.3, 0.5, 0.7)
    sweep = sweep_thresholds(
        model, [(images[:2], masks[:2]), (images[2:], masks[2:])], thresholds, tta=True, progress=False
    )
    no_tta = sweep_thresholds(model, [(images, masks)], thresholds=thresholds, progress=False)
    for k, t in enumerate(thresholds):
        assert torch.equal(sweep.counts[k], reference_counts(logits.sigmoid()[:, 0], masks, t))
        assert torch.equal(no_tta.counts[k], reference_counts(plain.sigmoid()[:, 0], masks, t))
    assert not torch.equal(sweep.counts, no_tta.counts)


def test_bad_inputs(data):
    images, masks, _ = data
    loader = [(images, masks)]
    model = channel_zero_model()
    for bad in ((0.0, 0.5), (0.5, 1.0), ()):
        with pytest.raises(InputError, match="thresholds"):
            sweep_thresholds(model, loader, thresholds=bad)
    with pytest.raises(InputError, match="no images"):
        sweep_thresholds(model, [])
    with pytest.raises(InputError, match="one output channel"):
        sweep_thresholds(nn.Conv2d(3, 2, 1), loader, progress=False)
    with pytest.raises(InputError, match="threshold: 0.33 was not counted"):
        sweep_thresholds(model, loader, progress=False).scores(0.33)


def test_predict_items_with_and_without_masks(data):
    images, masks, probs = data
    model = channel_zero_model()
    got_images, got_probs, got_masks = predict_items(model, TensorDataset(images, masks), [4, 1])
    assert torch.equal(got_images, images[[4, 1]]) and torch.equal(got_masks, masks[[4, 1]])
    assert got_probs.shape == (2, 1, 6, 9)
    assert torch.allclose(got_probs[:, 0].double(), probs[[4, 1]], atol=1e-6)
    only_images = [images[i] for i in range(len(images))]  # a test split: images without masks
    _, test_probs, no_masks = predict_items(model, only_images, [0], tta=True)
    assert no_masks is None and torch.allclose(test_probs[0, 0].double(), probs[0], atol=1e-6)
    with pytest.raises(InputError, match="indices"):
        predict_items(model, only_images, [])


def test_mask_coverage_reads_every_mask(carvana_tree):
    dataset = CarvanaDataset(carvana_tree, "train", size=(16, 24))
    coverage = mask_coverage(dataset, progress=False)
    by_hand = [np.asarray(Image.open(carvana_tree / "train_masks" / f"{i}_mask.gif")).mean() for i in dataset.ids]
    assert coverage.shape == (len(dataset),) and len(dataset) == 8  # 4 of the 5 cars
    assert coverage.tolist() == pytest.approx(by_hand)
    assert 0 < coverage.min() and coverage.max() < 1
    (carvana_tree / "test").mkdir()
    shutil.copy(dataset.image_path(0), carvana_tree / "test" / "x_01.jpg")
    with pytest.raises(InputError, match="test split has no masks"):
        mask_coverage(CarvanaDataset(carvana_tree, "test"))


def test_predict_items_predicts_in_the_precision_it_is_given(data, monkeypatch):
    """``amp_dtype`` reaches ``predict_logits``, so that figures show the predictions the scores were counted on."""
    import unet_lib.cli.pictures as pictures

    images, masks, _ = data
    seen = []
    real = pictures.predict_logits

    def spy(*args, **kwargs):
        seen.append(kwargs.get("amp_dtype"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pictures, "predict_logits", spy)
    predict_items(channel_zero_model(), TensorDataset(images, masks), [0])
    predict_items(channel_zero_model(), TensorDataset(images, masks), [0], amp_dtype=torch.bfloat16)
    assert seen == [None, torch.bfloat16]
