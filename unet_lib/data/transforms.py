"""Joint image + mask transforms with ``torchvision.transforms.v2``: the mask travels as ``tv_tensors.Mask`` and
so gets the picture's random flips and rotations (a plain tensor would be left alone, silently)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from unet_lib.config import AugmentKind
from unet_lib.errors import InputError

AUGMENTS = get_args(AugmentKind)


def build_transforms(augment: AugmentKind | bool = "none", mask_fill: int = 0, color: bool = False) -> v2.Compose:
    """Transforms for a resized (uint8 ``Image``, ``Mask``) pair; the image comes out float32 in [0, 1].

    Args:
        augment: ``"none"``, ``"flip"`` (horizontal flips), ``"original"`` (the original project's flips and
            rotation) or ``"default"`` (flips and small shifts, scales and rotations); True means ``"default"``.
        mask_fill: The mask value rotation brings in from outside the picture: 0 (background) for Carvana,
            ``IGNORE_INDEX`` for Cityscapes.
        color: Add colour jitter (Cityscapes).
    """
    kind = "default" if augment is True else "none" if augment is False else augment
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: mask_fill}
    steps = {
        "none": [],
        "flip": [v2.RandomHorizontalFlip(0.5)],  # a mirrored car is still a car
        # The original project's recipe: flips (h 0.5, v 0.1) and rotations up to 35 degrees.
        "original": [v2.RandomHorizontalFlip(0.5), v2.RandomVerticalFlip(0.1), v2.RandomRotation(35, fill=fill)],
        # Milder and closer to how the data varies: cars stay upright, move and scale a little.
        "default": [
            v2.RandomHorizontalFlip(0.5),
            v2.RandomAffine(degrees=5, translate=(0.05, 0.05), scale=(0.9, 1.1), fill=fill),
        ],
    }
    if kind not in steps:
        raise ValueError(f"augment: expected one of {AUGMENTS}, got {kind!r}")
    steps = steps[kind]
    if color and kind != "none":
        steps.append(v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02))
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    return v2.Compose(steps)


def apply(
    transform: v2.Compose, image: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``transform`` on a uint8 image [3, H, W] and a mask [H, W] or None; plain tensors back, the mask int64."""
    if mask is None:
        return transform(tv_tensors.Image(image)).as_subclass(torch.Tensor), None
    image, mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
    return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def resize_pair(
    image: torch.Tensor, mask: torch.Tensor | None, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Resize a uint8 image [3, H, W] bilinearly (antialiased) and its mask [H, W] by nearest neighbour."""
    image = v2.functional.resize(tv_tensors.Image(image), list(size), antialias=True).as_subclass(torch.Tensor)
    if mask is not None:
        # NEAREST_EXACT samples pixel centres like the image resize; NEAREST would shift the mask half a pixel.
        mask = v2.functional.resize(
            tv_tensors.Mask(mask[None]), list(size), interpolation=v2.InterpolationMode.NEAREST_EXACT
        ).as_subclass(torch.Tensor)[0]
    return image, mask


def random_crop(
    image: torch.Tensor, mask: torch.Tensor | None, crop: tuple[int, int], path: str | Path
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A random ``crop`` = ``(H, W)`` window of a uint8 image [3, H', W'] and the same window of its mask [H', W']
    (or None); a one-line error naming ``path`` when the picture is smaller than the crop."""
    height, width = image.shape[-2:]
    if height < crop[0] or width < crop[1]:
        raise InputError(
            f"{path}: picture is {height}x{width} (HxW), smaller than the crop {crop[0]}x{crop[1]};"
            " pass a smaller --crop or leave the picture out"
        )
    return apply(v2.RandomCrop(list(crop)), image, mask)
