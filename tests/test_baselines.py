"""The trivial Carvana baselines, on tiny inputs whose answers are known, and against a plain-loop search."""

import pytest
import torch

from unet_lib.cli.baselines import NUM_THRESHOLDS, mean_mask_dice, threshold_dice
from unet_lib.errors import InputError


def square_masks(n: int, size: int = 8) -> torch.Tensor:
    masks = torch.zeros(n, size, size, dtype=torch.long)
    masks[:, 2:6, 3:7] = 1
    return masks


def test_mean_mask_equal_to_every_val_mask_scores_one():
    assert mean_mask_dice(square_masks(5), square_masks(3)) == pytest.approx(1.0)


def test_mean_mask_hand_worked():
    train = torch.zeros(3, 1, 4, dtype=torch.long)
    train[0, 0, :2] = 1  # pixels 0, 1
    train[1, 0, 1:3] = 1  # pixels 1, 2
    train[2, 0, 1] = 1  # pixel 1
    # Car in at least half the masks: pixel 1 (3 of 3) only; pixels 0 and 2 are car in 1 of 3.
    val = torch.tensor([[[0, 1, 1, 0]], [[0, 0, 0, 1]]])
    # Dice 2 * 1 / (1 + 2) for the first, 0 for the second.
    assert mean_mask_dice(train, val) == pytest.approx((2 / 3 + 0) / 2)


def test_mean_mask_ties_count_as_car():
    train = torch.tensor([[[1, 0]], [[0, 0]]])  # pixel 0 is car in exactly half
    assert mean_mask_dice(train, torch.tensor([[[1, 0]]])) == pytest.approx(1.0)


def test_separable_brightness_scores_one():
    masks = square_masks(4)
    images = 0.2 + 0.6 * masks[:, None].float().expand(-1, 3, -1, -1)  # bright cars on a dark floor
    result = threshold_dice(images, masks)
    assert result["dice"] == pytest.approx(1.0)
    assert result["feature"] in ("brightness >= t", "colour distance >= t")
    dark = threshold_dice(1 - images, masks)  # dark cars on a bright floor
    assert dark["dice"] == pytest.approx(1.0)


def test_colour_only_separable_needs_colour_distance():
    masks = square_masks(3)
    images = torch.full((3, 3, 8, 8), 0.5)
    car = masks.bool()
    # Same brightness, different hue: red-ish car on a grey floor.
    images[:, 0][car], images[:, 1][car], images[:, 2][car] = 0.8, 0.35, 0.35
    result = threshold_dice(images, masks)
    assert result["feature"] == "colour distance >= t"
    assert result["dice"] == pytest.approx(1.0)


def reference_features(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Brightness, and distance from the median colour of each image's outer ring, pixel by pixel."""
    n, _, h, w = images.shape
    distance = torch.zeros(n, h, w)
    for i in range(n):
        ring = [images[i, :, y, x] for y in range(h) for x in range(w) if y in (0, h - 1) or x in (0, w - 1)]
        background = torch.stack(ring).median(0).values
        distance[i] = ((images[i] - background[:, None, None]) ** 2).sum(0).sqrt()
    return {"brightness": images.mean(1), "colour distance": distance}


def mean_dice(pred: torch.Tensor, masks: torch.Tensor) -> float:
    scores = []
    for p, m in zip(pred.bool(), masks.bool(), strict=True):
        total = p.sum().item() + m.sum().item()
        scores.append(1.0 if total == 0 else 2 * (p & m).sum().item() / total)
    return sum(scores) / len(scores)


def brute_force(images: torch.Tensor, masks: torch.Tensor) -> float:
    """Every feature, direction and grid threshold tried one by one."""
    best = 0.0
    for feature in reference_features(images).values():
        low, high = feature.min().item(), feature.max().item()
        for j in range(NUM_THRESHOLDS):
            t = low + j * (high - low) / NUM_THRESHOLDS
            best = max(best, mean_dice(feature >= t, masks), mean_dice(feature < t, masks))
    return best


def test_matches_brute_force_search_and_reports_its_threshold():
    generator = torch.Generator().manual_seed(1)
    masks = torch.zeros(3, 6, 7, dtype=torch.long)
    masks[0, 1:4, 2:5] = 1
    masks[1, 2:6, 0:3] = 1  # touches the border
    # image 2 has no car at all
    for shift in (0.3, -0.3):  # bright cars, then dark cars
        images = torch.rand(3, 3, 6, 7, generator=generator) * 0.6 + 0.2 + shift * masks[:, None]
        result = threshold_dice(images, masks)
        assert result["dice"] == pytest.approx(brute_force(images, masks), abs=1e-9)
        name, polarity, _ = result["feature"].rsplit(" ", 2)
        feature = reference_features(images)[name]
        pred = feature >= result["threshold"] if polarity == ">=" else feature < result["threshold"]
        assert mean_dice(pred, masks) == pytest.approx(result["dice"], abs=1e-6)


def test_bad_inputs():
    masks = square_masks(2)
    with pytest.raises(InputError, match="val_images"):
        threshold_dice(torch.rand(2, 1, 8, 8), masks)
    with pytest.raises(InputError, match="val_images and val_masks"):
        threshold_dice(torch.rand(3, 3, 8, 8), masks)
    with pytest.raises(InputError, match="train_masks and val_masks"):
        mean_mask_dice(square_masks(2, 8), square_masks(2, 6))
    with pytest.raises(InputError, match="val_masks"):
        mean_mask_dice(masks, masks[:0])
