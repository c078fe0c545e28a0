"""Figures of numbers: per-image histograms, the threshold sweep, per-class IoU, the confusion matrix
and how often each class appears.

Every ``plot_*`` function returns a Figure that pyplot has let go of.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from unet_lib.errors import InputError
from unet_lib.viz.colors import palette
from unet_lib.viz.common import new_figure

DIGITS_PT = 8  # the numbers in a large confusion matrix's cells: the smallest text a figure should have


def _values(values: torch.Tensor | Sequence[float], name: str) -> np.ndarray:
    array = torch.as_tensor(values).detach().cpu().double().flatten().numpy()
    if array.size == 0:
        raise InputError(f"{name}: expected at least one value, got none")
    return array


def plot_histograms(
    values: Mapping[str, torch.Tensor | Sequence[float]],
    xlabel: str,
    title: str,
    bins: int = 20,
    value_range: tuple[float, float] | None = None,
) -> Figure:
    """Overlaid histograms of one number per image, e.g. the share of car pixels or the Dice, with their means.

    Args:
        values: ``{series name: values}``, e.g. ``{"train": coverage, "val": coverage}``.
        xlabel: What the values are.
        title: Figure title.
        bins: Number of bins, shared by all series.
        value_range: ``(low, high)`` of the bins; by default the range of all values.
    """
    if not values:
        raise InputError("values: expected at least one named series")
    arrays = {name: _values(v, f"values[{name!r}]") for name, v in values.items()}
    every = np.concatenate(list(arrays.values()))
    low, high = value_range or (float(every.min()), float(every.max()))
    edges = np.linspace(low, high if high > low else low + 1e-6, bins + 1)  # shared, so the bars compare
    fig = new_figure((6, 3.5))
    ax = fig.subplots()
    for k, (name, array) in enumerate(arrays.items()):
        color = f"C{k}"
        mean = float(array.mean())
        ax.hist(array, bins=edges, alpha=0.6, color=color, label=f"{name}: {array.size} images, mean {mean:.3f}")
        ax.axvline(mean, color=color, linestyle="--")
    ax.set(xlabel=xlabel, ylabel="images", title=title)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of images
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def plot_threshold_sweep(
    thresholds: torch.Tensor | Sequence[float],
    curves: Mapping[str, Sequence[float]],
    best: tuple[float, float] | None = None,
    title: str = "Scores against the probability threshold",
) -> Figure:
    """Scores (mean Dice, precision, recall...) against the probability threshold, with the best point marked.

    Args:
        thresholds: The thresholds tried, [T].
        curves: ``{score name: [T] values}``.
        best: ``(threshold, score)`` to mark, e.g. ``ThresholdSweep.best_threshold()``.
        title: Figure title.
    """
    xs = _values(thresholds, "thresholds")
    fig = new_figure((6, 3.5))
    ax = fig.subplots()
    for name, ys in curves.items():
        ys = _values(ys, f"curves[{name!r}]")
        if ys.shape != xs.shape:
            raise InputError(f"curves[{name!r}]: expected {xs.size} values (one per threshold), got {ys.size}")
        ax.plot(xs, ys, marker="o", markersize=3, label=name)
    ax.axvline(0.5, color="gray", linestyle=":", label="default threshold 0.5")
    if best is not None:  # named in the legend: a label beside the star would run into the curves or the frame
        label = f"best {best[1]:.4f} at {best[0]:.2f}"
        ax.plot([best[0]], [best[1]], marker="*", markersize=12, color="black", linestyle="none", label=label)
    ax.set(xlabel="threshold on the car probability", ylabel="score", title=title, xlim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center", fontsize=8)
    return fig


def plot_class_iou(
    iou: Sequence[float] | torch.Tensor, class_names: Sequence[str], title: str = "IoU per class"
) -> Figure:
    """Horizontal bars of per-class IoU with the mean (mIoU) as a line; NaN (class never seen) bars are empty."""
    values = torch.as_tensor(iou).detach().cpu().double().numpy()
    if values.shape != (len(class_names),):
        raise InputError(f"iou: expected {len(class_names)} values (one per class name), got shape {values.shape}")
    fig = new_figure((6, 1 + 0.3 * len(values)))
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
    """``mat[true, predicted]`` as an image; with ``normalize`` each row is divided by its total (recall).

    Up to 10 classes every cell is written in; more (e.g. Cityscapes' 19), only the cells of at least 0.5 % of
    their row, in %, at 8 pt, in 0.36 inch cells: a 19x19 matrix is 9.4 inches wide (940 pixels at 100 dpi).
    """
    mat = torch.as_tensor(mat).detach().cpu().double().numpy()
    n = len(class_names)
    if mat.shape != (n, n):
        raise InputError(f"mat: expected shape ({n}, {n}) to match class_names, got {mat.shape}")
    if normalize:
        totals = mat.sum(axis=1, keepdims=True)
        mat = np.divide(mat, totals, out=np.zeros_like(mat), where=totals > 0)  # rows with no pixels stay 0
    small = n <= 10
    cell = 0.45 if small else 0.36  # inches per class: 0.36 in holds "100" at 8 pt
    fig = new_figure((2.6 + cell * n, 2.2 + cell * n))
    ax = fig.subplots()
    im = ax.imshow(mat, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, label="fraction of the true class" if normalize else "pixels")
    ax.set_xticks(range(n), class_names, rotation=90)
    ax.set_yticks(range(n), class_names)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    for (i, j), value in np.ndenumerate(mat):
        if small:  # every cell written in
            text = f"{value:.2f}" if normalize else f"{value:.0f}"
        elif normalize and value >= 0.005:  # a large matrix: the cells that matter, in % of the row
            text = f"{100 * value:.0f}"
        else:
            continue
        color = "white" if value > 0.5 * mat.max() else "black"
        ax.text(j, i, text, ha="center", va="center", color=color, fontsize=None if small else DIGITS_PT)
    if normalize and not small:
        ax.set_title(f"{title}\n(numbers: % of the true class's pixels)")
    return fig


def plot_class_frequencies(
    frequencies: Sequence[float] | torch.Tensor,
    class_names: Sequence[str],
    title: str = "Class frequencies in the training set",
) -> Figure:
    """One bar per trainId class in its palette colour, on a log scale: rare classes stay visible.

    Args:
        frequencies: Share of labelled pixels per class, in trainId order (e.g. ``class_frequencies(train_set)``).
        class_names: Names in trainId order.
        title: Figure title.
    """
    values = _values(frequencies, "frequencies")
    if values.shape != (len(class_names),):
        raise InputError(f"frequencies: expected {len(class_names)} values (one per class name), got {values.size}")
    fig = new_figure((9, 3.8))
    ax = fig.subplots()
    colors = palette("trainid")[: len(values)].numpy() / 255
    ax.bar(class_names, values, color=colors, edgecolor="black", linewidth=0.5)
    ax.set_yscale("log")  # each step up is ten times more pixels; a class that never appears has no bar
    ax.tick_params(axis="x", rotation=60)
    ax.set(xlabel="class", ylabel="share of labelled pixels (log scale)", title=title)
    return fig
