"""Inference at the picture's own resolution: resize down, predict, upsample the logits back.

Logits (not labels) are upsampled before thresholding or argmax, so edges stay smooth at full size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from unet_lib.data.io import image_size, read_image
from unet_lib.data.transforms import resize_pair
from unet_lib.errors import InputError
from unet_lib.metrics import binarize

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")


def predict_labels(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Logits (B, C, H, W) -> label map (B, H, W): sigmoid > threshold for C == 1, else argmax."""
    if logits.shape[1] == 1:
        return binarize(logits, [threshold])[0].long()
    return logits.argmax(dim=1)


def upsample(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of logits [B, C, h, w] to ``size = (H, W)``; a no-op when the size already matches."""
    if tuple(size) == tuple(logits.shape[-2:]):
        return logits
    return F.interpolate(logits, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)


def _forward(model: nn.Module, images: torch.Tensor, amp_dtype: torch.dtype | None) -> torch.Tensor:
    with torch.autocast(images.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        return model(images).float()  # (B, C, h, w), fp32 even under autocast


@torch.inference_mode()
def tta_average(
    model: nn.Module, images: torch.Tensor, logits: torch.Tensor, amp_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Test-time augmentation: the mean of ``logits`` (the images' own) and the mirrored images' logits, mirrored back.

    A car mirrored left to right is still a car, so errors that are not symmetric partly cancel.
    """
    return (logits + _forward(model, images.flip(-1), amp_dtype).flip(-1)) / 2


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    out_size: tuple[int, int] | None = None,
    tta: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Logits for a batch, optionally averaged with the horizontally flipped batch, and upsampled.

    Args:
        model: The network, in eval mode.
        images: float [B, 3, h, w] in [0, 1], at the size the network was trained on.
        out_size: ``(H, W)`` to upsample the logits to (bilinear), or None to keep ``(h, w)``.
        tta: Average with the prediction on the mirrored images (:func:`tta_average`).
        amp_dtype: Run the network under autocast in this dtype (CUDA), or None for fp32.

    Returns:
        float32 logits [B, C, H, W].
    """
    logits = _forward(model, images, amp_dtype)  # (B, C, h, w)
    if tta:
        logits = tta_average(model, images, logits, amp_dtype)
    return logits if out_size is None else upsample(logits, out_size)  # (B, C, H, W)


def predict_batches(
    model: nn.Module,
    loader: Iterable,
    device: torch.device,
    tta: bool = False,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
    desc: str = "predict",
) -> Iterator[tuple]:
    """The one evaluation loop: the model (in eval mode) over batches ``(images, *rest)`` of a loader.

    Yields:
        ``(images, logits [B, C, h, w], *rest)``, with ``images`` and the tensors of ``rest`` on
        ``device`` (lists, such as full-size masks of several sizes, are passed on as they are).
    """
    model.eval()
    for images, *rest in tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True):
        images = images.to(device, non_blocking=True)
        rest = [r.to(device, non_blocking=True) if isinstance(r, torch.Tensor) else r for r in rest]
        yield images, predict_logits(model, images, tta=tta, amp_dtype=amp_dtype), *rest


class ResizedImages(Dataset):
    """Image files resized to the network's input size, for batched prediction.

    JPEGs are decoded straight at a reduced scale (see ``read_image``), so a DataLoader with a
    few workers keeps up with the network.

    Args:
        paths: Image files.
        size: ``(H, W)`` the network sees.

    Items are ``(image float [3, H, W] in [0, 1], original (height, width) as int64 [2])``.
    """

    def __init__(self, paths: Sequence[str | Path], size: tuple[int, int]):
        self.paths = [Path(p) for p in paths]
        self.size = tuple(size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.paths[index]
        width, height = image_size(path)  # from the header: the decoded JPEG may be smaller
        small, _ = resize_pair(read_image(path, min_size=self.size), None, self.size)
        return small.float() / 255, torch.tensor([height, width])


def predict_full_res(
    model: nn.Module,
    paths: Sequence[str | Path],
    size: tuple[int, int],
    device: torch.device,
    tta: bool = False,
    batch_size: int = 4,
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "predict",
) -> Iterator[tuple[int, torch.Tensor]]:
    """Predict many image files in batches, yielding each one's logits at its own resolution.

    Only one batch is held at a time, so memory stays flat however many files there are.

    Args:
        model: The network, on ``device``.
        paths: Image files.
        size: ``(H, W)`` the network sees.
        device: Where the model lives.
        tta: Average with the horizontally flipped prediction.
        batch_size: Images per forward pass.
        num_workers: DataLoader processes decoding images.
        progress: Show a tqdm progress bar (in batches).
        desc: The progress bar's label.

    Yields:
        ``(index into paths, float32 logits [C, H, W] on device)``, in the order of ``paths``.
    """
    dataset = ResizedImages(paths, size)
    loader = DataLoader(dataset, batch_size, num_workers=num_workers, pin_memory=device.type == "cuda")
    index = 0
    for _, logits, sizes in predict_batches(model, loader, device, tta, progress=progress, desc=desc):
        for k in range(len(logits)):  # (B, C, h, w): each photo back to its own size
            yield index, upsample(logits[k : k + 1], sizes[k].tolist())[0]  # (C, H, W)
            index += 1


def predict_file(
    model: nn.Module,
    path: str | Path,
    size: tuple[int, int],
    device: torch.device,
    threshold: float = 0.5,
    tta: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predict one image file at its original resolution.

    Returns:
        ``(image uint8 [3, H, W], labels int64 [H, W])``: for a one-class model labels are 0/1.
    """
    image = read_image(path)  # grayscale, RGBA and 16-bit files are converted to RGB here
    small, _ = resize_pair(image, None, size)
    batch = (small.float() / 255).unsqueeze(0).to(device)  # (1, 3, h, w)
    logits = predict_logits(model, batch, out_size=tuple(image.shape[-2:]), tta=tta)
    return image, predict_labels(logits, threshold)[0].cpu()


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


def collect_inputs(inputs: list[str | Path]) -> list[Path]:
    """Image files named directly or found (non-recursively) in the folders named."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"{item}: no images in this folder (expected {', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    return files


def save_mask_png(labels: torch.Tensor, path: Path, scale: int = 255) -> None:
    """Write a label map as an 8-bit PNG (binary masks as 0/255 by default)."""
    Image.fromarray((labels.numpy() * scale).astype(np.uint8)).save(path)
