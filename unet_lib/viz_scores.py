"""Figures of per-image numbers: histograms (mask coverage, per-image Dice) and a threshold sweep.

Like ``unet_lib.viz``, every ``plot_*`` function returns a Figure that pyplot has let go of.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from unet_lib.errors import InputError
from unet_lib.viz import _new_figure


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
    fig = _new_figure((6, 3.5))
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
    fig = _new_figure((6, 3.5))
    ax = fig.subplots()
    for name, ys in curves.items():
        ys = _values(ys, f"curves[{name!r}]")
        if ys.shape != xs.shape:
            raise InputError(f"curves[{name!r}]: expected {xs.size} values (one per threshold), got {ys.size}")
        ax.plot(xs, ys, marker="o", markersize=3, label=name)
    ax.axvline(0.5, color="gray", linestyle=":", label="default threshold 0.5")
    if best is not None:
        ax.plot([best[0]], [best[1]], marker="*", markersize=12, color="black", linestyle="none")
        ax.annotate(f"best {best[1]:.4f} at {best[0]:.2f}", best, textcoords="offset points", xytext=(-30, 10))
    ax.set(xlabel="threshold on the car probability", ylabel="score", title=title, xlim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center")
    return fig
