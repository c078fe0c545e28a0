"""Try a trained model on your own photo: an ipywidgets tool that uploads or loads a picture, runs the
network at the picture's own resolution and shows the prediction, with a threshold slider.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError
from torch import nn

from unet_lib.data.cityscapes import NUM_CLASSES
from unet_lib.data.io import read_image, rgb_tensor
from unet_lib.data.transforms import resize_pair
from unet_lib.errors import InputError
from unet_lib.evaluation import predict_labels, predict_logits
from unet_lib.viz.photo import car_mask, panel_titles, show_photo_prediction

IMAGE_KINDS = "JPEG, PNG, GIF, BMP, TIFF or WebP"  # what PIL reads; the upload button offers image files only


def decode_image(name: str, data: bytes) -> torch.Tensor:
    """Decode the bytes of an image file (an upload) as RGB, converting modes as ``read_image`` does.

    Args:
        name: The file's name, used in error messages.
        data: The file's bytes.

    Returns:
        uint8 tensor [3, H, W].
    """
    try:
        with warnings.catch_warnings():
            # As read_image: a header that claims a gigantic picture is refused before decoding it.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()  # decode now, so that a truncated file fails here
                image = opened.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{name}: image header claims an implausibly large size; the file is corrupt") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):  # PIL's plugins raise all of these
        what = "an empty file" if not data else "not a picture, or a truncated one"
        raise InputError(f"{name}: {what}; expected an image file ({IMAGE_KINDS})") from None
    return rgb_tensor(image)


def photo_logits(
    model: nn.Module, photo: torch.Tensor, size: Sequence[int], tta: bool = False, amp_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """The model's logits for one picture at the picture's own resolution, as ``predict_full_res`` makes them.

    The photo is resized to the network's ``size`` (antialiased), predicted, and the logits are
    upsampled back to the photo's size (``predict_logits`` runs the model in eval mode and puts it back).

    Args:
        model: The network.
        photo: uint8 [3, H, W].
        size: ``(h, w)`` the network was trained at.
        tta: Average with the prediction on the mirrored photo.
        amp_dtype: Autocast in this dtype (None: fp32), as ``predict_logits``.

    Returns:
        float32 logits [C, H, W] on the CPU.
    """
    small, _ = resize_pair(photo, None, tuple(size))
    batch = (small.float() / 255).unsqueeze(0).to(next(model.parameters()).device)  # (1, 3, h, w) in [0, 1]
    return predict_logits(model, batch, out_size=tuple(photo.shape[-2:]), tta=tta, amp_dtype=amp_dtype)[
        0
    ].cpu()  # (C, H, W)


def figure_output(fig: Figure, name: str | None = None) -> dict:
    """A figure as one ``display_data`` output (PNG) for ``widgets.Output.outputs``.

    The tool sets its Output widget's ``outputs`` directly instead of displaying inside ``with output:``:
    capturing a display sends the notebook client a change of the widget's ``msg_id`` before and after it,
    and under ``nbconvert --execute`` on a loaded machine the client then at times missed the cell's
    execute reply until the cell's timeout (forever without one). Setting ``outputs`` is one plain state update.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")  # as the inline backend shows a figure
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {
        "output_type": "display_data",
        "data": {"image/png": png, "text/plain": f"<figure of {name}>"},
        "metadata": {},
    }


class PhotoPredictor:
    """Widgets to run ``model`` on a picture of your own: upload it, or type its path and press "load".

    Args:
        model: A trained network: one class (car) or several (a label map in Cityscapes colours).
        size: ``(h, w)`` the network was trained at; every picture is resized to it and the prediction
            back to the picture's own size.
        threshold: Starting value of the slider: a pixel is car when P(car) exceeds it.
        tta: Start with test-time augmentation (the mean with the mirrored photo's prediction) on.
        amp_dtype: Predict under autocast in this dtype (None: fp32), e.g. the ``Precision.dtype`` the model is
            scored in elsewhere, so that the tool shows the same predictions.

    Show ``tool.widget`` in a notebook; ``tool.load_path(path)`` and ``tool.load_bytes(name, data)`` load a
    picture from code; ``tool.figure()`` is the current view as a plain Figure (a static copy for readers
    without a kernel); ``tool.state()`` reports what is on screen. ``tool.photo`` (uint8 [3, H, W]),
    ``tool.probability`` (float [H, W], one-class models) and ``tool.labels`` (int64 [H, W]) hold what is shown.
    """

    def __init__(
        self,
        model: nn.Module,
        size: Sequence[int],
        threshold: float = 0.5,
        tta: bool = False,
        amp_dtype: torch.dtype | None = None,
    ):
        if len(size) != 2 or min(size) < 1:
            raise InputError(f"size: expected (height, width) of the network's pictures, got {tuple(size)}")
        self.model, self.size, self.amp_dtype = model, (int(size[0]), int(size[1])), amp_dtype
        self.name: str | None = None
        self.photo: torch.Tensor | None = None
        self._logits: torch.Tensor | None = None  # (C, H, W): kept, so the threshold slider needs no new forward pass
        self.probability: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

        wide, text = widgets.Layout(width="280px"), {"description_width": "initial"}
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload a photo")
        self.path = widgets.Text(placeholder="path/to/photo.jpg", description="or a path", layout=wide, style=text)
        self.load_button = widgets.Button(description="load", layout=widgets.Layout(width="auto"))
        self.threshold = widgets.FloatSlider(
            value=threshold, min=0.01, max=0.99, step=0.01, description="threshold", readout_format=".2f", style=text
        )
        self.tta = widgets.Checkbox(tta, description="average with the mirrored photo (TTA)", indent=False)
        self.tta.layout.width = "auto"
        self.info = widgets.HTML("Upload a photo, or type the path of one and press load.")
        self.output = widgets.Output()
        row = widgets.Layout(flex_flow="row wrap", align_items="center")
        self.controls = widgets.VBox(
            [
                widgets.Box([self.upload, self.path, self.load_button], layout=row),
                widgets.Box([self.threshold, self.tta], layout=row),
            ]
        )
        self.widget = widgets.VBox([self.controls, self.info, self.output])
        self.upload.observe(self._on_upload, names="value")
        self.load_button.on_click(self._on_load_click)
        self.threshold.observe(self._on_threshold, names="value")
        self.tta.observe(self._on_tta, names="value")

    # Loading: the public methods raise InputError; the widget handlers show its one line instead.

    def load_path(self, path: str | Path) -> None:
        """Read an image file (as ``read_image`` does), run the network on it and show the result."""
        self.path.value = str(path)  # the box shows what was loaded, ready to be edited
        path = Path(path).expanduser()
        self._set_photo(path.name, read_image(path))

    def load_bytes(self, name: str, data: bytes) -> None:
        """Decode an image file's bytes (an upload), run the network on it and show the result."""
        self._set_photo(name, decode_image(name, bytes(data)))

    def _set_photo(self, name: str, photo: torch.Tensor) -> None:
        self.info.value = html.escape(f"{name}: running the network ...", quote=False)
        logits = photo_logits(self.model, photo, self.size, self.tta.value, self.amp_dtype)
        if logits.shape[0] > NUM_CLASSES:
            raise InputError(f"model: predicts {logits.shape[0]} classes; this tool colours at most {NUM_CLASSES}")
        self._logits = logits
        self.name, self.photo = name, photo
        self._threshold_logits()
        self._redraw()

    def _threshold_logits(self) -> None:
        logits = self._logits  # (C, H, W)
        if logits.shape[0] == 1:  # what the figure paints: P(car) > threshold
            self.probability = logits[0].sigmoid()
            self.labels = car_mask(self.probability, self.threshold.value).long()
        else:
            self.probability, self.labels = None, predict_labels(logits[None])[0]  # argmax over classes
        self.threshold.disabled = logits.shape[0] != 1  # a label map has no threshold

    def _show_error(self, error: InputError) -> None:
        self.info.value = html.escape(str(error), quote=False)  # one line; the last good picture stays

    def _on_upload(self, change: dict) -> None:
        if not change["new"]:  # the upload was cleared
            return
        item = change["new"][-1]  # ipywidgets 8: a tuple of dicts with name, type, size and content
        try:
            self.load_bytes(item["name"], bytes(item["content"]))  # content: a memoryview
        except InputError as error:
            self._show_error(error)

    def _on_load_click(self, _: object) -> None:
        if not self.path.value.strip():
            self._show_error(InputError("path: type the path of a picture first, e.g. data/carvana/test/<id>.jpg"))
            return
        try:
            self.load_path(self.path.value.strip())
        except InputError as error:
            self._show_error(error)

    def _on_threshold(self, _: dict) -> None:
        if self._logits is not None:  # no new forward pass: only the threshold moves
            self._threshold_logits()
            self._redraw()

    def _on_tta(self, _: dict) -> None:
        if self.photo is not None:
            self._set_photo(self.name, self.photo)

    # Showing.

    def _prediction(self) -> torch.Tensor:
        return self.probability if self.probability is not None else self.labels

    def car_share(self) -> float | None:
        """The share of the picture's pixels called car at the current threshold (None: no picture, or several classes)."""
        if self.probability is None:
            return None
        return car_mask(self.probability, self.threshold.value).float().mean().item()

    def _summary(self) -> str:
        height, width = self.photo.shape[-2:]
        seen = f"{height}x{width} pixels (HxW), seen by the network at {self.size[0]}x{self.size[1]}"
        if self.probability is None:
            classes = ", ".join(map(str, self.labels.unique().tolist()))
            return f"{self.name}: {seen}; classes present: {classes}"
        share, threshold = self.car_share(), self.threshold.value
        return f"{self.name}: {seen}; {share:.1%} of the pixels are car at threshold {threshold:.2f}"

    def figure(self) -> Figure:
        """The current view as a plain matplotlib Figure: ``display(tool.figure())`` keeps a static copy."""
        if self.photo is None:
            raise InputError("figure: no picture yet; upload one or call load_path(path) first")
        return show_photo_prediction(self.photo, self._prediction(), self.threshold.value, title=self.name)

    def _redraw(self) -> None:
        self.info.value = html.escape(self._summary(), quote=False)
        self.output.outputs = (figure_output(self.figure(), self.name),)  # replaced at once: no flicker

    def state(self) -> dict:
        """What is on screen: the picture's name and size ``(H, W)``, the threshold, the car share, titles, the info line."""
        loaded = self.photo is not None
        return {
            "name": self.name,
            "size": tuple(self.photo.shape[-2:]) if loaded else None,  # (H, W), as the picture's own
            "network_size": self.size,  # (h, w) the network sees
            "num_classes": self._logits.shape[0] if loaded else None,
            "threshold": self.threshold.value,
            "threshold_enabled": not self.threshold.disabled,
            "tta": self.tta.value,
            "car_share": self.car_share(),
            "classes": self.labels.unique().tolist() if loaded else None,
            "titles": panel_titles(self.photo, self._prediction(), self.threshold.value) if loaded else None,
            "label": self.info.value,
        }
