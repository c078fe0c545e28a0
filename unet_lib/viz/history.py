"""Training curves: one figure of a finished history, a live one redrawn after every epoch of ``fit``, and the
learning-rate sweep of ``lr-find``."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from unet_lib.errors import InputError
from unet_lib.viz.common import grid_figure, new_figure

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
    fig, axes = grid_figure(1, len(panels), tile=(3.2, 2.8))  # three panels: 9.6 in, about 960 px at 100 dpi
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


class LiveHistory:
    """Training curves that redraw in place after every epoch: ``fit(..., on_epoch_end=LiveHistory(...))``.

    The first call shows the figure in the notebook; later calls replace that same output, so a saved
    notebook holds one figure (the last epoch's), not one per epoch. Outside a notebook the curves are
    not drawn on screen, but ``figure`` still holds the latest one (e.g. to ``savefig``).

    Args:
        title: Figure title; ``", epoch k of N"`` (or ``", epoch k"``) is added to it.
        num_epochs: Planned number of epochs ``N``, or None when it is not known.

    Attributes:
        figure: The last figure drawn (None before the first epoch).
    """

    def __init__(self, title: str, num_epochs: int | None = None):
        self.title, self.num_epochs = title, num_epochs
        self.figure: Figure | None = None
        self._shown = False
        self._handle: Any = None  # IPython's DisplayHandle of the shown output (None outside a notebook kernel)

    def __call__(self, history: Sequence[Mapping[str, float]]) -> None:
        """Redraw the curves of ``history`` (one dict per epoch so far) and show them."""
        if not history:
            raise InputError("history: expected a non-empty list of per-epoch dicts")
        epoch = history[-1].get("epoch", len(history))
        of = f" of {self.num_epochs}" if self.num_epochs is not None else ""
        self.figure = plot_history(history, title=f"{self.title}, epoch {epoch}{of}")
        try:
            # Imported here: the library itself does not need IPython, only a notebook showing the curves does.
            from IPython.display import display
        except ModuleNotFoundError:
            return
        if not self._shown:
            self._shown = True
            self._handle = display(self.figure, display_id=True)
        elif self._handle is not None:
            self._handle.update(self.figure)


def plot_lr_find(found: dict) -> Figure:
    """The learning-rate sweep of ``unet_lib.inspect.lr_find.lr_find``: each step's loss and the smoothed loss
    against the learning rate (log scale), with the suggested rate and the recipe's marked."""
    fig = new_figure((6.5, 3.8))
    ax = fig.subplots()
    ax.plot(found["lrs"], found["losses"], color="0.7", linewidth=1, label="loss of each step")
    ax.plot(found["lrs"], found["smoothed"], color="tab:blue", linewidth=2, label="smoothed loss")
    ax.axvline(found["suggested_lr"], color="tab:green", linestyle="--", label=f"suggested {found['suggested_lr']:.1e}")
    ax.axvline(found["config_lr"], color="tab:orange", linestyle=":", label=f"the recipe's {found['config_lr']:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("Learning-rate sweep: the loss as the rate grows", fontsize=10)
    ax.legend(fontsize=8)
    return fig
