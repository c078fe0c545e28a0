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
OUTLINE = (255, 255, 255)  # the reference's boundaries over the prediction


def band_map(pred: torch.Tensor, mask: torch.Tensor, band: int = BAND) -> torch.Tensor:
    """uint8 [3, H, W]: each pixel of a prediction coloured by ``BAND_COLORS`` against its reference mask [H, W]."""
    in_band = boundary_band(mask[None], band)[0]
    labelled = mask != IGNORE_INDEX
    wrong = (pred != mask) & labelled
    out = torch.zeros(*mask.shape, 3, dtype=torch.uint8)  # (H, W, 3)
    for name, where in (
        ("right", labelled & ~wrong),
        ("wrong, on a boundary", wrong & in_band),
        ("wrong, in an interior", wrong & ~in_band),
        ("ignored", ~labelled),
    ):
        out[where] = torch.tensor(BAND_COLORS[name], dtype=torch.uint8)
    return out.permute(2, 0, 1).contiguous()


def show_worst(
    images: Sequence[torch.Tensor],
    preds: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    titles: Sequence[str],
    band: int = BAND,
    binary: bool = True,
) -> Figure:
    """One column per picture: the photo, the prediction painted over it with the reference's boundaries in
    white, and the error map (wrong pixels within ``band`` px of a boundary, and in the interiors).

    Args:
        images: Float [3, H, W] in [0, 1], one per picture.
        preds, masks: Label maps [H, W] (0/1 for a binary model; 255 in a mask: ignored).
        titles: One per picture, e.g. its id and score.
        binary: Paint the prediction red (True), else in the Cityscapes trainId colours.
    """
    fig, axes = grid_figure(3, len(images), picture_tile(images[0], width=3.0))
    for column, (image, pred, mask, title) in enumerate(zip(images, preds, masks, titles, strict=True)):
        painted = overlay(image, pred, "binary" if binary else "trainid", alpha=0.45)  # uint8 (3, H, W)
        painted[:, edges(mask[None])[0]] = torch.tensor(OUTLINE, dtype=torch.uint8)[:, None]
        panels = (
            to_display(image),
            painted.permute(1, 2, 0).numpy(),
            band_map(pred, mask, band).permute(1, 2, 0).numpy(),
        )
        for row, (picture, label) in enumerate(
            zip(panels, ("photo", "prediction,\nreference outlined", "errors"), strict=True)
        ):
            axes[row, column].imshow(picture, interpolation="nearest")
            image_axis(axes[row, column], title if row == 0 else None, label if column == 0 else None)
    handles = [Patch(color=[c / 255 for c in rgb], label=name) for name, rgb in BAND_COLORS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"The worst pictures, and where their wrong pixels lie (boundary band: {band} px)", fontsize=10)
    return fig


DISAGREEMENT_COLORS = {  # RGB of the disagreement map
    "A right, B wrong": (40, 110, 255),
    "B right, A wrong": (0, 200, 80),
    "both wrong, differently": (230, 40, 40),
    "the same": (40, 40, 40),
    "ignored": (128, 128, 128),
}


def disagreement_map(pred_a: torch.Tensor, pred_b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """uint8 [3, H, W]: where two predictions [H, W] differ, coloured by which one is right (``DISAGREEMENT_COLORS``)."""
    labelled = mask != IGNORE_INDEX
    differ, a_right, b_right = pred_a != pred_b, pred_a == mask, pred_b == mask
    out = torch.zeros(*mask.shape, 3, dtype=torch.uint8)  # (H, W, 3)
    for name, where in (
        ("the same", labelled & ~differ),
        ("A right, B wrong", labelled & differ & a_right),
        ("B right, A wrong", labelled & differ & b_right),
        ("both wrong, differently", labelled & differ & ~a_right & ~b_right),
        ("ignored", ~labelled),
    ):
        out[where] = torch.tensor(DISAGREEMENT_COLORS[name], dtype=torch.uint8)
    return out.permute(2, 0, 1).contiguous()


def show_disagreement(
    images: Sequence[torch.Tensor],
    preds: Sequence[tuple[torch.Tensor, torch.Tensor]],
    masks: Sequence[torch.Tensor],
    titles: Sequence[str],
) -> Figure:
    """One column per picture: the photo, and the pixels where model A and model B disagree, coloured by which is
    right. ``preds`` holds each picture's two label maps [H, W], A's first."""
    fig, axes = grid_figure(2, len(images), picture_tile(images[0], width=3.0))
    for column, (image, (pred_a, pred_b), mask, title) in enumerate(zip(images, preds, masks, titles, strict=True)):
        panels = (to_display(image), disagreement_map(pred_a, pred_b, mask).permute(1, 2, 0).numpy())
        for row, (picture, label) in enumerate(zip(panels, ("photo", "where A and B differ"), strict=True)):
            axes[row, column].imshow(picture, interpolation="nearest")
            image_axis(axes[row, column], title if row == 0 else None, label if column == 0 else None)
    handles = [Patch(color=[c / 255 for c in rgb], label=name) for name, rgb in DISAGREEMENT_COLORS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("The pictures whose scores differ most, and the pixels where the two models disagree", fontsize=10)
    return fig
