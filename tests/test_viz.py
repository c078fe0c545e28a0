"""Picture figures, checked through the pixels they draw; the shared helpers' shapes and ranges."""

import io

import matplotlib
import numpy as np
import pytest
import torch

from unet_lib.data.cityscapes import CLASS_COLORS, CLASS_NAMES
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.viz import (
    error_map,
    show_cityscapes_predictions,
    show_class_colors,
    show_error_maps,
    show_label_map,
    show_predictions,
    show_samples,
    to_display,
)
from unet_lib.viz.common import as_batch, as_mask2d, to_uint8

matplotlib.use("Agg")
RED = np.array([255, 0, 0])

pytestmark = pytest.mark.usefixtures("no_pyplot_figures")


def render(fig) -> None:
    """Draw the figure for real: layout and text problems only show up here."""
    fig.savefig(io.BytesIO(), format="png")


def shown(ax, k: int = 0) -> np.ndarray:
    """The array that the k-th picture of ``ax`` displays."""
    return np.asarray(ax.images[k].get_array())


def rgb(colors) -> np.ndarray:
    """uint8 RGB triples as the [0, 1] floats that to_display hands to imshow."""
    return np.asarray(colors, dtype=np.float32) / 255


def test_to_display_and_to_uint8():
    image = torch.rand(3, 4, 5)
    np.testing.assert_array_equal(to_display(image), image.permute(1, 2, 0).numpy())
    assert to_display(torch.rand(1, 4, 5)).shape == (4, 5)
    white = to_display(torch.full((3, 2, 2), 255, dtype=torch.uint8))
    assert white.dtype == np.float32 and np.all(white == 1.0)
    with pytest.raises(InputError, match="image"):
        to_display(torch.rand(2, 4, 5))
    assert to_uint8(torch.tensor([0.0, 0.5, 1.0, 2.0])).tolist() == [0, 128, 255, 255]
    same = to_uint8(torch.tensor([7], dtype=torch.uint8))
    assert same.dtype == torch.uint8 and same.tolist() == [7]  # uint8 is kept as is


def test_as_batch_and_as_mask2d():
    assert as_batch([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)], "images").shape == (2, 3, 2, 2)
    with pytest.raises(InputError, match="images: expected at least one"):
        as_batch([], "images")
    mask = as_mask2d(torch.ones(1, 4, 5, dtype=torch.uint8))
    assert mask.shape == (4, 5) and mask.dtype == torch.uint8  # the dtype is kept
    with pytest.raises(InputError, match="target: expected shape"):
        as_mask2d(torch.zeros(2, 4, 5), "target")


def test_show_samples_draws_image_mask_and_overlay():
    images, masks = torch.rand(3, 3, 8, 8), (torch.rand(3, 1, 8, 8) > 0.5).float()
    masks[0, 0, 0, 0] = IGNORE_INDEX
    fig = show_samples(images, masks, max_samples=2, title="Samples")
    assert len(fig.axes) == 6 and fig.get_suptitle() == "Samples"
    assert [ax.get_title() for ax in fig.axes[:3]] == ["image", "mask", "overlay"]
    np.testing.assert_allclose(shown(fig.axes[3]), images[1].permute(1, 2, 0).numpy())
    grey = masks[0, 0].numpy().copy()
    grey[0, 0] = 0.5  # ignored pixels are mid-grey
    np.testing.assert_array_equal(shown(fig.axes[1]), grey)
    plain = (images[0] * 255).round().permute(1, 2, 0).numpy()  # (H, W, 3)
    painted = masks[0, 0].numpy() == 1
    expected = np.where(painted[..., None], 0.5 * plain + 0.5 * RED, plain) / 255
    np.testing.assert_allclose(shown(fig.axes[2]), expected, atol=1 / 255 + 1e-6)
    assert np.allclose(shown(fig.axes[2])[0, 0], plain[0, 0] / 255)  # the ignored pixel is not painted
    render(fig)


def test_show_predictions_rows_and_overlay():
    images, preds, masks = torch.rand(3, 3, 8, 8), torch.rand(3, 1, 8, 8), (torch.rand(3, 1, 8, 8) > 0.5).float()
    fig = show_predictions(images, preds, masks)
    assert len(fig.axes) == 6 and [fig.axes[0].get_ylabel(), fig.axes[3].get_ylabel()] == ["prediction", "reference"]
    np.testing.assert_allclose(shown(fig.axes[1]), preds[1, 0].numpy())
    np.testing.assert_array_equal(shown(fig.axes[5]), masks[2, 0].numpy())
    render(fig)
    fig = show_predictions(list(images), preds, overlay=True)
    assert len(fig.axes) == 3 and fig.get_suptitle() == "Predictions"
    plain = (images[0] * 255).round().permute(1, 2, 0).numpy()
    expected = np.where((preds[0, 0] > 0.5).numpy()[..., None], 0.5 * plain + 0.5 * RED, plain) / 255
    np.testing.assert_allclose(shown(fig.axes[0]), expected, atol=1 / 255 + 1e-6)
    render(fig)


def test_error_map_colours_on_a_hand_made_case():
    pred = torch.tensor([[1, 1, 0, 0, 1]])
    target = torch.tensor([[1, 0, 1, 0, IGNORE_INDEX]])
    out = error_map(pred, target)
    assert out.dtype == torch.uint8 and out.shape == (3, 1, 5)
    pixels = [tuple(out[:, 0, j].tolist()) for j in range(5)]
    assert pixels == [(255, 255, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0), (128, 128, 128)]
    with pytest.raises(InputError, match="same shape"):
        error_map(torch.zeros(2, 2), torch.zeros(3, 3))


def test_error_map_figure_draws_the_map_with_a_legend():
    preds = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]]).repeat(2, 1, 1, 1)  # (2, 1, 1, 4)
    targets = torch.tensor([[[[1.0, 0.0, 1.0, 0.0]]]]).repeat(2, 1, 1, 1)
    fig = show_error_maps(torch.rand(2, 3, 1, 4), preds, targets)
    np.testing.assert_allclose(shown(fig.axes[1])[0], rgb([(255, 255, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0)]))
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["true positive", "false positive", "false negative", "true negative"]  # nothing ignored
    assert fig.axes[1].get_title() == "errors" and fig.axes[2].get_ylabel() == "sample 1"
    render(fig)
    targets[1, 0, 0, 3] = IGNORE_INDEX
    fig = show_error_maps(torch.rand(2, 3, 1, 4), preds, targets, names=["car a", "car b, Dice 0.50"])
    assert [t.get_text() for t in fig.legends[0].get_texts()][3] == "ignored"
    assert [fig.axes[0].get_ylabel(), fig.axes[2].get_ylabel()] == ["car a", "car b, Dice 0.50"]
    np.testing.assert_allclose(shown(fig.axes[3])[0, 3], rgb([(128, 128, 128)])[0])


def test_cityscapes_predictions_in_the_official_colours():
    targets = torch.randint(0, 19, (2, 8, 16))
    targets[:, 0] = IGNORE_INDEX
    logits = torch.randn(2, 19, 8, 16)
    fig = show_cityscapes_predictions(torch.rand(2, 3, 8, 16), logits, targets, CLASS_NAMES)
    assert len(fig.axes) == 6 and fig.get_suptitle()
    colours = rgb(CLASS_COLORS + [(0, 0, 0)] * 237)  # (256, 3): every id past 18 is black
    np.testing.assert_allclose(shown(fig.axes[1]), colours[logits[0].argmax(0).numpy()])
    np.testing.assert_allclose(shown(fig.axes[5]), colours[targets[1].numpy()])
    assert not shown(fig.axes[2])[0].any()  # ignored pixels are black
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [*CLASS_NAMES, "ignored"]
    np.testing.assert_allclose(legend.legend_handles[13].get_facecolor()[:3], rgb((0, 0, 142)))  # car
    render(fig)
    assert not show_cityscapes_predictions(torch.rand(1, 3, 8, 16), targets[:1], targets[:1]).legends


def pixels_at_100_dpi(fig) -> np.ndarray:
    """The figure as the PNG a notebook stores at 100 dpi: uint8 [H, W, 3]."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_every_class_keeps_its_exact_colour_in_the_saved_legend_and_swatches():
    targets = torch.zeros(1, 32, 64, dtype=torch.long)  # all road: the other colours are in the legend only
    fig = show_cityscapes_predictions(torch.rand(1, 3, 32, 64), targets, targets, CLASS_NAMES)
    legend = fig.legends[0]
    assert legend.handlelength >= 2.5 and legend.handleheight >= 1.5  # swatches big enough to be seen
    picture = pixels_at_100_dpi(fig)
    height = picture.shape[0]
    box = legend.get_window_extent()  # in pixels at the figure's dpi; the PNG's rows count from the top
    x0, x1 = (int(v * 100 / fig.dpi) for v in (box.x0, box.x1))
    y0, y1 = (height - int(v * 100 / fig.dpi) for v in (box.y1, box.y0))
    inside = picture[y0:y1, x0:x1].reshape(-1, 3)
    for name, color in zip(CLASS_NAMES, CLASS_COLORS, strict=True):
        assert (inside == color).all(1).sum() >= 100, name  # a swatch's inside: at least 100 exact pixels
    noisy = torch.randint(0, 19, (1, 32, 64))  # class edges everywhere: enlarging must not blend them
    palette = np.array([*CLASS_COLORS, (0, 0, 0)])
    predictions = show_cityscapes_predictions(torch.rand(1, 3, 32, 64), noisy, noisy, CLASS_NAMES)
    label_map = show_label_map(torch.rand(3, 32, 64), noisy[0])
    for fig, ax in [
        (predictions, predictions.axes[1]),
        (predictions, predictions.axes[2]),
        (label_map, label_map.axes[1]),
    ]:
        picture = pixels_at_100_dpi(fig)
        assert ax.images[0].get_interpolation() == "nearest"
        box = ax.get_window_extent()
        x0, x1 = (int(v * 100 / fig.dpi) for v in (box.x0, box.x1))
        y0, y1 = (picture.shape[0] - int(v * 100 / fig.dpi) for v in (box.y1, box.y0))
        inside = picture[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3].reshape(-1, 1, 3)  # the frame's line left out
        assert (inside == palette[None]).all(-1).any(-1).all()  # every pixel is a class's colour (or black)
    swatches = pixels_at_100_dpi(show_class_colors(CLASS_NAMES)).reshape(-1, 3)
    for name, color in zip(CLASS_NAMES, CLASS_COLORS, strict=True):
        assert (swatches == color).all(1).sum() >= 400, name


def test_show_class_colors_has_one_swatch_per_class():
    fig = show_class_colors(CLASS_NAMES)
    ax = fig.axes[0]
    np.testing.assert_allclose(shown(ax), rgb([CLASS_COLORS]))  # (1, 19, 3)
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASS_NAMES
    assert ax.get_title().startswith("The 19 evaluated classes") and "trainId 0 to 18" in ax.get_title()
    render(fig)
    assert show_class_colors(CLASS_NAMES[:3], title="Three").axes[0].get_title() == "Three"
    with pytest.raises(InputError, match="class_names"):
        show_class_colors([])


def test_show_label_map_puts_the_colours_beside_the_picture():
    image = torch.rand(3, 2, 3)
    labels = torch.tensor([[0, 13, IGNORE_INDEX], [2, 2, 18]])
    fig = show_label_map(image, labels, title="Validation picture")
    picture, colours = fig.axes
    np.testing.assert_allclose(shown(picture), image.permute(1, 2, 0).numpy())
    expected = rgb([[(128, 64, 128), (0, 0, 142), (0, 0, 0)], [(70, 70, 70), (70, 70, 70), (119, 11, 32)]])
    np.testing.assert_allclose(shown(colours), expected)
    assert picture.get_title() == "picture" and "black: ignored" in colours.get_title()
    assert fig.get_suptitle() == "Validation picture"
    render(fig)
    with pytest.raises(InputError, match="integer"):
        show_label_map(image, labels.float())
