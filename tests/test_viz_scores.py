"""Figures of numbers (histograms, threshold sweep, per-class IoU, confusion matrix, class frequencies),
checked through the bars, lines and pictures they hold."""

import io

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from unet_lib.data.cityscapes import CLASS_COLORS, CLASS_NAMES
from unet_lib.errors import InputError
from unet_lib.viz import (
    plot_class_frequencies,
    plot_class_iou,
    plot_confusion_matrix,
    plot_histograms,
    plot_threshold_sweep,
)

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    yield
    assert plt.get_fignums() == []  # the figures are closed before they are returned
    plt.close("all")


def test_histograms_count_every_image_and_mark_the_means():
    train, val = torch.tensor([0.1, 0.2, 0.2, 0.4]), [0.3, 0.35]
    fig = plot_histograms({"train": train, "val": val}, "share of car pixels", "Coverage", bins=5)
    fig.savefig(io.BytesIO(), format="png")
    ax = fig.axes[0]
    assert ax.get_title() == "Coverage" and ax.get_xlabel() == "share of car pixels" and ax.get_ylabel() == "images"
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights[:5]) == 4 and sum(heights[5:]) == 2  # one bar per bin and series
    means = sorted(line.get_xdata()[0] for line in ax.get_lines())
    assert means == pytest.approx([0.225, 0.325])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["train: 4 images, mean 0.225", "val: 2 images, mean 0.325"]


def test_histogram_of_one_repeated_value_and_fixed_range():
    fig = plot_histograms({"dice": [1.0, 1.0]}, "Dice", "Per-image Dice", value_range=(0, 1))
    fig.savefig(io.BytesIO(), format="png")
    assert sum(p.get_height() for p in fig.axes[0].patches) == 2
    fig = plot_histograms({"dice": [0.5, 0.5]}, "Dice", "Same value everywhere")
    assert sum(p.get_height() for p in fig.axes[0].patches) == 2


def test_threshold_sweep_plots_each_curve_and_the_best_point():
    thresholds = torch.tensor([0.25, 0.5, 0.75])
    curves = {"dice": [0.8, 0.9, 0.85], "recall": [0.95, 0.9, 0.8]}
    fig = plot_threshold_sweep(thresholds, curves, best=(0.5, 0.9), title="Sweep")
    fig.savefig(io.BytesIO(), format="png")
    ax = fig.axes[0]
    assert ax.get_title() == "Sweep" and ax.get_xlim() == (0, 1)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert np.allclose(lines["dice"].get_ydata(), curves["dice"])
    assert np.allclose(lines["recall"].get_xdata(), thresholds.numpy())
    assert "default threshold 0.5" in lines
    assert np.allclose(lines["best 0.9000 at 0.50"].get_xydata(), [[0.5, 0.9]])  # the star, named in the legend
    assert "best 0.9000 at 0.50" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_bad_inputs():
    with pytest.raises(InputError, match="values"):
        plot_histograms({}, "x", "t")
    with pytest.raises(InputError, match=r"values\['a'\]"):
        plot_histograms({"a": []}, "x", "t")
    with pytest.raises(InputError, match=r"curves\['dice'\]: expected 3 values"):
        plot_threshold_sweep([0.1, 0.5, 0.9], {"dice": [0.1, 0.2]})
    with pytest.raises(InputError, match="iou"):
        plot_class_iou(torch.zeros(5), CLASS_NAMES)
    with pytest.raises(InputError, match="mat"):
        plot_confusion_matrix(torch.zeros(2, 2), ["a", "b", "c"])
    with pytest.raises(InputError, match="frequencies: expected 19 values"):
        plot_class_frequencies([0.5, 0.5], CLASS_NAMES)


def test_class_iou_bars_and_the_mean_over_seen_classes():
    iou = torch.linspace(0, 0.9, 19)
    iou[5] = float("nan")  # a class that never appears
    fig = plot_class_iou(iou, CLASS_NAMES, title="IoU on val")
    fig.savefig(io.BytesIO(), format="png")
    ax = fig.axes[0]
    assert ax.get_title() == "IoU on val" and ax.get_xlabel() == "IoU"
    widths = [p.get_width() for p in ax.patches]
    np.testing.assert_allclose(widths, torch.nan_to_num(iou).numpy(), rtol=1e-6)  # the unseen class: empty bar
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASS_NAMES
    miou = torch.cat([iou[:5], iou[6:]]).mean().item()  # the mean over the classes that were seen
    assert ax.lines[0].get_xdata()[0] == pytest.approx(miou)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mIoU = " + f"{miou:.3f}", "IoU"]


def test_confusion_matrix_normalises_rows_and_has_a_colour_bar():
    mat = torch.tensor([[8, 2], [0, 0]])  # the second class never appears in the targets
    fig = plot_confusion_matrix(mat, ["background", "car"])
    fig.savefig(io.BytesIO(), format="png")
    ax, bar = fig.axes  # the matrix and its colour bar
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.8, 0.2], [0.0, 0.0]])
    assert ax.images[0].colorbar is not None and bar.get_ylabel() == "fraction of the true class"
    assert [t.get_text() for t in ax.texts] == ["0.80", "0.20", "0.00", "0.00"]  # a small matrix is written in
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    raw = plot_confusion_matrix(mat, ["background", "car"], normalize=False)
    np.testing.assert_array_equal(raw.axes[0].images[0].get_array(), mat.numpy())
    assert raw.axes[1].get_ylabel() == "pixels" and [t.get_text() for t in raw.axes[0].texts][:2] == ["8", "2"]
    big = torch.eye(19) * 90
    big[3, 5] = 10  # row 3: 90 % right, 10 % taken for class 5
    ax = plot_confusion_matrix(big, CLASS_NAMES).axes[0]  # 19 classes: only cells of 0.5 % or more, in %
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert len(texts) == 20 and texts[(3, 5)] == "10" and texts[(3, 3)] == "90" and texts[(0, 0)] == "100"
    assert min(t.get_fontsize() for t in ax.texts) >= 8  # readable at 100 dpi
    assert ax.figure.get_figwidth() <= 9.5  # not shrunk to fit a page


def test_class_frequencies_bars_in_class_colours_on_a_log_scale():
    frequencies = torch.full((19,), 0.01)
    frequencies[0], frequencies[12] = 0.5, 0.0  # much road, no rider
    fig = plot_class_frequencies(frequencies, CLASS_NAMES, title="Frequencies")
    fig.savefig(io.BytesIO(), format="png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "Frequencies"
    np.testing.assert_allclose([p.get_height() for p in ax.patches], frequencies.numpy(), rtol=1e-6)
    colours = np.array([p.get_facecolor()[:3] for p in ax.patches])
    np.testing.assert_allclose(colours, np.array(CLASS_COLORS) / 255)
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASS_NAMES
