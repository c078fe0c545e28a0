"""Kaggle Carvana: the competition score at full resolution, the threshold sweep, and the submission CSV.

Kaggle scores the mean per-image Dice of masks at the photos' own 1918x1280, so the network's
logits are upsampled to that size before thresholding, both here and in the submission. Every
score is counted by ``metrics.BinaryCounts``; this module only decides what is counted.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from unet_lib.checkpoint import atomic_write
from unet_lib.data.carvana import CarvanaDataset
from unet_lib.errors import InputError
from unet_lib.metrics import BinaryCounts, check_threshold
from unet_lib.predict import predict_batches, predict_full_res, predict_labels, tta_average, upsample
from unet_lib.rle import rle_encode

HEADER = ("img", "rle_mask")
DEFAULT_THRESHOLDS = tuple(i / 20 for i in range(1, 20))  # 0.05, 0.10, ..., 0.95 (0.5 exactly among them)


def mask_coverage(dataset: CarvanaDataset, progress: bool = True) -> torch.Tensor:
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
        for i in tqdm(range(len(dataset)), desc="mask coverage", leave=False, disable=not progress)
    ]
    return torch.tensor(shares, dtype=torch.float64)


def sweep_thresholds(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str = "cpu",
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    tta: bool = False,
    progress: bool = True,
) -> BinaryCounts:
    """Count TP, FP, FN and TN pixels of every image at every threshold, in one pass over ``loader``.

    Args:
        model: A one-class network on ``device``.
        loader: Batches of ``(images [B, 3, H, W], masks [B, H, W])``, not shuffled, so that image
            ``n`` of the result is item ``n`` of the dataset.
        device: Where the model lives.
        thresholds: Probabilities strictly between 0 and 1.
        tta: Average the logits with those of the horizontally flipped images.
        progress: Show a progress bar.
    """
    counts = BinaryCounts(thresholds, device)
    for _, logits, masks in predict_batches(model, loader, torch.device(device), tta, progress=progress, desc="sweep"):
        counts.update(logits, masks)
    if len(counts) == 0:
        raise InputError("loader: no images to evaluate")
    return counts


class _WithFullMasks(Dataset):
    """A Carvana dataset's ``(image, mask)`` items at training size, plus the mask at full size."""

    def __init__(self, dataset: CarvanaDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, mask = self.dataset[index]
        return image, mask, torch.from_numpy(self.dataset.read_mask(index))


def _collate(items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple:
    """Stack images and masks; keep the full-size masks as a list (photos may differ in size)."""
    images, masks, full_masks = zip(*items, strict=True)
    return torch.stack(images), torch.stack(masks), list(full_masks)


def evaluate_carvana(
    model: nn.Module,
    dataset: CarvanaDataset,
    device: torch.device,
    threshold: float = 0.5,
    loss_fn: nn.Module | None = None,
    batch_size: int = 4,
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Score a binary model the way Kaggle does, and at training resolution, with and without flip TTA.

    Args:
        model: A one-class U-Net on ``device``.
        dataset: Carvana items at the network's size (``CarvanaDataset(..., size=...)``, no augmentation).
        device: Where the model lives.
        threshold: A pixel is "car" when its probability exceeds this.
        loss_fn: Also report the mean loss at training resolution (without TTA).
        batch_size: Images per forward pass.
        num_workers: DataLoader processes decoding images and masks.
        progress: Show a progress bar.

    Returns:
        ``dice`` (mean per-image Dice at training size), ``dice_full_res`` (the Kaggle metric:
        logits upsampled to the photo's size, compared with the full-size mask), the same two with
        horizontal-flip TTA (``dice_tta``, ``dice_full_res_tta``), and at training size without TTA
        ``pixel_accuracy``, ``precision``, ``recall``, ``iou`` (and ``loss`` with ``loss_fn``).
    """
    check_threshold(threshold)
    loader = DataLoader(_WithFullMasks(dataset), batch_size, num_workers=num_workers, collate_fn=_collate)
    views = {name: BinaryCounts([threshold], device) for name in ("", "_full_res", "_tta", "_full_res_tta")}
    loss_sum = 0.0
    for images, logits, masks, full_masks in predict_batches(model, loader, device, progress=progress, desc="evaluate"):
        if loss_fn is not None:
            loss_sum += loss_fn(logits, masks).item() * len(images)
        for suffix, out in (("", logits), ("_tta", tta_average(model, images, logits))):
            views[suffix].update(out, masks)
            for k, full in enumerate(full_masks):  # photos may differ in size: one at a time
                views[f"_full_res{suffix}"].update(upsample(out[k : k + 1], full.shape), full[None].to(device))
    if len(views[""]) == 0:
        raise InputError("dataset: no images to evaluate")
    result: dict[str, Any] = {} if loss_fn is None else {"loss": loss_sum / len(views[""])}
    result.update(views[""].scores())
    result.update({f"dice{suffix}": counts.scores()["dice"] for suffix, counts in views.items()})
    return result


def write_submission(
    model: nn.Module,
    image_paths: Sequence[str | Path],
    out_csv: str | Path,
    size: tuple[int, int],
    device: torch.device,
    threshold: float = 0.5,
    tta: bool = False,
    batch_size: int = 4,
    num_workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a Kaggle Carvana submission: one ``img,rle_mask`` row per image, at the image's own size.

    Rows are written as they are made, to a temporary file renamed at the end, so memory stays
    flat over the 100,064 test photos and an interrupted run never leaves a partial CSV behind.

    Args:
        model: A one-class U-Net on ``device``, in eval mode.
        image_paths: The photos, e.g. ``data/carvana/test/*.jpg``; ``img`` is each file's name.
        out_csv: Where to write the CSV.
        size: ``(H, W)`` the network sees.
        device: Where the model lives.
        threshold: A pixel is "car" when its probability exceeds this.
        tta: Average with the horizontally flipped prediction.
        batch_size: Images per forward pass.
        num_workers: DataLoader processes decoding JPEGs.
        overwrite: Replace an existing ``out_csv``.
        progress: Show a progress bar.

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
        rows = predict_full_res(
            model, paths, size, device, tta=tta, batch_size=batch_size, num_workers=num_workers, progress=progress
        )
        for index, logits in rows:
            mask = predict_labels(logits[None], threshold)[0]  # (H, W) 0/1 at the photo's size
            writer.writerow([paths[index].name, rle_encode(mask.to(torch.uint8).cpu().numpy())])
    return out_csv
