"""Galleries: each row shows the photo, the prediction over it with the reference outlined, and P(car)."""

import matplotlib
import numpy as np
import pytest
import torch

from unet_lib.errors import InputError
from unet_lib.viz import RowLabels, show_before_after, show_gallery

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("no_pyplot_figures")


def pixels(ax) -> np.ndarray:
    return np.asarray(ax.get_images()[0].get_array())


def test_gallery_rows_name_the_picture_and_paint_what_the_threshold_calls_car():
    images = torch.zeros(2, 3, 8, 10)  # black photos: the painted pixels are pure paint
    probs = torch.zeros(2, 1, 8, 10)
    probs[:, :, 2:6, 2:6] = 0.7
    masks = torch.zeros(2, 8, 10, dtype=torch.long)
    masks[:, 1:7, 1:7] = 1
    labels = RowLabels(names=["car_01", "car_02"], scores=[0.5, 0.25])
    fig = show_gallery(images, probs, masks, labels=labels, threshold=0.6)
    picture_axes = [ax for ax in fig.axes if ax.get_images() and ax.get_label() != "<colorbar>"]
    assert len(picture_axes) == 6
    assert picture_axes[0].get_ylabel() == "car_01\nDice 0.500" and picture_axes[3].get_ylabel() == "car_02\nDice 0.250"
    assert [ax.get_title() for ax in picture_axes[:3]] == [
        "photo",
        "prediction > 0.6 (red), reference (yellow)",
        "probability of car",
    ]
    painted = pixels(picture_axes[1])  # (H, W, 3)
    assert painted[3, 3, 0] > 0 and painted[3, 3, 1] == 0  # p = 0.7 > 0.6: red
    assert tuple(painted[1, 1]) == (1.0, 1.0, 0.0)  # the reference's edge, yellow (shown as floats in [0, 1])
    assert not painted[7, 9].any()  # outside both: the black photo
    np.testing.assert_allclose(pixels(picture_axes[2]), probs[0, 0].numpy())
    colorbar = fig.axes[-1]
    assert colorbar.get_ylabel() == "P(car)" and colorbar.get_ylim() == (0.0, 1.0)
    fig.canvas.draw()
    not_car = show_gallery(images, probs, threshold=0.8)
    assert not pixels(not_car.axes[1]).any()  # nothing above 0.8, no reference: nothing painted
    assert not_car.axes[1].get_title() == "prediction > 0.8 (red)" and not_car.axes[0].get_ylabel() == "picture 0"


def test_gallery_refuses_labels_that_do_not_match_the_pictures():
    with pytest.raises(InputError, match="expected 2 of each"):
        show_gallery(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4), labels=RowLabels(names=["only one"]))


def test_before_after_shows_the_same_picture_twice_with_its_own_mask():
    before, after = torch.zeros(1, 3, 6, 6), torch.zeros(1, 3, 6, 6)
    mask_before = torch.zeros(1, 6, 6)
    mask_before[0, :3] = 1
    mask_after = mask_before.flip(-1).flip(-2)  # the augmented mask moved with the picture
    fig = show_before_after(before, after, mask_before, mask_after, names=["car_03"])
    assert fig.axes[0].get_ylabel() == "car_03" and fig.get_suptitle()
    assert pixels(fig.axes[0])[2].any() and not pixels(fig.axes[0])[5].any()  # outline of the top half
    assert pixels(fig.axes[1])[3].any() and not pixels(fig.axes[1])[0].any()  # outline of the bottom half
