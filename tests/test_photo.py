"""The own-photo tool: decoding checked against read_image, the probability against predict_full_res on a
copy of the model, then the widgets driven by setting their values (upload, path and button, slider)."""

import copy
import io
from datetime import datetime, timezone

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from unet_lib.cli.pictures import Inference, predict_full_res
from unet_lib.data.io import read_image
from unet_lib.errors import InputError
from unet_lib.model import UNet
from unet_lib.viz.colors import colorize
from unet_lib.viz.photo import PROB_LABEL, show_photo_prediction
from unet_lib.viz.photo_widget import IMAGE_KINDS, PhotoPredictor, decode_image

matplotlib.use("Agg")

H, W = 75, 131  # the photo: neither side divisible by 16
SIZE = (32, 48)  # what the network sees
NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)  # an upload's last_modified
NOT_AN_IMAGE = f"notes.txt: not a picture, or a truncated one; expected an image file ({IMAGE_KINDS})"


@pytest.fixture
def model() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 1, features=(4, 8, 16, 32))  # left in training mode: the tool must switch to eval and back


@pytest.fixture
def photo_path(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    car = ((yy - H / 2) / (H / 3)) ** 2 + ((xx - W / 2) / (W / 3)) ** 2 < 1  # a bright ellipse on a dark floor
    pixels = rng.integers(0, 60, (H, W, 3), dtype=np.uint8) + car[..., None].astype(np.uint8) * 150
    path = tmp_path / "my car.png"
    Image.fromarray(pixels).save(path)
    return path


def upload_value(name: str, data: bytes, kind: str = "image/png") -> tuple[dict, ...]:
    """What ipywidgets 8's FileUpload holds after a browser upload of one file."""
    return ({"name": name, "type": kind, "size": len(data), "content": memoryview(data), "last_modified": NOW},)


def reference_probability(model: UNet, path, tta: bool = False) -> torch.Tensor:
    """P(car) [H, W] from predict_full_res on a copy of the model (it leaves the model in eval mode)."""
    oracle = copy.deepcopy(model)
    [(_, logits)] = list(predict_full_res(oracle, [path], Inference(SIZE, tta=tta, progress=False)))
    return logits[0].sigmoid()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_decode_image_converts_like_read_image(tmp_path, mode):
    rng = np.random.default_rng(1)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65535, (9, 7), dtype=np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 255, (9, 7, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / "picture.png"
    image.save(path)
    decoded = decode_image(path.name, path.read_bytes())
    assert decoded.dtype == torch.uint8 and decoded.shape == (3, 9, 7)
    torch.testing.assert_close(decoded, read_image(path), rtol=0, atol=0)


def test_decode_image_refuses_what_is_not_a_picture(photo_path):
    with pytest.raises(InputError, match="^notes.txt: not a picture"):
        decode_image("notes.txt", b"shopping list: tyres, wax")
    with pytest.raises(InputError, match="^empty.jpg: an empty file; expected an image file"):
        decode_image("empty.jpg", b"")
    with pytest.raises(InputError, match="^cut.png: not a picture, or a truncated one"):
        decode_image("cut.png", photo_path.read_bytes()[:200])


def test_path_and_button_give_predict_full_res_probability_at_the_photo_s_own_size(model, photo_path):
    tool = PhotoPredictor(model, SIZE)
    tool.path.value = str(photo_path)
    tool.load_button.click()
    state = tool.state()
    assert state["name"] == "my car.png" and state["size"] == (H, W) and state["network_size"] == SIZE
    assert tool.photo.shape == (3, H, W) and tool.probability.shape == (H, W) and tool.labels.shape == (H, W)
    torch.testing.assert_close(tool.probability, reference_probability(model, photo_path), rtol=0, atol=1e-6)
    assert model.training  # put back as it was

    tool.tta.value = True  # runs the network again, with the mirrored photo
    torch.testing.assert_close(tool.probability, reference_probability(model, photo_path, tta=True), rtol=0, atol=1e-6)
    assert tool.state()["tta"]


def test_upload_gives_the_same_as_the_path(model, photo_path):
    by_path = PhotoPredictor(model, SIZE)
    by_path.load_path(photo_path)
    assert by_path.path.value == str(photo_path)  # loading from code fills the path box
    tool = PhotoPredictor(model, SIZE)
    tool.upload.value = upload_value("upload.png", photo_path.read_bytes())
    assert tool.state()["name"] == "upload.png" and tool.state()["size"] == (H, W)
    torch.testing.assert_close(tool.probability, by_path.probability, rtol=0, atol=0)
    tool.upload.value = ()  # clearing the upload keeps the picture
    assert tool.state()["name"] == "upload.png"


def test_threshold_slider_rethresholds_the_cached_probability_without_a_forward_pass(model, photo_path):
    tool = PhotoPredictor(model, SIZE)
    tool.load_path(photo_path)
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    shares = []
    for threshold in (0.01, 0.2, 0.4, 0.5, 0.6, 0.8, 0.99):
        tool.threshold.value = threshold
        state = tool.state()
        expected = (tool.probability > threshold).float().mean().item()  # the share of pixels called car
        assert state["threshold"] == threshold and state["car_share"] == pytest.approx(expected, abs=1e-6)
        torch.testing.assert_close(tool.labels, (tool.probability > threshold).long(), rtol=0, atol=0)
        assert f"{expected:.1%} of the pixels are car at threshold {threshold:.2f}" in state["label"]
        shares.append(state["car_share"])
    handle.remove()
    assert calls == []  # the network did not run again
    assert all(a >= b for a, b in zip(shares, shares[1:], strict=False)) and shares[0] > shares[-1]


def test_a_non_image_upload_and_a_missing_path_give_one_line_messages(model, photo_path, tmp_path):
    tool = PhotoPredictor(model, SIZE)
    tool.load_path(photo_path)
    before = tool.probability.clone()

    tool.upload.value = upload_value("notes.txt", b"shopping list: tyres, wax", kind="text/plain")
    assert tool.info.value == NOT_AN_IMAGE and "\n" not in tool.info.value

    missing = tmp_path / "no such photo.jpg"
    tool.path.value = str(missing)
    tool.load_button.click()
    assert tool.info.value == f"{missing}: file not found"

    tool.path.value = "  "
    tool.load_button.click()
    assert tool.info.value.startswith("path: type the path of a picture first")

    assert tool.state()["name"] == "my car.png" and torch.equal(tool.probability, before)  # the last photo stays
    with pytest.raises(InputError, match="^notes.txt: not a picture"):
        tool.load_bytes("notes.txt", b"shopping list")  # from code, the same message as an exception


def test_figure_has_three_titled_panels_and_a_0_to_1_colour_bar(model, photo_path, no_pyplot_figures):
    tool = PhotoPredictor(model, SIZE, threshold=0.3)
    tool.load_path(photo_path)
    fig = tool.figure()
    assert isinstance(fig, Figure) and fig.get_suptitle() == "my car.png"
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert len(panels) == 3 and len(fig.axes) == 4  # three pictures and the colour bar
    titles = [ax.get_title() for ax in panels]
    assert titles == tool.state()["titles"]
    assert titles[0] == f"photo ({H}x{W})" and "P(car) > 0.30" in titles[1] and titles[2].startswith(PROB_LABEL)
    prob_image = panels[2].images[0]
    assert prob_image.get_clim() == (0, 1) and prob_image.colorbar.ax.get_ylabel() == PROB_LABEL
    np.testing.assert_allclose(prob_image.get_array(), tool.probability.numpy())
    assert all(im.get_array().shape[:2] == (H, W) for ax in panels for im in ax.images)


def test_a_multi_class_model_shows_its_colourised_label_map(photo_path, no_pyplot_figures):
    torch.manual_seed(0)
    model = UNet(3, 5, features=(4, 8, 16, 32))
    tool = PhotoPredictor(model, SIZE)
    tool.load_path(photo_path)
    state = tool.state()
    assert state["num_classes"] == 5 and state["car_share"] is None and not state["threshold_enabled"]
    assert tool.probability is None and tool.labels.shape == (H, W)
    logits = next(iter(predict_full_res(copy.deepcopy(model), [photo_path], Inference(SIZE, progress=False))))[1]
    torch.testing.assert_close(tool.labels, logits.argmax(0), rtol=0, atol=0)
    fig = tool.figure()
    assert len(fig.axes) == 3  # no colour bar
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), colorize(tool.labels).permute(1, 2, 0) / 255)


def test_before_a_picture_and_bad_arguments(model):
    tool = PhotoPredictor(model, SIZE)
    assert tool.state()["name"] is None and tool.state()["car_share"] is None
    with pytest.raises(InputError, match="^figure: no picture yet"):
        tool.figure()
    with pytest.raises(InputError, match="^size: expected"):
        PhotoPredictor(model, (32,))


def test_show_photo_prediction_refuses_mismatched_or_out_of_range_predictions():
    photo = torch.zeros(3, 4, 5, dtype=torch.uint8)
    with pytest.raises(InputError, match=r"^photo and prediction: expected \[3, H, W\] and \[H, W\]"):
        show_photo_prediction(photo, torch.zeros(4, 6))
    with pytest.raises(InputError, match=r"^prediction: expected probabilities in \[0, 1\]"):
        show_photo_prediction(photo, torch.full((4, 5), 2.0))
    with pytest.raises(InputError, match="^threshold: expected a probability strictly between 0 and 1"):
        show_photo_prediction(photo, torch.zeros(4, 5), threshold=1.0)


def test_show_photo_prediction_paints_car_pixels_red(no_pyplot_figures):
    photo = torch.zeros(3, 4, 5, dtype=torch.uint8)
    prob = torch.zeros(4, 5)
    prob[1:3, 1:4] = 0.9
    fig = show_photo_prediction(photo, prob, threshold=0.5, title="a")
    painted = fig.axes[1].images[0].get_array()  # (H, W, 3) in [0, 1]
    assert (painted[1:3, 1:4, 0] > 0).all() and (painted[..., 1:] == 0).all() and painted[0, 0, 0] == 0
    assert "30.0% of pixels" in fig.axes[1].get_title()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # draws without error


def test_the_tool_predicts_in_the_precision_it_is_given(photo_path, model, monkeypatch):
    """``amp_dtype`` reaches ``predict_logits`` (the default stays fp32)."""
    import unet_lib.viz.photo_widget as photo_widget

    seen = []
    real = photo_widget.predict_logits

    def spy(*args, **kwargs):
        seen.append(kwargs.get("amp_dtype"))
        return real(*args, **kwargs)

    monkeypatch.setattr(photo_widget, "predict_logits", spy)
    PhotoPredictor(model, SIZE).load_path(photo_path)
    PhotoPredictor(model, SIZE, amp_dtype=torch.bfloat16).load_path(photo_path)
    assert seen == [None, torch.bfloat16]


def test_the_tool_shows_its_figure_as_one_png_output(photo_path, model):
    tool = PhotoPredictor(model, SIZE)
    tool.load_path(photo_path)
    (output,) = tool.output.outputs
    assert output["output_type"] == "display_data" and output["data"]["image/png"].startswith("iVBOR")  # a PNG
    assert "(HxW)" in tool.state()["label"]
