"""Inference at the picture's own resolution: resize down, predict, upsample the logits back.

Logits (not labels) are upsampled before thresholding or argmax, so edges stay smooth at full size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from unet_lib.data.io import read_image
from unet_lib.data.transforms import resize_pair
from unet_lib.engine import predict_labels
from unet_lib.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")


@torch.inference_mode()
def predict_logits(
    model: nn.Module, images: torch.Tensor, out_size: tuple[int, int] | None = None, tta: bool = False
) -> torch.Tensor:
    """Logits for a batch, optionally averaged with the horizontally flipped batch, and upsampled.

    Args:
        model: The network, in eval mode.
        images: float [B, 3, h, w] in [0, 1], at the size the network was trained on.
        out_size: ``(H, W)`` to upsample the logits to (bilinear), or None to keep ``(h, w)``.
        tta: Average with the prediction on the mirrored images (flipped back).

    Returns:
        float32 logits [B, C, H, W].
    """
    logits = model(images).float()  # (B, C, h, w)
    if tta:
        logits = (logits + model(images.flip(-1)).float().flip(-1)) / 2
    if out_size is not None and tuple(out_size) != tuple(logits.shape[-2:]):
        logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)  # (B, C, H, W)
    return logits


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
