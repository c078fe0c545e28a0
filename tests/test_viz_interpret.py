"""Figures of the network's inside, checked through the arrays, scales and shapes they draw."""

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from unet_lib.errors import InputError
from unet_lib.viz import (
    outline,
    overlay,
    show_activation_rows,
    show_heatmaps,
    show_kernels,
    show_mask_panels,
    show_receptive_fields,
)
from unet_lib.viz.interpret import show_outlined_predictions

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("no_pyplot_figures")


def pictures(fig):
    """The picture axes (those with an image), in order, without the colour bars."""
    return [ax for ax in fig.axes if ax.images]


def test_activation_rows_draw_the_mean_and_the_channels_at_each_layers_resolution():
    acts = {"downs.0": torch.randn(4, 16, 24), "bottleneck": torch.randn(8, 2, 3)}
    fig = show_activation_rows(acts, channels=(1, 3), title="The U")
    axes = pictures(fig)
    assert len(axes) == 6 and len(fig.axes) == 12  # every panel has its colour bar
    for row, act in enumerate(acts.values()):
        expected = [act.mean(0), act[1], act[3]]
        for col, want in enumerate(expected):
            np.testing.assert_allclose(axes[3 * row + col].images[0].get_array(), want.numpy(), rtol=1e-6)
    assert axes[3].get_ylabel() == "bottleneck" and axes[3].get_title() == "mean of 8\n2x3"
    assert fig._suptitle.get_text() == "The U"
    with pytest.raises(InputError, match="activations"):
        show_activation_rows({"x": torch.zeros(2, 3)})


def test_kernels_share_one_symmetric_scale_per_row():
    before, after = torch.randn(12, 3, 3), 3 * torch.randn(12, 3, 3)
    fig = show_kernels({"at init": before, "trained": after}, max_inputs=9)
    axes = pictures(fig)
    assert len(axes) == 18
    for row, kernel in enumerate((before, after)):
        limit = kernel[:9].abs().max().item()
        for c in range(9):
            image = axes[9 * row + c].images[0]
            np.testing.assert_array_equal(image.get_array(), kernel[c].numpy())
            assert image.get_clim() == pytest.approx((-limit, limit))
    assert axes[9].get_ylabel() == "trained" and axes[9].yaxis.label.get_rotation() == 0


def test_kernels_of_a_before_after_pair_share_one_scale():
    before, after = torch.randn(12, 3, 3), 3 * torch.randn(12, 3, 3)
    other = 10 * torch.randn(12, 3, 3)
    fig = show_kernels({"a init": before, "a trained": after, "b init": other, "b trained": other}, rows_per_scale=2)
    axes = pictures(fig)
    pair = max(before[:9].abs().max().item(), after[:9].abs().max().item())
    assert all(ax.images[0].get_clim() == pytest.approx((-pair, pair)) for ax in axes[:18])
    limit = other[:9].abs().max().item()
    assert all(ax.images[0].get_clim() == pytest.approx((-limit, limit)) for ax in axes[18:])
    assert len(fig.axes) == 36 + 2  # one colour bar per pair
    with pytest.raises(InputError, match="rows_per_scale"):
        show_kernels({"a": before, "b": after, "c": other}, rows_per_scale=2)


def test_heatmaps_are_upsampled_onto_the_photo():
    image, cam = torch.rand(3, 32, 48), torch.rand(4, 6)
    region = torch.zeros(32, 48, dtype=torch.bool)
    region[8:16, 8:24] = True
    fig = show_heatmaps(image, {"bottleneck": cam}, region=region)
    photo, heat = pictures(fig)
    np.testing.assert_allclose(photo.images[0].get_array(), overlay(image, region.long()).permute(1, 2, 0) / 255)
    expected = F.interpolate(cam[None, None], size=(32, 48), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(heat.images[1].get_array(), expected.numpy(), rtol=1e-6)
    assert "4x6" in heat.get_title()


def test_receptive_fields_mark_the_pixel_and_the_theoretical_square():
    image, field = torch.rand(3, 40, 60), torch.zeros(40, 60)
    field[18:23, 28:33] = torch.arange(25.0).reshape(5, 5)
    fig = show_receptive_fields(image, {"trained": field}, position=(20, 30), theoretical=14)
    (ax,) = pictures(fig)
    np.testing.assert_allclose(ax.images[1].get_array(), (field / 24).numpy())
    (box,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert box.get_xy() == (23.0, 13.0) and box.get_width() == box.get_height() == 14
    assert ax.lines[0].get_xydata().tolist() == [[30.0, 20.0]]
    assert box.get_label() == "theoretical field, 14 px"
    with pytest.raises(InputError, match="photo's size"):
        show_receptive_fields(image, {"x": torch.zeros(8, 8)}, position=(4, 4))


def test_a_theoretical_field_larger_than_the_picture_is_clipped_to_its_edges_and_says_so():
    image, field = torch.rand(3, 40, 60), torch.rand(40, 60)
    fig = show_receptive_fields(image, {"trained": field}, position=(20, 30), theoretical=204)
    (ax,) = pictures(fig)
    (box,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert box.get_xy() == (-0.5, -0.5) and (box.get_width(), box.get_height()) == (60, 40)
    assert "larger than the picture" in box.get_label()
    assert ax.get_xlim() == (-0.5, 59.5) and ax.get_ylim() == (39.5, -0.5)  # the axes stay on the picture


def test_mask_panels_paint_each_mask():
    image = torch.rand(3, 16, 24)
    masks = {"all skips": torch.zeros(16, 24), "without level 0": torch.ones(16, 24)}
    fig = show_mask_panels(image, masks)
    first, second = pictures(fig)
    np.testing.assert_allclose(first.images[0].get_array(), image.permute(1, 2, 0).numpy(), atol=1 / 255)
    painted = overlay(image, torch.ones(16, 24, dtype=torch.long)).permute(1, 2, 0) / 255
    np.testing.assert_allclose(second.images[0].get_array(), painted.numpy())
    assert [ax.get_title() for ax in (first, second)] == list(masks)


def test_outlined_predictions_name_each_column_and_paint_and_outline():
    images, preds, masks = torch.rand(2, 3, 16, 24), torch.zeros(2, 16, 24), torch.zeros(2, 16, 24)
    preds[0, 4:8, 4:8] = 1
    masks[1, 2:10, 2:10] = 1
    fig = show_outlined_predictions(images, preds, masks, names=["car_01", "car_02"], title="Photos")
    first, second = pictures(fig)
    painted = outline(overlay(images[0], preds[0].long(), "binary"), masks[0], color="yellow")
    np.testing.assert_allclose(first.images[0].get_array(), painted.permute(1, 2, 0).float().numpy() / 255)
    assert [ax.get_title() for ax in (first, second)] == ["car_01", "car_02"]
    assert fig._suptitle.get_text() == "Photos"
    with pytest.raises(InputError, match="one of each"):
        show_outlined_predictions(images, preds, masks, names=["car_01"])
