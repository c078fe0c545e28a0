"""A closer look at a binary (Carvana) model: mask coverage, per-image scores at many thresholds, worst images.

Everything is computed from four pixel counts per image and threshold (TP, FP, FN, TN), gathered in
one pass over the data, so a sweep over thresholds costs no more than a single evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from unet_lib.data.carvana import CarvanaDataset
from unet_lib.engine import predict_labels
from unet_lib.errors import InputError
from unet_lib.predict import predict_logits

DEFAULT_THRESHOLDS = tuple(i / 20 for i in range(1, 20))  # 0.05, 0.10, ..., 0.95 (0.5 exactly among them)
COUNT_NAMES = ("tp", "fp", "fn", "tn")


def mask_coverage(dataset: CarvanaDataset, progress: bool = True) -> torch.Tensor:
    """Share of car pixels in each mask of a Carvana dataset, read at full size without the photos.

    Args:
        dataset: A :class:`~unet_lib.data.carvana.CarvanaDataset` with masks (not the test split).
        progress: Show a progress bar.

    Returns:
        Float tensor [N] of values in [0, 1], in the dataset's order.
    """
    if dataset.split == "test":
        raise InputError("dataset: the test split has no masks; use split='train' or 'val'")
    shares = [
        float(dataset.read_mask(i).mean())
        for i in tqdm(range(len(dataset)), desc="mask coverage", leave=False, disable=not progress)
    ]
    return torch.tensor(shares, dtype=torch.float64)


def _dice(counts: torch.Tensor) -> torch.Tensor:
    """Dice 2TP / (2TP + FP + FN) from counts [..., 4]; 1 where the image has no car and none is predicted."""
    tp, fp, fn = counts[..., 0].double(), counts[..., 1].double(), counts[..., 2].double()
    total = 2 * tp + fp + fn
    return torch.where(total > 0, 2 * tp / total.clamp(min=1), torch.ones_like(total))


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan  # an undefined score is NaN, as in ConfusionMatrix


@dataclass(frozen=True)
class ThresholdSweep:
    """Pixel counts of every image at every threshold, and the scores they give.

    Attributes:
        thresholds: Probabilities tried, float64 [T]; a pixel is "car" when its probability exceeds one.
        counts: int64 [T, N, 4]: true positives, false positives, false negatives and true negatives
            of image ``n`` at threshold ``t``.
    """

    thresholds: torch.Tensor
    counts: torch.Tensor

    def index(self, threshold: float) -> int:
        """Position of ``threshold`` among the thresholds tried."""
        close = (self.thresholds - threshold).abs() < 1e-9
        if not close.any():
            raise InputError(f"threshold: {threshold} was not swept; expected one of {self.thresholds.tolist()}")
        return int(close.nonzero()[0])

    def dice(self) -> torch.Tensor:
        """Per-image Dice (the Kaggle metric before averaging), float64 [T, N]."""
        return _dice(self.counts)

    def mean_dice(self) -> torch.Tensor:
        """Mean per-image Dice at each threshold, float64 [T]."""
        return self.dice().mean(1)

    def best_threshold(self) -> tuple[float, float]:
        """``(threshold, mean Dice)`` where the mean per-image Dice is highest (the lower one on ties)."""
        mean = self.mean_dice()
        best = int(torch.nonzero(mean == mean.max())[0])
        return float(self.thresholds[best]), float(mean[best])

    def scores(self, threshold: float = 0.5) -> dict[str, float]:
        """Scores at one threshold: ``dice`` (mean per image), and over all pixels pooled
        ``pixel_accuracy``, ``precision``, ``recall`` and ``iou`` (NaN when undefined)."""
        t = self.index(threshold)
        tp, fp, fn, tn = self.counts[t].sum(0).double().tolist()  # pooled over the images
        return {
            "dice": float(_dice(self.counts[t]).mean()),
            "pixel_accuracy": _ratio(tp + tn, tp + fp + fn + tn),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "iou": _ratio(tp, tp + fp + fn),
        }

    def curves(self) -> dict[str, list[float]]:
        """Mean per-image Dice and pooled precision and recall at each threshold, for plotting."""
        rows = [self.scores(float(t)) for t in self.thresholds]
        return {key: [row[key] for row in rows] for key in ("dice", "precision", "recall")}

    def worst(self, k: int = 4, threshold: float = 0.5) -> list[int]:
        """Indices of the ``k`` images with the lowest Dice at ``threshold``, worst first."""
        dice = self.dice()[self.index(threshold)]
        return torch.argsort(dice, stable=True)[:k].tolist()


@torch.inference_mode()
def sweep_thresholds(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str = "cpu",
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    tta: bool = False,
    progress: bool = True,
) -> ThresholdSweep:
    """Count TP, FP, FN and TN pixels of every image at every threshold, in one pass over ``loader``.

    Args:
        model: A one-class network, in eval mode, on ``device``.
        loader: Batches of ``(images [B, 3, H, W], masks [B, H, W])``, not shuffled, so that image
            ``n`` of the result is item ``n`` of the dataset.
        device: Where the model lives.
        thresholds: Probabilities strictly between 0 and 1.
        tta: Average the logits with those of the horizontally flipped images.
        progress: Show a progress bar.

    Returns:
        A :class:`ThresholdSweep`.
    """
    values = torch.tensor([float(t) for t in thresholds], dtype=torch.float64)
    if values.numel() == 0 or not bool(((values > 0) & (values < 1)).all()):
        raise InputError(f"thresholds: expected probabilities strictly between 0 and 1, got {list(thresholds)}")
    model.eval()
    batches = []
    for images, masks in tqdm(loader, desc="threshold sweep", leave=False, disable=not progress):
        logits = predict_logits(model, images.to(device), tta=tta)  # (B, 1, H, W)
        if logits.shape[1] != 1:
            raise InputError(f"model: expected one output channel (a binary model), got {logits.shape[1]}")
        truth = masks.to(device).flatten(1).bool()  # (B, H*W)
        per_threshold = []
        for t in values.tolist():
            pred = predict_labels(logits, t).flatten(1).bool()  # (B, H*W), the same rule as evaluate()
            counts = [pred & truth, pred & ~truth, ~pred & truth, ~pred & ~truth]  # TP, FP, FN, TN
            per_threshold.append(torch.stack([c.sum(1) for c in counts], dim=1))  # (B, 4)
        batches.append(torch.stack(per_threshold).cpu())  # (T, B, 4)
    if not batches:
        raise InputError("loader: no images to evaluate")
    return ThresholdSweep(values, torch.cat(batches, dim=1))


@torch.inference_mode()
def predict_items(
    model: nn.Module, dataset: Sequence, indices: Sequence[int], tta: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Predict a few items of a dataset, for figures.

    Args:
        model: A one-class network in eval mode.
        dataset: Items ``(image, mask)`` or images alone (a test split).
        indices: Which items.
        tta: Average with the prediction on the horizontally flipped images.

    Returns:
        ``(images [K, 3, H, W], car probabilities [K, 1, H, W], masks [K, H, W] or None)`` on the CPU.
    """
    if len(indices) == 0:
        raise InputError("indices: expected at least one item to predict")
    items = [dataset[i] for i in indices]
    with_masks = isinstance(items[0], (tuple, list))
    images = torch.stack([item[0] if with_masks else item for item in items])
    device = next(model.parameters()).device
    probs = predict_logits(model, images.to(device), tta=tta).sigmoid().cpu()  # (K, 1, H, W)
    masks = torch.stack([item[1] for item in items]) if with_masks else None
    return images, probs, masks
