"""Training curves: the finished history's figure and the live one that redraws in a single notebook output."""

import io
import sys

import matplotlib
import numpy as np
import pytest

from unet_lib.errors import InputError
from unet_lib.viz import LiveHistory, plot_history

matplotlib.use("Agg")

HISTORY = [
    {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_dice": 0.5, "lr": 1e-3, "seconds": 12.0},
    {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "val_dice": 0.7, "val_miou": 0.6, "lr": 5e-4, "seconds": 11.0},
    {"epoch": 3, "train_loss": 0.4, "val_loss": 0.5, "val_dice": 0.8, "val_miou": 0.7, "lr": 1e-4, "seconds": 11.5},
]

pytestmark = pytest.mark.usefixtures("no_pyplot_figures")


def curves(fig) -> dict[str, np.ndarray]:
    """``{label: (epochs, values) points}`` of every line in the figure."""
    return {line.get_label(): line.get_xydata() for ax in fig.axes for line in ax.lines}


def expected(history, key: str) -> np.ndarray:
    return np.array([(row["epoch"], row[key]) for row in history if key in row], dtype=float)


def test_plot_history_groups_losses_scores_and_lr():
    fig = plot_history(HISTORY[:2])
    loss_ax, score_ax, lr_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train_loss", "val_loss"]
    assert [line.get_label() for line in score_ax.lines] == ["val_dice", "val_miou"]
    np.testing.assert_allclose(loss_ax.lines[1].get_xydata(), [[1, 0.8], [2, 0.6]])
    np.testing.assert_allclose(score_ax.lines[1].get_xydata(), [[2, 0.6]])  # a metric that starts late
    assert lr_ax.get_yscale() == "log"
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch" and ax.get_title()
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [line.get_label() for line in ax.lines]
    assert "seconds" not in curves(fig) and "epoch" not in curves(fig)  # not curves
    fig.savefig(io.BytesIO(), format="png")
    fig = plot_history([{"train_loss": 1.0}, {"train_loss": 0.5}])  # no epoch key: counted from 1
    assert len(fig.axes) == 1
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xydata(), [[1, 1.0], [2, 0.5]])
    with pytest.raises(InputError, match="history"):
        plot_history([])
    with pytest.raises(InputError, match="numeric"):
        plot_history([{"epoch": 1, "seconds": 3.0}])


class FakeHandle:
    def __init__(self):
        self.updates = []

    def update(self, obj):
        self.updates.append(obj)


def test_live_history_displays_once_then_updates_the_same_output(monkeypatch):
    import IPython.display

    handle, shown = FakeHandle(), []

    def fake_display(obj, display_id=None):
        shown.append((obj, display_id))
        return handle

    monkeypatch.setattr(IPython.display, "display", fake_display)
    live = LiveHistory("Training on Carvana", num_epochs=3)
    assert live.figure is None
    for n in range(1, 4):  # what fit does: the history so far, after each epoch
        live(HISTORY[:n])
        assert live.figure.get_suptitle() == f"Training on Carvana, epoch {n} of 3"
    assert len(shown) == 1 and shown[0][1] is True  # one output, with an id to update
    assert len(handle.updates) == 2 and handle.updates[-1] is live.figure
    assert shown[0][0] is not live.figure  # each epoch draws a new figure into the same output
    lines = curves(live.figure)
    assert set(lines) == {"train_loss", "val_loss", "val_dice", "val_miou", "lr"}
    for key, xy in lines.items():
        np.testing.assert_allclose(xy, expected(HISTORY, key))


def test_live_history_without_a_notebook(monkeypatch):
    import IPython.display

    calls = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, display_id=None: calls.append(obj))  # returns None
    live = LiveHistory("Run")  # no planned number of epochs
    live(HISTORY[:1])
    live(HISTORY[:2])
    assert len(calls) == 1  # plain Python: shown (printed) once, then only kept
    assert live.figure.get_suptitle() == "Run, epoch 2"

    monkeypatch.setitem(sys.modules, "IPython.display", None)  # as if IPython were not installed
    live = LiveHistory("Run", num_epochs=5)
    live(HISTORY)
    assert live.figure.get_suptitle() == "Run, epoch 3 of 5"
    with pytest.raises(InputError, match="history"):
        live([])
