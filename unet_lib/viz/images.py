"""Figures of pictures: samples with masks, predictions, error maps, Cityscapes label maps and class colours.

Every function returns a Figure that pyplot has let go of; masks are coloured by ``unet_lib.viz.colors``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.viz.colors import colorize, palette
from unet_lib.viz.colors import overlay as overlay_labels  # show_predictions has an argument named overlay
from unet_lib.viz.common import (
    Images,
    as_batch,
    as_mask2d,
    grid_figure,
    image_axis,
    new_figure,
    picture_tile,
    show_mask,
    to_display,
)

# Colours of error_map; pixels that are background in both prediction and target stay black.
ERROR_COLORS = {
    "true positive": (255, 255, 255),
    "false positive": (255, 0, 0),
    "false negative": (0, 0, 255),
    "ignored": (128, 128, 128),
}


def show_samples(images: Images, masks: Images, max_samples: int = 4, title: str = "Images and masks") -> Figure:
    """One row per sample: the image, its mask (white = object, grey = ignored) and the overlay."""
    images, masks = as_batch(images, "images")[:max_samples], as_batch(masks, "masks")[:max_samples]
    fig, axes = grid_figure(len(images), 3, tile=picture_tile(images))
    for row, (image, mask) in enumerate(zip(images, masks, strict=True)):
        axes[row, 0].imshow(to_display(image))
        show_mask(axes[row, 1], mask)
        axes[row, 2].imshow(to_display(overlay_labels(image, mask)))
        for col, name in enumerate(("image", "mask", "overlay")):
            image_axis(axes[row, col], title=name if row == 0 else None)
    fig.suptitle(title)
    return fig


def show_predictions(
    images: Images,
    preds: Images,
    masks: Images | None = None,
    max_samples: int = 8,
    overlay: bool = False,
    title: str | None = None,
) -> Figure:
    """The original project's figure: predicted masks on top, reference masks below.

    Args:
        images: ``[B, 3, H, W]``; shown under the masks when ``overlay`` is True.
        preds: Probabilities or binary masks ``[B, 1, H, W]`` (apply ``sigmoid`` to logits first).
        masks: Reference masks, or None to draw the prediction row only.
        max_samples: Number of columns at most.
        overlay: Paint the masks over the images instead of showing them in grey.
        title: Figure title; by default it says which row is which.
    """
    images, preds = as_batch(images, "images")[:max_samples], as_batch(preds, "preds")[:max_samples]
    rows = [("prediction", preds)] + (
        [("reference", as_batch(masks, "masks")[:max_samples])] if masks is not None else []
    )
    fig, axes = grid_figure(len(rows), len(preds), tile=picture_tile(preds))
    for r, (label, row_masks) in enumerate(rows):
        for c, (image, mask) in enumerate(zip(images, row_masks, strict=True)):
            if overlay:
                axes[r, c].imshow(to_display(overlay_labels(image, mask)))
            else:
                show_mask(axes[r, c], mask)
            image_axis(axes[r, c], title=f"sample {c}" if r == 0 else None, ylabel=label if c == 0 else None)
    fig.suptitle(title or ("Top: prediction, bottom: reference" if masks is not None else "Predictions"))
    return fig


def error_map(pred: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Colour each pixel of a binary prediction by its outcome (see ``ERROR_COLORS``), uint8 ``[3, H, W]``.

    Args:
        pred: Predicted mask ``[H, W]`` or ``[1, H, W]``, probabilities or {0, 1}; above 0.5 is foreground.
        target: True mask, same shape, with ``ignore_index`` for pixels that do not count.
        ignore_index: Target value of ignored pixels (grey).
    """
    pred, target = as_mask2d(pred, "pred").float(), as_mask2d(target, "target").float()
    if pred.shape != target.shape:
        raise InputError(f"pred and target: expected the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    ignored = target == ignore_index
    positive, truth = pred > 0.5, (target > 0.5) & ~ignored
    out = torch.zeros(*target.shape, 3, dtype=torch.uint8)  # (H, W, 3), true negatives black
    for name, where in (
        ("true positive", positive & truth),
        ("false positive", positive & ~truth),
        ("false negative", ~positive & truth),
        ("ignored", ignored),
    ):
        out[where] = torch.tensor(ERROR_COLORS[name], dtype=torch.uint8)
    return out.permute(2, 0, 1).contiguous()


def show_error_maps(
    images: Images,
    preds: Images,
    targets: Images,
    max_samples: int = 4,
    title: str = "Where the prediction is wrong",
    names: Sequence[str] | None = None,
) -> Figure:
    """One row per sample: the image and its error map (white TP, red FP, blue FN), with a legend.

    ``names`` labels the rows (e.g. ``"<id>, Dice 0.93"``); the legend lists "ignored" only when a
    target has ignored pixels.
    """
    images, preds, targets = (
        as_batch(x, n)[:max_samples] for x, n in ((images, "images"), (preds, "preds"), (targets, "targets"))
    )
    names = list(names)[:max_samples] if names is not None else [f"sample {row}" for row in range(len(images))]
    fig, axes = grid_figure(len(images), 2, tile=(3.5, 2.5))
    for row, (image, pred, target) in enumerate(zip(images, preds, targets, strict=True)):
        axes[row, 0].imshow(to_display(image))
        axes[row, 1].imshow(to_display(error_map(pred, target)))
        image_axis(axes[row, 0], title="image" if row == 0 else None, ylabel=names[row])
        image_axis(axes[row, 1], title="errors" if row == 0 else None)
    has_ignored = bool((targets == IGNORE_INDEX).any())
    colors = {n: c for n, c in ERROR_COLORS.items() if n != "ignored" or has_ignored}
    legend = [Patch(facecolor=np.array(c) / 255, edgecolor="black", label=n) for n, c in colors.items()]
    legend.append(Patch(facecolor="black", edgecolor="black", label="true negative"))
    fig.legend(handles=legend, loc="outside lower center", ncol=len(legend), fontsize=8)
    fig.suptitle(title)
    return fig


def _class_legend(class_names: Sequence[str]) -> list[Patch]:
    """Legend entries for the trainId classes in their palette colours, plus black for ignored pixels."""
    colors = palette("trainid")[: len(class_names)].numpy() / 255
    entries = [Patch(color=c, label=n) for c, n in zip(colors, class_names, strict=True)]
    return [*entries, Patch(color="black", label="ignored")]


def show_cityscapes_predictions(
    images: Images,
    preds: Images,
    targets: Images,
    class_names: Sequence[str] | None = None,
    max_samples: int = 4,
    title: str = "Cityscapes: image, prediction, ground truth",
) -> Figure:
    """One row per sample: image, predicted trainIds, true trainIds, with a colour legend.

    Args:
        images: ``[B, 3, H, W]`` in [0, 1].
        preds: Predicted trainIds ``[B, H, W]``, or logits ``[B, 19, H, W]`` (their argmax is shown).
        targets: True trainIds ``[B, H, W]`` with 255 for ignored pixels.
        class_names: Legend entries in trainId order; None for no legend.
        max_samples: Number of rows at most.
        title: Figure title.
    """
    images, preds, targets = (
        as_batch(x, n)[:max_samples] for x, n in ((images, "images"), (preds, "preds"), (targets, "targets"))
    )
    if preds.ndim == 4 and preds.shape[1] > 1:
        preds = preds.argmax(1)  # (B, C, H, W) logits -> (B, H, W) trainIds
    fig, axes = grid_figure(len(images), 3, tile=(3.0, 3.0 * images.shape[-2] / images.shape[-1] + 0.3))  # 9 in wide
    for row, (image, pred, target) in enumerate(zip(images, preds, targets, strict=True)):
        for col, (name, picture) in enumerate(
            (("image", image), ("prediction", colorize(pred)), ("ground truth", colorize(target)))
        ):
            # Nearest neighbour: smoothing a label map while enlarging it would blend two classes' colours.
            axes[row, col].imshow(to_display(picture), interpolation="nearest")
            image_axis(axes[row, col], title=name if row == 0 else None)
    if class_names:
        # Swatches 2.5 x 1.5 em: the inside of each (all but its antialiased edge) is exactly the class's colour.
        fig.legend(
            handles=_class_legend(class_names),
            loc="outside lower center",
            ncol=5,
            fontsize=8,
            handlelength=2.5,
            handleheight=1.5,
        )
    fig.suptitle(title)
    return fig


def show_class_colors(class_names: Sequence[str], title: str | None = None) -> Figure:
    """One swatch per trainId class, left to right in trainId order, named underneath.

    Args:
        class_names: Names in trainId order (e.g. the 19 Cityscapes ``CLASS_NAMES``).
        title: Figure title; by default it names the number of classes and the trainId order.
    """
    n = len(class_names)
    if n == 0:
        raise InputError("class_names: expected at least one class name")
    swatches = colorize(torch.arange(n).reshape(1, n))  # (3, 1, n): one pixel per class
    fig = new_figure((max(4.0, 0.5 * n), 2.2))
    ax = fig.subplots()
    ax.imshow(to_display(swatches), interpolation="nearest")  # each swatch one flat colour, edge to edge
    ax.set_xticks(range(n), class_names, rotation=60, ha="right")
    ax.set_yticks([])
    ax.set_title(title or f"The {n} evaluated classes in their official colours (trainId 0 to {n - 1}, left to right)")
    return fig


def show_label_map(image: torch.Tensor, labels: torch.Tensor, title: str = "A picture and its labels") -> Figure:
    """A picture beside its trainId label map in the class colours; ignored pixels are black.

    Args:
        image: ``[3, H, W]`` in [0, 1], or uint8.
        labels: trainIds ``[H, W]`` with ``IGNORE_INDEX`` for ignored pixels.
        title: Figure title.
    """
    colors = colorize(labels)
    fig, axes = grid_figure(1, 2, tile=picture_tile(colors, width=4.5))
    for ax, picture, name in zip(axes[0], (image, colors), ("picture", "labels (black: ignored)"), strict=True):
        ax.imshow(to_display(picture), interpolation="nearest")  # the labels' colours unblended
        image_axis(ax, title=name)
    fig.suptitle(title)
    return fig
