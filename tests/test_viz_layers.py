"""Pictures of the inside of the network: activation grids checked tile by tile, layer figures by their pixels."""

import io

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from unet_lib.errors import InputError
from unet_lib.viz import activation_grid, activation_image, plot_activation, show_filters, show_layer_figure

matplotlib.use("Agg")

pytestmark = pytest.mark.usefixtures("no_pyplot_figures")


def render(fig) -> None:
    """Draw the figure for real: layout and text problems only show up here."""
    fig.savefig(io.BytesIO(), format="png")


def titles(fig) -> list[str]:
    return [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]


def test_activation_grid_shape_and_per_tile_range():
    act = torch.randn(10, 5, 6) * torch.arange(1, 11).view(10, 1, 1)  # every channel has its own scale
    act[3] = 7.0  # a constant channel
    grid = activation_grid(act, max_channels=9, padding=1)  # 3 x 3 tiles
    assert grid.shape == (3 * (5 + 1) + 1, 3 * (6 + 1) + 1)
    for i in range(9):
        r, c = divmod(i, 3)
        tile = grid[1 + r * 6 : 1 + r * 6 + 5, 1 + c * 7 : 1 + c * 7 + 6]
        if i == 3:
            assert np.all(tile == 0)
        else:
            assert tile.min() == pytest.approx(0) and tile.max() == pytest.approx(1)
            expected = (act[i] - act[i].min()) / (act[i].max() - act[i].min())
            np.testing.assert_allclose(tile, expected.numpy(), atol=1e-6)
    inside = np.outer(np.arange(grid.shape[0]) % 6 != 0, np.arange(grid.shape[1]) % 7 != 0)  # borders every 6/7
    assert np.isnan(grid[~inside]).all() and not np.isnan(grid[inside]).any()
    assert activation_grid(act[None], max_channels=4, ncols=4).shape == (1 * 6 + 1, 4 * 7 + 1)


def test_activation_image_picks_a_channel_or_the_grid():
    act = torch.randn(4, 5, 6)
    np.testing.assert_array_equal(activation_image(act, channel=2), act[2].numpy())
    assert activation_image(act).shape == activation_grid(act).shape
    with pytest.raises(InputError, match="channel"):
        activation_image(act, channel=4)


def test_plot_activation_draws_the_channel_or_the_grid():
    act = torch.randn(1, 6, 8, 8)
    grid = plot_activation(act)
    np.testing.assert_array_equal(grid.axes[0].images[0].get_array().filled(np.nan), activation_grid(act))
    assert grid.axes[0].get_title() == "channels 0..5 of 6, each scaled to its own range"
    assert len(grid.axes) == 1  # no colour bar: each tile has its own scale
    render(grid)
    one = plot_activation(act[0], channel=5)
    np.testing.assert_array_equal(one.axes[0].images[0].get_array(), act[0, 5].numpy())
    assert one.axes[0].get_title() == "channel 5 of 6" and one.axes[1].get_ylabel() == "activation"  # colour bar
    render(one)
    image = torch.rand(3, 8, 8)
    beside = plot_activation(act, channel=1, image=image, title="downs.0")
    np.testing.assert_allclose(beside.axes[0].images[0].get_array(), image.permute(1, 2, 0).numpy())
    assert [ax.get_title() for ax in beside.axes[:2]] == ["input", "downs.0"]
    render(beside)


def test_show_filters_rgb_and_grey():
    conv = nn.Conv2d(3, 8, 3)
    rgb = show_filters(conv)
    shown = rgb.axes[0].images[0].get_array()
    assert shown.shape == (3 * 4 + 1, 3 * 4 + 1, 3) and rgb.axes[0].get_title()  # 8 filters on a 3 x 3 grid
    w = conv.weight[0].detach()
    np.testing.assert_allclose(shown[1:4, 1:4], ((w - w.min()) / (w.max() - w.min())).permute(1, 2, 0), atol=1e-6)
    grey = show_filters(torch.randn(16, 8, 3, 3), max_filters=4, max_inputs=5)
    ax = grey.axes[0]
    assert ax.images[0].get_array().shape == (4 * 4 + 1, 5 * 4 + 1)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("input channel", "output filter")
    render(rgb)
    render(grey)
    with pytest.raises(InputError, match="weight"):
        show_filters(torch.randn(3, 3))


def test_show_layer_figure():
    acts = {"downs.0": torch.randn(1, 4, 16, 16), "bottleneck": torch.randn(16, 4, 4), "ups.0": torch.randn(8, 8, 8)}
    pred, mask = torch.rand(1, 16, 16), (torch.rand(16, 16) > 0.5).float()
    fig = show_layer_figure(torch.rand(3, 16, 16), pred, acts, mask)
    assert titles(fig)[1:] == [
        "input",
        "prediction",
        "downs.0\nmean of 4 channels",
        "bottleneck\nmean of 16 channels",
        "ups.0\nmean of 8 channels",
        "reference",
    ]
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), pred[0].numpy())
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), acts["bottleneck"].mean(0).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(fig.axes[5].images[0].get_array(), mask.numpy())
    render(fig)
    fig = show_layer_figure(torch.rand(3, 16, 16), torch.rand(16, 16), acts, channel=3)
    assert len(fig.axes) == 5 and fig.axes[2].get_title() == "downs.0\nchannel 3 of 4"
    np.testing.assert_array_equal(fig.axes[4].images[0].get_array(), acts["ups.0"][3].numpy())
