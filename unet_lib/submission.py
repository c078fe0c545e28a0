"""Kaggle Carvana: the competition score at full resolution, and the submission CSV.

Kaggle scores the mean per-image Dice of masks at the photos' own 1918x1280, so the network's
logits are upsampled to that size before thresholding, both here and in the submission.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from unet_lib.data.carvana import CarvanaDataset
from unet_lib.engine import predict_labels
from unet_lib.errors import InputError
from unet_lib.metrics import ConfusionMatrix, dice_per_image
from unet_lib.predict import predict_full_res, upsample
from unet_lib.rle import rle_encode

HEADER = ("img", "rle_mask")


def check_threshold(threshold: float) -> float:
    """A probability threshold strictly between 0 and 1 (0 and 1 would mark every or no pixel)."""
    if not 0 < threshold < 1:
        raise InputError(f"threshold: expected a probability strictly between 0 and 1, got {threshold}")
    return threshold


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


@torch.inference_mode()
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
    model.eval()
    loader = DataLoader(_WithFullMasks(dataset), batch_size, num_workers=num_workers, collate_fn=_collate)
    matrix = ConfusionMatrix(2)
    scores: dict[str, list[torch.Tensor]] = {"dice": [], "dice_full_res": [], "dice_tta": [], "dice_full_res_tta": []}
    loss_sum, num_images = 0.0, 0
    for images, masks, full_masks in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
        images, masks = images.to(device), masks.to(device)
        logits = model(images).float()  # (B, 1, h, w)
        flipped = model(images.flip(-1)).float().flip(-1)  # the mirrored images' logits, mirrored back
        if loss_fn is not None:
            loss_sum += loss_fn(logits, masks).item() * len(images)
        num_images += len(images)
        matrix.update(predict_labels(logits, threshold).cpu(), masks.cpu())
        for suffix, out in (("", logits), ("_tta", (logits + flipped) / 2)):
            scores[f"dice{suffix}"].append(dice_per_image(predict_labels(out, threshold), masks).cpu())
            for k, full in enumerate(full_masks):
                big = predict_labels(upsample(out[k : k + 1], full.shape), threshold)  # (1, H, W)
                scores[f"dice_full_res{suffix}"].append(dice_per_image(big, full[None].to(device)).cpu())
    if num_images == 0:
        raise InputError("dataset: no images to evaluate")
    counts = matrix.compute()
    result: dict[str, Any] = {} if loss_fn is None else {"loss": loss_sum / num_images}
    result["pixel_accuracy"] = counts["pixel_accuracy"]
    result.update({key: torch.cat(values).double().mean().item() for key, values in scores.items()})
    result.update({key: counts[key][1].item() for key in ("precision", "recall", "iou")})
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
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_csv.with_name(f".{out_csv.name}.tmp")
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(HEADER)
            rows = predict_full_res(
                model, paths, size, device, tta=tta, batch_size=batch_size, num_workers=num_workers, progress=progress
            )
            for index, logits in rows:
                mask = predict_labels(logits[None], threshold)[0]  # (H, W) 0/1 at the photo's size
                writer.writerow([paths[index].name, rle_encode(mask.to(torch.uint8).cpu().numpy())])
        os.replace(tmp, out_csv)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_csv
