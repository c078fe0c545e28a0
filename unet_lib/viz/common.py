"""Helpers shared by every figure module: new figures and grids, picture axes, and tensors made ready to draw.

Every figure comes from :func:`new_figure`, so pyplot has already let go of it when a function returns it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX

Images = torch.Tensor | Sequence[torch.Tensor]  # a batch [B, C, H, W] or a list of [C, H, W]


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A constrained-layout Figure of ``figsize`` inches that pyplot does not hold on to.

    Args:
        figsize: ``(width, height)`` in inches.

    Returns:
        An empty Figure: a notebook shows it once as a cell's value or with ``display(fig)``.
    """
    # Made through pyplot so that a notebook loads its inline backend (which draws a returned Figure),
    # then closed so that pyplot neither shows it a second time at the end of the cell nor keeps it.
    fig = plt.figure(figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig


def grid_figure(nrows: int, ncols: int, tile: tuple[float, float] = (2.5, 2.5)) -> tuple[Figure, np.ndarray]:
    """A figure with an ``nrows`` x ``ncols`` grid of axes, each ``tile`` inches.

    Returns:
        The figure and its axes as a 2-D array (also for a single row or column).
    """
    fig = new_figure((tile[0] * ncols, tile[1] * nrows))
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def picture_tile(images: torch.Tensor, width: float = 2.5) -> tuple[float, float]:
    """Inches per grid cell that fit the pictures' aspect ratio, plus room for a title line.

    Args:
        images: Anything whose last two dimensions are ``H, W``.
        width: Width of a cell in inches.
    """
    height, breadth = images.shape[-2:]
    return width, width * height / breadth + 0.35


def image_axis(ax: Axes, title: str | None = None, ylabel: str | None = None) -> None:
    """Make ``ax`` a picture panel: no ticks, a small title, and an optional row label on the left."""
    # No ticks on pictures, but keep the axis so a row can carry a label.
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel)


def as_batch(x: Images, name: str) -> torch.Tensor:
    """A batch tensor on the CPU from a tensor ``[B, ...]`` or a non-empty list of ``[...]`` tensors."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if len(x) == 0:
        raise InputError(f"{name}: expected at least one item, got an empty list")
    return torch.stack([torch.as_tensor(t).detach().cpu() for t in x])


def as_mask2d(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """A mask or label map ``[H, W]`` or ``[1, H, W]`` as a CPU tensor ``[H, W]`` of its own dtype."""
    mask = torch.as_tensor(mask).detach().cpu()
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise InputError(f"{name}: expected shape [H, W] or [1, H, W], got {tuple(mask.shape)}")
    return mask


def to_display(image: torch.Tensor) -> np.ndarray:
    """An image tensor as an array ``imshow`` understands.

    Args:
        image: Float ``[3, H, W]`` in [0, 1] (or uint8), or a single channel ``[1, H, W]``/``[H, W]``.

    Returns:
        ``[H, W, 3]`` RGB or ``[H, W]`` grey, float in [0, 1].
    """
    image = torch.as_tensor(image).detach().cpu()
    image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 3 and image.shape[0] == 3:
        return image.clamp(0, 1).permute(1, 2, 0).numpy()  # (H, W, 3)
    if image.ndim == 2:
        return image.clamp(0, 1).numpy()
    raise InputError(f"image: expected shape [3, H, W], [1, H, W] or [H, W], got {tuple(image.shape)}")


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """An image as uint8 on the CPU: uint8 stays as is, floats in [0, 1] are scaled to 0..255 and rounded."""
    image = torch.as_tensor(image).detach().cpu()
    if image.dtype == torch.uint8:
        return image
    return (image.float().clamp(0, 1) * 255).round().to(torch.uint8)


def show_mask(ax: Axes, mask: torch.Tensor) -> None:
    """Draw a binary mask or probabilities in grey: black background, white object, mid-grey ignored pixels."""
    mask = as_mask2d(mask).float()
    ax.imshow(torch.where(mask == IGNORE_INDEX, 0.5, mask.clamp(0, 1)).numpy(), cmap="gray", vmin=0, vmax=1)
