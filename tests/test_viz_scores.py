"""Histogram and threshold-sweep figures: built, drawn, titled, and holding the values given."""

import io

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from unet_lib.errors import InputError
from unet_lib.viz_scores import plot_histograms, plot_threshold_sweep

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
    assert [t.get_text() for t in ax.texts] == ["best 0.9000 at 0.50"]


def test_bad_inputs():
    with pytest.raises(InputError, match="values"):
        plot_histograms({}, "x", "t")
    with pytest.raises(InputError, match=r"values\['a'\]"):
        plot_histograms({"a": []}, "x", "t")
    with pytest.raises(InputError, match=r"curves\['dice'\]: expected 3 values"):
        plot_threshold_sweep([0.1, 0.5, 0.9], {"dice": [0.1, 0.2]})
