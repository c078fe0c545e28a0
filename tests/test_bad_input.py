"""Inputs that are converted rather than refused (grayscale, RGBA, 16-bit), and a model of another shape."""

import numpy as np
import pytest
from PIL import Image

from unet_lib import InputError, TrainConfig, UNet
from unet_lib.checkpoint import load_weights, save_checkpoint
from unet_lib.cli import main
from unet_lib.data.io import read_image


def odd_images(folder):
    """A grayscale, an RGBA and a 16-bit picture, 50x30 (not divisible by 16)."""
    folder.mkdir()
    ramp = np.tile(np.arange(50, dtype=np.uint16), (30, 1))
    Image.fromarray((ramp * 5).astype(np.uint8), "L").save(folder / "gray.png")
    rgba = np.dstack([np.full((30, 50), 200, np.uint8)] * 3 + [np.full((30, 50), 17, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    Image.fromarray(ramp * 1300).save(folder / "deep.png")  # uint16 -> a 16-bit PNG
    return folder


def test_odd_modes_become_rgb(tmp_path):
    folder = odd_images(tmp_path / "in")
    gray, rgba, deep = (read_image(folder / f"{n}.png") for n in ("gray", "rgba", "deep"))
    for image in (gray, rgba, deep):
        assert image.shape == (3, 30, 50) and image.dtype.is_floating_point is False
    assert (gray[0] == gray[1]).all() and gray[0, 0, 10] == 50
    assert (rgba == 200).all()  # alpha dropped, colour kept
    assert deep[0, 0, 0] == 0 and deep[0, 0, 49] == round(49 * 1300 / 65535 * 255)  # 16 bits scaled to 8


def test_predict_converts_odd_inputs(tmp_path):
    model = UNet(features=(4, 8))
    config = TrainConfig(image_size=(32, 48), features=(4, 8))
    checkpoint = save_checkpoint(
        {"model": model.state_dict(), "arch": model.arch, "config": config.to_dict()}, tmp_path / "m.pt"
    )
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoint), str(odd_images(tmp_path / "in")), "--out", str(out)]) == 0
    for name in ("gray", "rgba", "deep"):
        assert Image.open(out / f"{name}_mask.png").size == (50, 30)  # the input's own size


def test_another_architecture_is_named():
    with pytest.raises(InputError, match=r"features=\[8, 16\] in the file vs \[4, 8\] here") as info:
        load_weights(UNet(features=(4, 8)), UNet(features=(8, 16)).state_dict(), "other.pt")
    assert str(info.value).startswith("other.pt: checkpoint does not fit this model")
    with pytest.raises(InputError, match="block=residual in the file vs double here"):
        load_weights(UNet(features=(4, 8)), UNet(features=(4, 8), block="residual").state_dict(), "res.pt")
