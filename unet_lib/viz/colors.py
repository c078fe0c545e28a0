"""The one palette and the one overlay: class colours for binary masks, Cityscapes trainIds and labelIds.

Every coloured mask in the project (figures, ``predict`` overlays, the official labelId colour PNGs)
takes its colours from :func:`palette` and is painted by :func:`colorize` or :func:`overlay`;
:func:`outline` draws only a mask's boundary, so the picture underneath stays visible.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torchvision.datasets import Cityscapes
from torchvision.utils import draw_segmentation_masks

from unet_lib.data.cityscapes import CLASS_COLORS, NUM_CLASSES, NUM_LABEL_IDS
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.viz.common import as_mask2d, to_uint8

PaletteKind = Literal["binary", "trainid", "labelid"]
# Class ids that overlay paints for each kind; any other value (IGNORE_INDEX included) is left unpainted.
CLASS_IDS: dict[str, range] = {"binary": range(1, 2), "trainid": range(NUM_CLASSES), "labelid": range(NUM_LABEL_IDS)}


def palette(kind: PaletteKind = "trainid") -> torch.Tensor:
    """The colour of every label value, uint8 ``[256, 3]`` (RGB).

    Args:
        kind: ``"binary"`` (0 black, 1 red), ``"trainid"`` (the 19 official Cityscapes trainId colours)
            or ``"labelid"`` (the official colour of each of the 34 Cityscapes labelIds).

    Returns:
        Row ``v`` is the colour of value ``v``; every value without a class (255 included) is black.
    """
    if kind not in get_args(PaletteKind):
        raise InputError(f"kind: expected one of {get_args(PaletteKind)}, got {kind!r}")
    colors = torch.zeros(256, 3, dtype=torch.uint8)
    if kind == "binary":
        colors[1] = torch.tensor((255, 0, 0), dtype=torch.uint8)
    elif kind == "trainid":
        colors[:NUM_CLASSES] = torch.tensor(CLASS_COLORS, dtype=torch.uint8)
    else:
        for c in Cityscapes.classes:
            if 0 <= c.id < NUM_LABEL_IDS:  # the license plate has id -1: it never appears in a label file
                colors[c.id] = torch.tensor(c.color, dtype=torch.uint8)
    return colors


def _integer_labels(labels: torch.Tensor, kind: str) -> torch.Tensor:
    labels = as_mask2d(labels, "labels")
    if labels.is_floating_point():
        raise InputError(f"labels: expected an integer label map for kind {kind!r}, got {labels.dtype}")
    return labels.long()


def colorize(labels: torch.Tensor, kind: PaletteKind = "trainid") -> torch.Tensor:
    """Paint a label map in the colours of :func:`palette`.

    Args:
        labels: Integer ``[H, W]`` or ``[1, H, W]``.
        kind: Which palette; see :func:`palette`.

    Returns:
        uint8 ``[3, H, W]``; values without a class (255, negative, past 255) are black.
    """
    colors = palette(kind)
    labels = _integer_labels(labels, kind)
    inside = (labels >= 0) & (labels < len(colors))
    rgb = colors[labels.clamp(0, len(colors) - 1)]  # (H, W, 3)
    rgb[~inside] = 0
    return rgb.permute(2, 0, 1).contiguous()  # (H, W, 3) -> (3, H, W)


def overlay(
    image: torch.Tensor, labels: torch.Tensor, kind: PaletteKind = "binary", alpha: float = 0.5
) -> torch.Tensor:
    """Paint every class present in ``labels`` over ``image`` with ``torchvision.utils.draw_segmentation_masks``.

    A painted pixel becomes ``(1 - alpha) * image + alpha * colour`` (rounded down to an integer);
    pixels equal to ``IGNORE_INDEX`` and values without a class keep the image's colour.

    Args:
        image: Float ``[3, H, W]`` in [0, 1], or uint8.
        labels: ``[H, W]`` or ``[1, H, W]``. ``"binary"``: a mask or probabilities, painted red above 0.5.
            ``"trainid"``/``"labelid"``: an integer label map, each class in its palette colour.
        kind: Which palette; see :func:`palette`.
        alpha: Opacity of the paint, from 0 (none) to 1 (the colour alone).

    Returns:
        uint8 ``[3, H, W]``.
    """
    image, colors = to_uint8(image), palette(kind)
    if kind == "binary":
        mask = as_mask2d(labels, "labels").float()
        painted = {1: (mask > 0.5) & (mask != IGNORE_INDEX)}
    else:
        mask = _integer_labels(labels, kind)
        # IGNORE_INDEX lies outside every kind's class ids, so ignored pixels are never painted.
        painted = {v: mask == v for v in mask.unique().tolist() if v in CLASS_IDS[kind]}
    if image.ndim != 3 or image.shape[0] != 3 or image.shape[1:] != mask.shape:
        raise InputError(
            f"image and labels: expected [3, H, W] and [H, W], got {tuple(image.shape)} and {tuple(mask.shape)}"
        )
    painted = {v: where for v, where in painted.items() if where.any()}
    if not painted:  # nothing to paint (draw_segmentation_masks would warn)
        return image.clone()
    return draw_segmentation_masks(
        image,
        torch.stack(list(painted.values())),  # (num_classes_present, H, W) bool, disjoint
        alpha=alpha,
        colors=[tuple(colors[v].tolist()) for v in painted],
    )


def outline(
    image: torch.Tensor, mask: torch.Tensor, color: str | tuple[int, int, int] = "yellow", width: int = 1
) -> torch.Tensor:
    """Draw the boundary of a binary mask opaque over ``image``, so the object underneath stays visible.

    A boundary pixel is a pixel of the mask that lies at most ``width`` steps (up, down, left, right)
    from a pixel outside it. Beyond the picture's edge counts as inside: an object cut by the frame
    gets no line along the frame.

    Args:
        image: Float ``[3, H, W]`` in [0, 1], or uint8.
        mask: ``[H, W]`` or ``[1, H, W]``: a 0/1 mask of any dtype, or probabilities (mask above 0.5).
            Pixels equal to ``IGNORE_INDEX`` are not part of the mask.
        color: A colour name (``"yellow"``) or an ``(r, g, b)`` tuple of 0..255.
        width: Thickness of the line in pixels, at least 1.

    Returns:
        uint8 ``[3, H, W]``: the boundary in ``color``, every other pixel as in ``image``.
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InputError(f"width: expected a whole number of pixels >= 1, got {width!r}")
    image, mask = to_uint8(image), as_mask2d(mask, "mask").float()
    if image.ndim != 3 or image.shape[0] != 3 or image.shape[1:] != mask.shape:
        raise InputError(
            f"image and mask: expected [3, H, W] and [H, W], got {tuple(image.shape)} and {tuple(mask.shape)}"
        )
    inside = (mask > 0.5) & (mask != IGNORE_INDEX)  # (H, W) bool
    core = inside
    for _ in range(width):  # erode by one pixel with the 4-neighbourhood, ``width`` times
        padded = F.pad(core[None].float(), (1, 1, 1, 1), value=1.0)[0] > 0.5  # (H + 2, W + 2): the frame is inside
        core = core & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = inside & ~core
    if not edge.any():  # nothing to draw (draw_segmentation_masks would warn)
        return image.clone()
    return draw_segmentation_masks(image, edge, alpha=1.0, colors=color)
