"""Kaggle Carvana tools: the threshold sweep, the masks' coverage, and the submission CSV.

Kaggle scores the mean per-image Dice of masks at the photos' own 1918x1280, so the network's
logits are upsampled to that size before thresholding, in the submission as in ``evaluate``'s
full-resolution scores (``cli.full_res.binary_metrics``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from unet_lib.checkpoint import atomic_write
from unet_lib.cli.pictures import Inference, check_threshold, predict_full_res
from unet_lib.data.carvana import CarvanaDataset
from unet_lib.errors import InputError
from unet_lib.evaluation import Scores, evaluate, predict_labels
from unet_lib.metrics import BinaryCounts
from unet_lib.runtime import show_progress

HEADER = ("img", "rle_mask")
DEFAULT_THRESHOLDS = tuple(i / 20 for i in range(1, 20))  # 0.05, 0.10, ..., 0.95 (0.5 exactly among them)


def rle_encode(mask: np.ndarray) -> str:
    """Encode a binary mask as Carvana run-length pairs.

    Args:
        mask: Array of shape (H, W) holding 0/1 (any integer type) or booleans.

    Returns:
        ``"start length ..."`` with 1-indexed row-major starts; ``""`` for an empty mask.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"mask: expected a 2-D array (H, W), got shape {mask.shape}")
    if mask.dtype != bool and mask.size:
        # For integers the range check is enough (and much cheaper than comparing every pixel twice).
        in_range = mask.min() >= 0 and mask.max() <= 1
        if not in_range or (mask.dtype.kind not in "iu" and not np.isin(mask, (0, 1)).all()):
            raise InputError("mask: expected only the values 0 and 1")
    pixels = mask.reshape(-1).astype(bool)
    # A zero on each side makes every run start with a 0->1 and end with a 1->0 change.
    padded = np.concatenate([[False], pixels, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1]) + 1  # 1-indexed [start, end+1, start, end+1, ...]
    changes[1::2] -= changes[::2]  # end+1 -> length
    return " ".join(changes.astype(str).tolist())


def mask_coverage(dataset: CarvanaDataset, progress: bool | None = None) -> torch.Tensor:
    """Share of car pixels in each mask of a Carvana dataset, read at full size without the photos.

    Args:
        dataset: A :class:`~unet_lib.data.carvana.CarvanaDataset` with masks (not the test split).
        progress: Show a progress bar.

    Returns:
        float64 [N] of values in [0, 1], in the dataset's order.
    """
    if dataset.split == "test":
        raise InputError("dataset: the test split has no masks; use split='train' or 'val'")
    shares = [
        float(dataset.read_mask(i).mean())
        for i in tqdm(range(len(dataset)), desc="mask coverage", leave=False, disable=not show_progress(progress))
    ]
    return torch.tensor(shares, dtype=torch.float64)


class ThresholdCounts(BinaryCounts):
    """:class:`~unet_lib.metrics.BinaryCounts` read as a threshold sweep: the best threshold, curves, the worst images."""

    def mean_dice(self) -> torch.Tensor:
        """Mean per-image Dice at each threshold, float64 [T]."""
        return self.dice().mean(1)

    def best_threshold(self) -> tuple[float, float]:
        """``(threshold, mean Dice)`` where the mean per-image Dice is highest (the lower one on ties)."""
        mean = self.mean_dice()
        best = int(torch.nonzero(mean == mean.max())[0])
        return float(self.thresholds[best]), float(mean[best])

    def curves(self) -> dict[str, list[float]]:
        """Mean per-image Dice and pooled precision and recall at each threshold, for plotting."""
        rows = [self.scores(float(t)) for t in self.thresholds]
        return {key: [row[key] for row in rows] for key in ("dice", "precision", "recall")}

    def worst(self, k: int = 4, threshold: float | None = None) -> list[int]:
        """Indices of the ``k`` images with the lowest Dice at ``threshold``, worst first."""
        dice = self.dice()[self.index(threshold)]
        return torch.argsort(dice, stable=True)[:k].tolist()


class Sweep(Scores):
    """:class:`~unet_lib.evaluation.Scores` at many thresholds, keeping the counts (``self.counts``) for curves."""

    def new_counts(self, device: torch.device) -> ThresholdCounts:
        return ThresholdCounts(self.thresholds, device)

    def compute(self) -> dict:
        return {}


def sweep_thresholds(
    model: nn.Module,
    loader: Iterable,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    tta: bool = False,
    progress: bool | None = None,
    amp_dtype: torch.dtype | None = None,
) -> ThresholdCounts:
    """Count TP, FP, FN and TN pixels of every image at every threshold, in one pass over ``loader``.

    Args:
        model: A one-class network.
        loader: Batches of ``(images [B, 3, H, W], masks [B, H, W])``, not shuffled, so that image
            ``n`` of the result is item ``n`` of the dataset.
        thresholds: Probabilities strictly between 0 and 1.
        tta: Average the logits with those of the horizontally flipped images.
        progress: Show a progress bar (None: on a terminal or in Jupyter only).
        amp_dtype: Autocast the model in this dtype (``runtime.Precision.dtype``; None: fp32).
    """
    BinaryCounts(thresholds)  # checks them before any work
    sweep = Sweep(1, thresholds, tta=tta)
    evaluate(model, loader, [sweep], amp_dtype=amp_dtype, progress=progress)
    if len(sweep.counts) == 0:
        raise InputError("loader: no images to evaluate")
    return sweep.counts


def write_submission(
    model: nn.Module,
    image_paths: Sequence[str | Path],
    out_csv: str | Path,
    how: Inference,
    threshold: float = 0.5,
    overwrite: bool = False,
) -> Path:
    """Write a Kaggle Carvana submission: one ``img,rle_mask`` row per image, at the image's own size.

    Rows are written as they are made, to a temporary file renamed at the end, so memory stays
    flat over the 100,064 test photos and an interrupted run never leaves a partial CSV behind.

    Args:
        model: A one-class U-Net.
        image_paths: The photos, e.g. ``data/carvana/test/*.jpg``; ``img`` is each file's name.
        out_csv: Where to write the CSV.
        how: Size, TTA and batches (:class:`~unet_lib.cli.pictures.Inference`).
        threshold: A pixel is "car" when its probability exceeds this.
        overwrite: Replace an existing ``out_csv``.

    Returns:
        The path of the CSV.
    """
    check_threshold(threshold)
    out_csv = Path(out_csv)
    paths = [Path(p) for p in image_paths]
    if out_csv.exists() and not overwrite:
        raise InputError(f"{out_csv}: already exists; pass --overwrite (overwrite=True) or choose another file")
    if not paths:
        raise InputError("image_paths: expected at least one image to predict")
    with atomic_write(out_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for index, logits in predict_full_res(model, paths, how):
            mask = predict_labels(logits[None], threshold)[0]  # (H, W) 0/1 at the photo's size
            writer.writerow([paths[index].name, rle_encode(mask.to(torch.uint8).cpu().numpy())])
    return out_csv
