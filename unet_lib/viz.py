"""Figures for images, masks, predictions, training curves and Cityscapes labels (layers: ``viz_layers``).

Every ``show_*``/``plot_*`` function returns a ``matplotlib.figure.Figure`` that pyplot has let go of:
a notebook shows it once (as a cell's value or with ``display(fig)``); ``fig.savefig(path)`` saves it.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from torchvision.utils import draw_segmentation_masks

from unet_lib.data.cityscapes import CLASS_COLORS
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX

# Colours of error_map; pixels that are background in both prediction and target stay black.
ERROR_COLORS = {
    "true positive": (255, 255, 255),
    "false positive": (255, 0, 0),
    "false negative": (0, 0, 255),
    "ignored": (128, 128, 128),
}
Images = torch.Tensor | Sequence[torch.Tensor]  # a batch [B, C, H, W] or a list of [C, H, W]


def _batch(x: Images, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if len(x) == 0:
        raise InputError(f"{name}: expected at least one item, got an empty list")
    return torch.stack([torch.as_tensor(t).detach().cpu() for t in x])


def _mask2d(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    mask = torch.as_tensor(mask).detach().cpu()
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise InputError(f"{name}: expected shape [H, W] or [1, H, W], got {tuple(mask.shape)}")
    return mask.float()


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


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    image = torch.as_tensor(image).detach().cpu()
    if image.dtype == torch.uint8:
        return image
    return (image.float().clamp(0, 1) * 255).round().to(torch.uint8)


def overlay_mask(
    image: torch.Tensor, mask: torch.Tensor, color: str | tuple[int, int, int] = "red", alpha: float = 0.5
) -> torch.Tensor:
    """Paint a binary mask over an image with ``torchvision.utils.draw_segmentation_masks``.

    Args:
        image: Float ``[3, H, W]`` in [0, 1], or uint8.
        mask: ``[H, W]`` or ``[1, H, W]``; pixels above 0.5 are painted, ``IGNORE_INDEX`` pixels are not.
        color: A colour name or an ``(r, g, b)`` tuple.
        alpha: Opacity of the paint.

    Returns:
        uint8 ``[3, H, W]``.
    """
    image, mask = _to_uint8(image), _mask2d(mask)
    if image.ndim != 3 or image.shape[0] != 3 or image.shape[1:] != mask.shape:
        raise InputError(
            f"image and mask: expected [3, H, W] and [H, W], got {tuple(image.shape)} and {tuple(mask.shape)}"
        )
    painted = (mask > 0.5) & (mask != IGNORE_INDEX)
    return draw_segmentation_masks(image, painted, alpha=alpha, colors=color)


def _new_figure(figsize: tuple[float, float]) -> Figure:
    # Made through pyplot so that a notebook loads its inline backend (which draws a returned Figure),
    # then closed so that pyplot neither shows it a second time at the end of the cell nor keeps it.
    fig = plt.figure(figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig


def _grid_figure(nrows: int, ncols: int, tile: tuple[float, float] = (2.5, 2.5)) -> tuple[Figure, np.ndarray]:
    fig = _new_figure((tile[0] * ncols, tile[1] * nrows))
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _picture_tile(images: torch.Tensor, width: float = 2.5) -> tuple[float, float]:
    """Inches per grid cell that fit the pictures' aspect ratio, plus room for a title line."""
    height, breadth = images.shape[-2:]
    return width, width * height / breadth + 0.35


def _image_axis(ax: Axes, title: str | None = None, ylabel: str | None = None) -> None:
    # No ticks on pictures, but keep the axis so a row can carry a label.
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel)


def _show_mask(ax: Axes, mask: torch.Tensor) -> None:
    mask = _mask2d(mask)
    ax.imshow(torch.where(mask == IGNORE_INDEX, 0.5, mask.clamp(0, 1)).numpy(), cmap="gray", vmin=0, vmax=1)


def show_samples(images: Images, masks: Images, max_samples: int = 4, title: str = "Images and masks") -> Figure:
    """One row per sample: the image, its mask (white = object, grey = ignored) and the overlay."""
    images, masks = _batch(images, "images")[:max_samples], _batch(masks, "masks")[:max_samples]
    fig, axes = _grid_figure(len(images), 3, tile=_picture_tile(images))
    for row, (image, mask) in enumerate(zip(images, masks, strict=True)):
        axes[row, 0].imshow(to_display(image))
        _show_mask(axes[row, 1], mask)
        axes[row, 2].imshow(to_display(overlay_mask(image, mask)))
        for col, name in enumerate(("image", "mask", "overlay")):
            _image_axis(axes[row, col], title=name if row == 0 else None)
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
    images, preds = _batch(images, "images")[:max_samples], _batch(preds, "preds")[:max_samples]
    rows = [("prediction", preds)] + (
        [("reference", _batch(masks, "masks")[:max_samples])] if masks is not None else []
    )
    fig, axes = _grid_figure(len(rows), len(preds), tile=_picture_tile(preds))
    for r, (label, row_masks) in enumerate(rows):
        for c, (image, mask) in enumerate(zip(images, row_masks, strict=True)):
            if overlay:
                axes[r, c].imshow(to_display(overlay_mask(image, mask)))
            else:
                _show_mask(axes[r, c], mask)
            _image_axis(axes[r, c], title=f"sample {c}" if r == 0 else None, ylabel=label if c == 0 else None)
    fig.suptitle(title or ("Top: prediction, bottom: reference" if masks is not None else "Predictions"))
    return fig


NOT_PLOTTED = ("epoch", "seconds")  # history keys that are not curves


def plot_history(history: Sequence[Mapping[str, float]], title: str = "Training history") -> Figure:
    """Loss curves on one axis, scores on another (and the learning rate on a third), per epoch.

    Args:
        history: One dict per epoch, e.g. ``{"epoch": 1, "train_loss": .., "val_loss": .., "val_dice": ..,
            "lr": ..}``; any subset of keys, and a key may be missing in some epochs.
        title: Figure title.
    """
    if not history:
        raise InputError("history: expected a non-empty list of per-epoch dicts")
    series: dict[str, tuple[list[float], list[float]]] = {}
    for i, row in enumerate(history):
        epoch = row.get("epoch", i + 1)
        for key, value in row.items():
            if key not in NOT_PLOTTED and isinstance(value, numbers.Real) and not isinstance(value, bool):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(epoch)
                ys.append(float(value))
    groups = {"loss": {}, "score": {}, "learning rate": {}}
    for key, xy in series.items():
        group = "loss" if "loss" in key else "learning rate" if key == "lr" or key.startswith("lr_") else "score"
        groups[group][key] = xy
    panels = [(name, group) for name, group in groups.items() if group]
    if not panels:
        raise InputError("history: expected numeric values such as 'train_loss' in the per-epoch dicts")
    fig, axes = _grid_figure(1, len(panels), tile=(4.5, 3.5))
    for ax, (name, group) in zip(axes[0], panels, strict=True):
        for key, (xs, ys) in group.items():
            ax.plot(xs, ys, marker="o", markersize=3, label=key)
        if name == "learning rate" and all(y > 0 for _, ys in group.values() for y in ys):
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="epoch", ylabel=name, title=name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return fig


def colorize_trainids(labels: torch.Tensor) -> torch.Tensor:
    """Cityscapes trainIds ``[H, W]`` to their official colours, uint8 ``[3, H, W]``; 255 and others -> black."""
    labels = torch.as_tensor(labels).detach().cpu()
    if labels.is_floating_point():
        raise InputError(f"labels: expected an integer label map of trainIds, got {labels.dtype}")
    labels = _mask2d(labels, "labels").long()
    palette = torch.zeros(256, 3, dtype=torch.uint8)  # every id past the 19 classes stays black
    palette[: len(CLASS_COLORS)] = torch.tensor(CLASS_COLORS, dtype=torch.uint8)
    labels = torch.where((labels >= 0) & (labels < 256), labels, IGNORE_INDEX)
    return palette[labels].permute(2, 0, 1).contiguous()  # (H, W, 3) -> (3, H, W)


def _class_legend(class_names: Sequence[str]) -> list[Patch]:
    colors = [np.array(c) / 255 for c in CLASS_COLORS[: len(class_names)]] + [np.zeros(3)]
    return [Patch(color=c, label=n) for c, n in zip(colors, [*class_names, "ignored"], strict=True)]


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
        _batch(x, n)[:max_samples] for x, n in ((images, "images"), (preds, "preds"), (targets, "targets"))
    )
    if preds.ndim == 4 and preds.shape[1] > 1:
        preds = preds.argmax(1)  # (B, C, H, W) logits -> (B, H, W) trainIds
    fig, axes = _grid_figure(len(images), 3, tile=(4.0, 2.2))
    for row, (image, pred, target) in enumerate(zip(images, preds, targets, strict=True)):
        for col, (name, picture) in enumerate(
            (("image", image), ("prediction", colorize_trainids(pred)), ("ground truth", colorize_trainids(target)))
        ):
            axes[row, col].imshow(to_display(picture))
            _image_axis(axes[row, col], title=name if row == 0 else None)
    if class_names:
        fig.legend(handles=_class_legend(class_names), loc="outside lower center", ncol=5, fontsize=8)
    fig.suptitle(title)
    return fig


def plot_class_iou(
    iou: Sequence[float] | torch.Tensor, class_names: Sequence[str], title: str = "IoU per class"
) -> Figure:
    """Horizontal bars of per-class IoU with the mean (mIoU) as a line; NaN (class never seen) bars are empty."""
    values = torch.as_tensor(iou).detach().cpu().double().numpy()
    if values.shape != (len(class_names),):
        raise InputError(f"iou: expected {len(class_names)} values (one per class name), got shape {values.shape}")
    fig = _new_figure((6, 1 + 0.3 * len(values)))
    ax = fig.subplots()
    ax.barh(range(len(values)), np.nan_to_num(values), color="tab:blue", label="IoU")
    if not np.isnan(values).all():
        miou = float(np.nanmean(values))
        ax.axvline(miou, color="tab:red", linestyle="--", label=f"mIoU = {miou:.3f}")
    ax.set_yticks(range(len(values)), class_names)
    ax.invert_yaxis()  # first class on top
    ax.set(xlim=(0, 1), xlabel="IoU", ylabel="class", title=title)
    ax.legend(loc="lower right")
    return fig


def plot_confusion_matrix(
    mat: torch.Tensor | np.ndarray, class_names: Sequence[str], normalize: bool = True, title: str = "Confusion matrix"
) -> Figure:
    """``mat[true, predicted]`` as an image; with ``normalize`` each row is divided by its total (recall)."""
    mat = torch.as_tensor(mat).detach().cpu().double().numpy()
    n = len(class_names)
    if mat.shape != (n, n):
        raise InputError(f"mat: expected shape ({n}, {n}) to match class_names, got {mat.shape}")
    if normalize:
        totals = mat.sum(axis=1, keepdims=True)
        mat = np.divide(mat, totals, out=np.zeros_like(mat), where=totals > 0)  # rows with no pixels stay 0
    fig = _new_figure((3.5 + 0.45 * n, 3 + 0.45 * n))
    ax = fig.subplots()
    im = ax.imshow(mat, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, label="fraction of the true class" if normalize else "pixels")
    ax.set_xticks(range(n), class_names, rotation=90)
    ax.set_yticks(range(n), class_names)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    if n <= 10:  # small matrices get their numbers written in
        for (i, j), value in np.ndenumerate(mat):
            text = f"{value:.2f}" if normalize else f"{value:.0f}"
            ax.text(j, i, text, ha="center", va="center", color="white" if value > 0.5 * mat.max() else "black")
    return fig


def error_map(pred: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Colour each pixel of a binary prediction by its outcome (see ``ERROR_COLORS``), uint8 ``[3, H, W]``.

    Args:
        pred: Predicted mask ``[H, W]`` or ``[1, H, W]``, probabilities or {0, 1}; above 0.5 is foreground.
        target: True mask, same shape, with ``ignore_index`` for pixels that do not count.
        ignore_index: Target value of ignored pixels (grey).
    """
    pred, target = _mask2d(pred, "pred"), _mask2d(target, "target")
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
    images: Images, preds: Images, targets: Images, max_samples: int = 4, title: str = "Where the prediction is wrong"
) -> Figure:
    """One row per sample: the image and its error map (white TP, red FP, blue FN), with a legend."""
    images, preds, targets = (
        _batch(x, n)[:max_samples] for x, n in ((images, "images"), (preds, "preds"), (targets, "targets"))
    )
    fig, axes = _grid_figure(len(images), 2, tile=(3.5, 2.5))
    for row, (image, pred, target) in enumerate(zip(images, preds, targets, strict=True)):
        axes[row, 0].imshow(to_display(image))
        axes[row, 1].imshow(to_display(error_map(pred, target)))
        _image_axis(axes[row, 0], title="image" if row == 0 else None, ylabel=f"sample {row}")
        _image_axis(axes[row, 1], title="errors" if row == 0 else None)
    legend = [Patch(facecolor=np.array(c) / 255, edgecolor="black", label=n) for n, c in ERROR_COLORS.items()]
    legend.append(Patch(facecolor="black", edgecolor="black", label="true negative"))
    fig.legend(handles=legend, loc="outside lower center", ncol=len(legend), fontsize=8)
    fig.suptitle(title)
    return fig
