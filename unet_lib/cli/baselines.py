"""Two trivial Carvana baselines, so a network's Dice can be read against what needs no learning.

A U-Net is only interesting if it beats predicting the average car, and beats the best
single threshold on brightness or on colour distance from the background.
"""

from __future__ import annotations

import torch

from unet_lib.errors import InputError
from unet_lib.metrics import dice_per_image, dice_score

NUM_THRESHOLDS = 256  # grid of candidate thresholds per feature


def _check_masks(masks: torch.Tensor, name: str) -> None:
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise InputError(f"{name}: expected a non-empty mask batch of shape [N, H, W], got {tuple(masks.shape)}")


def mean_mask_dice(train_masks: torch.Tensor, val_masks: torch.Tensor) -> float:
    """Dice of predicting the same mask for every image: pixels that are car in at least half the training masks.

    Args:
        train_masks: Training masks [N, H, W] with values 0/1.
        val_masks: Validation masks [M, H, W] with values 0/1, same H and W.

    Returns:
        Mean per-image Dice over the validation masks.
    """
    _check_masks(train_masks, "train_masks")
    _check_masks(val_masks, "val_masks")
    if train_masks.shape[1:] != val_masks.shape[1:]:
        raise InputError(
            f"train_masks and val_masks: expected the same H and W, got {tuple(train_masks.shape[1:])}"
            f" and {tuple(val_masks.shape[1:])}"
        )
    mean_mask = train_masks.float().mean(0) >= 0.5  # [H, W]
    return dice_per_image(mean_mask.expand_as(val_masks), val_masks).mean().item()


def _features(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-pixel brightness and colour distance from the background: name -> [N, H, W]."""
    brightness = images.mean(1)
    # The background colour of each image: the median colour of its outermost ring of pixels.
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., 1:-1, 0], images[..., 1:-1, -1]], -1)
    background = border.median(-1).values  # [N, 3]
    distance = (images - background[..., None, None]).norm(dim=1)
    return {"brightness": brightness, "colour distance": distance}


def _best_threshold(feature: torch.Tensor, masks: torch.Tensor) -> tuple[float, str, float]:
    """Best (dice, polarity, t) of ``feature >= t`` or ``feature < t``, t on a grid from min to max."""
    n = feature.shape[0]
    low, high = feature.min().item(), feature.max().item()
    step = max(high - low, 1e-12) / NUM_THRESHOLDS
    # Bin every pixel once (bin j holds values in [low + j * step, low + (j + 1) * step)); cumulative
    # counts over the bins then give the prediction of every threshold t_j = low + j * step at once.
    bins = ((feature - low) / step).long().clamp(0, NUM_THRESHOLDS - 1).flatten(1)  # [N, H * W]
    index = (bins + torch.arange(n)[:, None] * NUM_THRESHOLDS).flatten()
    all_counts = torch.bincount(index, minlength=n * NUM_THRESHOLDS).view(n, -1).double()  # [N, T]
    car_counts = torch.bincount(index, weights=masks.flatten().double(), minlength=n * NUM_THRESHOLDS).view(n, -1)
    # "< t_j" predicts bins 0 .. j-1: the counts before bin j; ">= t_j" predicts the rest.
    below_pred = all_counts.cumsum(1) - all_counts  # [N, T]
    below_hit = car_counts.cumsum(1) - car_counts
    target = masks.flatten(1).sum(1, dtype=torch.float64)[:, None]  # [N, 1]
    pixels = all_counts.sum(1, keepdim=True)
    best = (-1.0, ">=", low)
    for polarity, pred, hit in (("<", below_pred, below_hit), (">=", pixels - below_pred, target - below_hit)):
        dice = dice_score(hit, pred - hit, target - hit).mean(0)  # [T] from TP, FP = pred - TP, FN = target - TP
        j = int(dice.argmax())
        if dice[j].item() > best[0]:
            best = (dice[j].item(), polarity, low + j * step)
    return best


def threshold_dice(val_images: torch.Tensor, val_masks: torch.Tensor) -> dict:
    """The best single global threshold on brightness or on colour distance from the background.

    The threshold, feature and direction are chosen on the validation images themselves, so this
    is an optimistic upper bound for any method that thresholds one of these features.

    Args:
        val_images: Images [N, 3, H, W], floats in [0, 1].
        val_masks: Masks [N, H, W] with values 0/1.

    Returns:
        ``{"dice": mean per-image Dice, "feature": e.g. "colour distance >= t", "threshold": t}``;
        brightness is the mean of R, G and B, colour distance the Euclidean RGB distance.
    """
    if val_images.ndim != 4 or val_images.shape[1] != 3:
        raise InputError(f"val_images: expected an image batch of shape [N, 3, H, W], got {tuple(val_images.shape)}")
    _check_masks(val_masks, "val_masks")
    if val_images.shape[0] != val_masks.shape[0] or val_images.shape[2:] != val_masks.shape[1:]:
        raise InputError(
            f"val_images and val_masks: expected matching N, H, W, got {tuple(val_images.shape)} and {tuple(val_masks.shape)}"
        )
    masks = val_masks.bool()
    best = {"dice": -1.0}
    for name, feature in _features(val_images.float()).items():
        dice, polarity, threshold = _best_threshold(feature, masks)
        if dice > best["dice"]:
            best = {"dice": dice, "feature": f"{name} {polarity} t", "threshold": threshold}
    return best
