"""The worst pictures of an analysis (``unet_lib.inspect.analysis``): each photo, its prediction with the reference's
boundaries drawn over it, and its wrong pixels split into the boundary band and the interior."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from unet_lib.inspect.analysis import BAND, boundary_band, edges
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.viz.colors import overlay
from unet_lib.viz.common import grid_figure, image_axis, picture_tile, to_display

BAND_COLORS = {  # RGB of the error map
    "wrong, on a boundary": (255, 160, 0),
    "wrong, in an interior": (220, 0, 220),
    "right": (40, 40, 40),
    "ignored": (128, 128, 128),
}
KIND_COLORS = {  # RGB of the error map of a binary model, its wrong pixels split into false positives and negatives
    "false positive, on the outline": (255, 160, 0),
    "false positive, inside": (220, 0, 220),
    "false negative, on the outline": (0, 200, 255),
    "false negative, inside": (40, 80, 255),
    "right": (40, 40, 40),
    "ignored": (128, 128, 128),
}
OUTLINE = (255, 255, 255)  # the reference's boundaries over the prediction


def band_regions(pred: torch.Tensor, mask: torch.Tensor, band: int = BAND, by_kind: bool = False) -> dict:
    """``{name: bool [H, W]}``: where each entry of ``BAND_COLORS`` (``KIND_COLORS`` with ``by_kind``, for 0/1 maps:
    false positives, predicted 1 on a 0, apart from false negatives) lies, for a prediction and its mask [H, W]."""
    in_band = boundary_band(mask[None], band)[0]
    labelled = mask != IGNORE_INDEX
    wrong = (pred != mask) & labelled
    if not by_kind:
        return {
            "right": labelled & ~wrong,
            "wrong, on a boundary": wrong & in_band,
            "wrong, in an interior": wrong & ~in_band,
            "ignored": ~labelled,
        }
    false_pos, false_neg = wrong & (pred == 1), wrong & (pred != 1)
    return {
        "right": labelled & ~wrong,
        "false positive, on the outline": false_pos & in_band,
        "false positive, inside": false_pos & ~in_band,
        "false negative, on the outline": false_neg & in_band,
        "false negative, inside": false_neg & ~in_band,
        "ignored": ~labelled,
    }


def paint(regions: dict, colors: dict) -> torch.Tensor:
    """uint8 [3, H, W]: each region of ``regions`` (``{name: bool [H, W]}``) in its colour of ``colors``."""
    first = next(iter(regions.values()))
    out = torch.zeros(*first.shape, 3, dtype=torch.uint8)  # (H, W, 3)
    for name, where in regions.items():
        out[where] = torch.tensor(colors[name], dtype=torch.uint8)
    return out.permute(2, 0, 1).contiguous()


def present_handles(colors: dict, region_maps: Sequence[dict]) -> list[Patch]:
    """Legend patches for the entries of ``colors`` that cover at least one pixel of one of ``region_maps``."""
    present = {name for regions in region_maps for name, where in regions.items() if bool(where.any())}
    return [Patch(color=[c / 255 for c in rgb], label=name) for name, rgb in colors.items() if name in present]


def band_map(pred: torch.Tensor, mask: torch.Tensor, band: int = BAND, by_kind: bool = False) -> torch.Tensor:
    """uint8 [3, H, W]: each pixel of a prediction coloured by ``BAND_COLORS`` (``KIND_COLORS`` with ``by_kind``)
    against its reference mask [H, W]."""
    return paint(band_regions(pred, mask, band, by_kind), KIND_COLORS if by_kind else BAND_COLORS)


def show_worst(
    images: Sequence[torch.Tensor],
    preds: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    titles: Sequence[str],
    band: int = BAND,
    binary: bool = True,
    by_kind: bool = False,
) -> Figure:
    """One column per picture: the photo, the prediction painted over it with the reference's boundaries in
    white, and the error map (wrong pixels within ``band`` px of a boundary, and in the interiors).

    Args:
        images: Float [3, H, W] in [0, 1], one per picture.
        preds, masks: Label maps [H, W] (0/1 for a binary model; 255 in a mask: ignored).
        titles: One per picture, e.g. its id and score.
        binary: Paint the prediction red (True), else in the Cityscapes trainId colours.
        by_kind: For a binary model, colour false positives (background called car) and false negatives
            (car missed) apart (``KIND_COLORS``).

    The legend lists only the entries that occur in the figure.
    """
    by_kind = by_kind and binary
    colors = KIND_COLORS if by_kind else BAND_COLORS
    region_maps = []
    fig, axes = grid_figure(3, len(images), picture_tile(images[0], width=3.0))
    for column, (image, pred, mask, title) in enumerate(zip(images, preds, masks, titles, strict=True)):
        painted = overlay(image, pred, "binary" if binary else "trainid", alpha=0.45)  # uint8 (3, H, W)
        painted[:, edges(mask[None])[0]] = torch.tensor(OUTLINE, dtype=torch.uint8)[:, None]
        region_maps.append(band_regions(pred, mask, band, by_kind))
        panels = (
            to_display(image),
            painted.permute(1, 2, 0).numpy(),
            paint(region_maps[-1], colors).permute(1, 2, 0).numpy(),
        )
        for row, (picture, label) in enumerate(
            zip(panels, ("photo", "prediction,\nreference outlined", "errors"), strict=True)
        ):
            axes[row, column].imshow(picture, interpolation="nearest")
            image_axis(axes[row, column], title if row == 0 else None, label if column == 0 else None)
    handles = present_handles(colors, region_maps)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=8, frameon=False)
    fig.suptitle(f"The worst pictures, and where their wrong pixels lie (boundary band: {band} px)", fontsize=10)
    return fig


DISAGREEMENT_COLORS = {  # RGB of the disagreement map
    "A right, B wrong": (40, 110, 255),
    "B right, A wrong": (0, 200, 80),
    "both wrong, differently": (230, 40, 40),
    "the same": (40, 40, 40),
    "ignored": (128, 128, 128),
}


def disagreement_regions(pred_a: torch.Tensor, pred_b: torch.Tensor, mask: torch.Tensor) -> dict:
    """``{name: bool [H, W]}``: where each entry of ``DISAGREEMENT_COLORS`` lies, for two predictions and a mask."""
    labelled = mask != IGNORE_INDEX
    differ, a_right, b_right = pred_a != pred_b, pred_a == mask, pred_b == mask
    return {
        "the same": labelled & ~differ,
        "A right, B wrong": labelled & differ & a_right,
        "B right, A wrong": labelled & differ & b_right,
        "both wrong, differently": labelled & differ & ~a_right & ~b_right,
        "ignored": ~labelled,
    }


def disagreement_map(pred_a: torch.Tensor, pred_b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """uint8 [3, H, W]: where two predictions [H, W] differ, coloured by which one is right (``DISAGREEMENT_COLORS``)."""
    return paint(disagreement_regions(pred_a, pred_b, mask), DISAGREEMENT_COLORS)


def show_disagreement(
    images: Sequence[torch.Tensor],
    preds: Sequence[tuple[torch.Tensor, torch.Tensor]],
    masks: Sequence[torch.Tensor],
    titles: Sequence[str],
) -> Figure:
    """One column per picture: the photo, and the pixels where model A and model B disagree, coloured by which is
    right. ``preds`` holds each picture's two label maps [H, W], A's first. The legend lists only the entries that
    occur in the figure (two binary maps, for instance, are never both wrong in different ways)."""
    fig, axes = grid_figure(2, len(images), picture_tile(images[0], width=3.0))
    region_maps = []
    for column, (image, (pred_a, pred_b), mask, title) in enumerate(zip(images, preds, masks, titles, strict=True)):
        region_maps.append(disagreement_regions(pred_a, pred_b, mask))
        panels = (to_display(image), paint(region_maps[-1], DISAGREEMENT_COLORS).permute(1, 2, 0).numpy())
        for row, (picture, label) in enumerate(zip(panels, ("photo", "where A and B differ"), strict=True)):
            axes[row, column].imshow(picture, interpolation="nearest")
            image_axis(axes[row, column], title if row == 0 else None, label if column == 0 else None)
    handles = present_handles(DISAGREEMENT_COLORS, region_maps)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=8, frameon=False)
    fig.suptitle("The pictures whose scores differ most, and the pixels where the two models disagree", fontsize=10)
    return fig
