"""Predicting picture files at their own resolution: resize down, predict, upsample the logits back.

The prediction files (masks and overlays, Kaggle's CSV, Cityscapes' labelId PNGs), the photo widget and
the notebooks' figures are made here; each picture goes through ``evaluation.predict_logits``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from unet_lib.data.io import image_size, read_image
from unet_lib.data.transforms import resize_pair
from unet_lib.errors import InputError
from unet_lib.evaluation import predict_labels, predict_logits, upsample
from unet_lib.runtime import Precision, show_progress

PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")  # what predict reads


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """A probability strictly between 0 and 1 (0 and 1 would mark every pixel or none)."""
    if not 0 < threshold < 1:
        raise InputError(f"{name}: expected a probability strictly between 0 and 1, got {threshold}")
    return float(threshold)


@dataclass(frozen=True)
class Inference:
    """How many pictures are predicted: the network's input size, flip TTA, and the batches that feed it.

    Args:
        size: ``(H, W)`` the network sees, or None: each picture at its own size (a model predicting in tiles,
            :class:`~unet_lib.evaluation.Tiled`; batches of one, as pictures may differ in size).
        tta: Average with the horizontally flipped prediction.
        batch_size: Pictures per forward pass.
        num_workers: DataLoader processes decoding pictures.
        progress: Show a progress bar (None: on a terminal or in Jupyter only).
        precision: Autocast as it says (``runtime.Precision.choose``), and say so on stderr when the
            predicting begins (None: fp32, silently).
    """

    size: tuple[int, int] | None
    tta: bool = False
    batch_size: int = 4
    num_workers: int = 0
    progress: bool | None = None
    precision: Precision | None = None


class ResizedImages(Dataset):
    """Image files resized to the network's input size (None: as they are), for batched prediction.

    JPEGs are decoded straight at a reduced scale (see ``read_image``), so a DataLoader with a
    few workers keeps up with the network. Items are ``(image float [3, H, W] in [0, 1], original
    (height, width) as int64 [2])``.
    """

    def __init__(self, paths: Sequence[str | Path], size: tuple[int, int] | None):
        self.paths = [Path(p) for p in paths]
        self.size = None if size is None else tuple(size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.paths[index]
        width, height = image_size(path)  # from the header: the decoded JPEG may be smaller
        image = read_image(path, min_size=self.size)
        small = image if self.size is None else resize_pair(image, None, self.size)[0]
        return small.float() / 255, torch.tensor([height, width])


def predict_full_res(
    model: nn.Module, paths: Sequence[str | Path], how: Inference, desc: str = "predict"
) -> Iterator[tuple[int, torch.Tensor]]:
    """Predict many image files in batches, yielding each one's logits at its own resolution.

    Only one batch is held at a time, so memory stays flat however many files there are.

    Args:
        model: The network.
        paths: Image files.
        how: Size, TTA and batches (:class:`Inference`).
        desc: The progress bar's label.

    Yields:
        ``(index into paths, float32 logits [C, H, W] on the model's device)``, in the order of ``paths``.
    """
    device = next(model.parameters()).device
    loader = DataLoader(
        ResizedImages(paths, how.size), how.batch_size, num_workers=how.num_workers, pin_memory=device.type == "cuda"
    )
    amp_dtype = None if how.precision is None else how.precision.dtype
    if how.precision is not None:
        print(how.precision, file=sys.stderr, flush=True)
    index = 0
    for images, sizes in tqdm(loader, desc=desc, leave=False, disable=not show_progress(how.progress)):
        logits = predict_logits(model, images.to(device, non_blocking=True), tta=how.tta, amp_dtype=amp_dtype)
        for k in range(len(logits)):  # each photo back to its own size
            yield index, upsample(logits[k : k + 1], sizes[k].tolist())[0]  # (C, H, W)
            index += 1


def predict_file(
    model: nn.Module,
    path: str | Path,
    size: tuple[int, int] | None,
    threshold: float = 0.5,
    tta: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predict one image file at its original resolution, resized to ``size`` for the network (None: as it is, for
    a model predicting in tiles), under autocast in ``amp_dtype`` when given.

    Returns:
        ``(image uint8 [3, H, W], labels int64 [H, W])``: for a one-class model labels are 0/1.
    """
    device = next(model.parameters()).device
    image = read_image(path)  # grayscale, RGBA and 16-bit files are converted to RGB here
    small = image if size is None else resize_pair(image, None, size)[0]
    batch = (small.float() / 255).unsqueeze(0).to(device)  # (1, 3, h, w)
    logits = predict_logits(model, batch, out_size=tuple(image.shape[-2:]), tta=tta, amp_dtype=amp_dtype)
    return image, predict_labels(logits, threshold)[0].cpu()


def predict_items(
    model: nn.Module,
    dataset: Sequence,
    indices: Sequence[int],
    tta: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Predict a few items of a dataset, for figures.

    Args:
        model: A one-class network.
        dataset: Items ``(image, mask)`` or images alone (a test split).
        indices: Which items.
        tta: Average with the prediction on the horizontally flipped images.
        amp_dtype: Autocast in this dtype (None: fp32), as ``predict_logits``; pass the precision the model is
            scored in elsewhere (``Precision.dtype``) so that the figures show the same predictions.

    Returns:
        ``(images [K, 3, H, W], car probabilities [K, 1, H, W], masks [K, H, W] or None)`` on the CPU.
    """
    if len(indices) == 0:
        raise InputError("indices: expected at least one item to predict")
    items = [dataset[i] for i in indices]
    with_masks = isinstance(items[0], (tuple, list))
    images = torch.stack([item[0] if with_masks else item for item in items])
    device = next(model.parameters()).device
    probs = predict_logits(model, images.to(device), tta=tta, amp_dtype=amp_dtype).sigmoid().cpu()  # (K, 1, H, W)
    masks = torch.stack([item[1] for item in items]) if with_masks else None
    return images, probs, masks


def collect_inputs(inputs: list[str | Path]) -> list[Path]:
    """Image files named directly or found (non-recursively) in the folders named."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in PICTURE_SUFFIXES)
            if not found:
                raise InputError(f"{item}: no images in this folder (expected {', '.join(PICTURE_SUFFIXES)})")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    return files


def save_mask_png(labels: torch.Tensor, path: Path, scale: int = 255) -> None:
    """Write a label map as an 8-bit PNG (binary masks as 0/255 by default)."""
    Image.fromarray((labels.numpy() * scale).astype(np.uint8)).save(path)
