"""Pure picture functions checked pixel by pixel; figures built, drawn and titled."""

import io

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt
from torch import nn

from unet_lib import viz, viz_layers
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX

matplotlib.use("Agg")


def render(fig) -> None:
    """Draw the figure for real: layout and text problems only show up here."""
    fig.savefig(io.BytesIO(), format="png")


def titles(fig) -> list[str]:
    return [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    yield
    assert plt.get_fignums() == []  # the figures never go through pyplot, so nothing piles up
    plt.close("all")


def test_to_display_shapes_and_range():
    assert viz.to_display(torch.rand(3, 4, 5)).shape == (4, 5, 3)
    assert viz.to_display(torch.rand(1, 4, 5)).shape == (4, 5)
    rgb = viz.to_display(torch.full((3, 2, 2), 255, dtype=torch.uint8))
    assert rgb.dtype == np.float32 and np.all(rgb == 1.0)
    with pytest.raises(InputError, match="image"):
        viz.to_display(torch.rand(2, 4, 5))


def test_overlay_changes_only_masked_pixels():
    image = torch.rand(3, 6, 7)
    mask = torch.zeros(6, 7)
    mask[1:3, 2:5] = 1
    mask[5, 6] = IGNORE_INDEX  # ignored pixels are not painted
    out = viz.overlay_mask(image, mask, color=(255, 0, 0), alpha=0.5)
    assert out.dtype == torch.uint8 and out.shape == (3, 6, 7)
    plain = (image * 255).round().to(torch.uint8)
    inside = mask == 1
    assert torch.equal(out[:, ~inside], plain[:, ~inside])
    expected_red = (0.5 * plain[0, inside].float() + 0.5 * 255).round()
    assert (out[0, inside].float() - expected_red).abs().max() <= 1
    assert torch.all(out[1:, inside] <= plain[1:, inside])


def test_error_map_colours_on_a_hand_made_case():
    pred = torch.tensor([[1, 1, 0, 0, 1]])
    target = torch.tensor([[1, 0, 1, 0, IGNORE_INDEX]])
    out = viz.error_map(pred, target)
    assert out.dtype == torch.uint8 and out.shape == (3, 1, 5)
    pixels = [tuple(out[:, 0, j].tolist()) for j in range(5)]
    assert pixels == [(255, 255, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0), (128, 128, 128)]
    with pytest.raises(InputError, match="same shape"):
        viz.error_map(torch.zeros(2, 2), torch.zeros(3, 3))


def test_colorize_trainids_uses_the_cityscapes_colours():
    labels = torch.tensor([[0, 13, 18, IGNORE_INDEX]])  # road, car, bicycle, ignored
    out = viz.colorize_trainids(labels)
    assert out.dtype == torch.uint8 and out.shape == (3, 1, 4)
    assert out[:, 0, 0].tolist() == [128, 64, 128]
    assert out[:, 0, 1].tolist() == [0, 0, 142]
    assert out[:, 0, 2].tolist() == [119, 11, 32]
    assert out[:, 0, 3].tolist() == [0, 0, 0]
    with pytest.raises(InputError, match="integer"):
        viz.colorize_trainids(torch.zeros(2, 2))


def test_activation_grid_shape_and_per_tile_range():
    act = torch.randn(10, 5, 6) * torch.arange(1, 11).view(10, 1, 1)  # every channel has its own scale
    act[3] = 7.0  # a constant channel
    grid = viz_layers.activation_grid(act, max_channels=9, padding=1)  # 3 x 3 tiles
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
    assert viz_layers.activation_grid(act[None], max_channels=4, ncols=4).shape == (1 * 6 + 1, 4 * 7 + 1)


def test_activation_image_picks_a_channel_or_the_grid():
    act = torch.randn(4, 5, 6)
    np.testing.assert_array_equal(viz_layers.activation_image(act, channel=2), act[2].numpy())
    assert viz_layers.activation_image(act).shape == viz_layers.activation_grid(act).shape
    with pytest.raises(InputError, match="channel"):
        viz_layers.activation_image(act, channel=4)


def test_sample_and_prediction_figures():
    images, masks = torch.rand(3, 3, 8, 8), (torch.rand(3, 1, 8, 8) > 0.5).float()
    fig = viz.show_samples(images, masks, max_samples=2)
    assert len(fig.axes) == 6 and fig.get_suptitle()
    render(fig)
    fig = viz.show_predictions(images, torch.rand(3, 1, 8, 8), masks)
    assert len(fig.axes) == 6 and [fig.axes[0].get_ylabel(), fig.axes[3].get_ylabel()] == ["prediction", "reference"]
    render(fig)
    fig = viz.show_predictions(list(images), torch.rand(3, 1, 8, 8), overlay=True)
    assert len(fig.axes) == 3 and fig.get_suptitle() == "Predictions"
    render(fig)


def test_plot_history_groups_losses_scores_and_lr():
    history = [
        {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_dice": 0.5, "lr": 1e-3},
        {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "val_dice": 0.7, "val_miou": 0.6, "lr": 5e-4},
    ]
    fig = viz.plot_history(history)
    loss_ax, score_ax, lr_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train_loss", "val_loss"]
    assert [line.get_label() for line in score_ax.lines] == ["val_dice", "val_miou"]
    assert list(score_ax.lines[1].get_xdata()) == [2]  # a metric that starts late
    assert lr_ax.get_yscale() == "log"
    assert all(ax.get_xlabel() == "epoch" and ax.get_legend() and ax.get_title() for ax in fig.axes)
    render(fig)
    assert len(viz.plot_history([{"train_loss": 1.0}, {"train_loss": 0.5}]).axes) == 1
    with pytest.raises(InputError, match="history"):
        viz.plot_history([])


def test_cityscapes_figures():
    names = [f"class {i}" for i in range(19)]
    targets = torch.randint(0, 19, (2, 8, 16))
    targets[:, 0] = IGNORE_INDEX
    fig = viz.show_cityscapes_predictions(torch.rand(2, 3, 8, 16), torch.randn(2, 19, 8, 16), targets, names)
    assert len(fig.axes) == 6 and fig.get_suptitle() and len(fig.legends[0].get_texts()) == 20
    render(fig)

    iou = torch.linspace(0, 0.9, 19)
    iou[5] = float("nan")  # a class that never appears
    fig = viz.plot_class_iou(iou, names)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() == "IoU"
    miou = torch.cat([iou[:5], iou[6:]]).mean()  # the mean over the classes that were seen
    assert f"mIoU = {miou:.3f}" in [t.get_text() for t in ax.get_legend().get_texts()]
    render(fig)
    with pytest.raises(InputError, match="iou"):
        viz.plot_class_iou(iou[:5], names)


def test_confusion_matrix_normalises_rows():
    mat = torch.tensor([[8, 2], [0, 0]])  # the second class never appears in the targets
    fig = viz.plot_confusion_matrix(mat, ["background", "car"])
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(shown, [[0.8, 0.2], [0.0, 0.0]])
    assert fig.axes[0].get_xlabel() == "predicted class" and fig.axes[0].get_title()
    render(fig)
    raw = viz.plot_confusion_matrix(mat, ["background", "car"], normalize=False)
    np.testing.assert_array_equal(raw.axes[0].images[0].get_array(), mat.numpy())
    with pytest.raises(InputError, match="mat"):
        viz.plot_confusion_matrix(mat, ["a", "b", "c"])


def test_error_map_figure_has_a_legend():
    preds, targets = (torch.rand(2, 1, 8, 8) > 0.5).float(), (torch.rand(2, 1, 8, 8) > 0.5).float()
    fig = viz.show_error_maps(torch.rand(2, 3, 8, 8), preds, targets)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"true positive", "false positive", "false negative"} <= set(labels)
    assert fig.get_suptitle() and fig.axes[1].get_title() == "errors"
    render(fig)


def test_activation_figures():
    act = torch.randn(1, 6, 8, 8)
    for fig in (viz_layers.plot_activation(act), viz_layers.plot_activation(act[0], channel=5)):
        assert fig.axes[0].get_title()
        render(fig)
    assert "channel 5 of 6" in viz_layers.plot_activation(act, channel=5).axes[0].get_title()

    rgb = viz_layers.show_filters(nn.Conv2d(3, 8, 3))
    assert rgb.axes[0].images[0].get_array().shape[-1] == 3 and rgb.axes[0].get_title()
    grey = viz_layers.show_filters(torch.randn(16, 8, 3, 3), max_filters=4, max_inputs=5)
    ax = grey.axes[0]
    assert ax.images[0].get_array().shape == (4 * 4 + 1, 5 * 4 + 1)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("input channel", "output filter")
    render(rgb)
    render(grey)


def test_show_layer_figure():
    acts = {"downs.0": torch.randn(1, 4, 16, 16), "bottleneck": torch.randn(16, 4, 4), "ups.0": torch.randn(8, 8, 8)}
    mask = (torch.rand(16, 16) > 0.5).float()
    fig = viz_layers.show_layer_figure(torch.rand(3, 16, 16), torch.rand(1, 16, 16), acts, mask)
    assert titles(fig)[1:] == [
        "input",
        "prediction",
        "downs.0\nmean of 4 channels",
        "bottleneck\nmean of 16 channels",
        "ups.0\nmean of 8 channels",
        "reference",
    ]
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), acts["bottleneck"].mean(0).numpy(), rtol=1e-6)
    render(fig)
    fig = viz_layers.show_layer_figure(torch.rand(3, 16, 16), torch.rand(16, 16), acts, channel=3)
    assert len(fig.axes) == 5 and fig.axes[2].get_title() == "downs.0\nchannel 3 of 4"
