"""An ipywidgets explorer of a U-Net's layers: one channel, the channel mean, a page of channels, a conv's
filters or Grad-CAM. The widgets only wire values together; what is shown comes from pure functions.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import clear_output, display
from matplotlib.figure import Figure
from torch import nn
from torchvision.utils import make_grid

from unet_lib.errors import InputError
from unet_lib.evaluation import eval_mode
from unet_lib.inspect.hooks import capture, find_layers, layer_names
from unet_lib.inspect.interpret import grad_cam
from unet_lib.viz import activation_grid, outline
from unet_lib.viz.common import image_axis, new_figure, to_display, to_uint8

VIEWS = ("channel", "mean", "grid", "filters", "grad-cam")
GRID = 16  # channels on one page of the grid view
LOOKS = {  # per view: colour map, colour bar label (None: no bar), colour scale symmetric around 0
    "channel": ("viridis", "activation", False),
    "mean": ("viridis", "mean activation", False),
    "grid": ("viridis", None, False),  # every tile has its own scale, so one colour bar would mislead
    "filters": ("RdBu_r", "weight", True),  # white is 0, red positive, blue negative
    "grad-cam": ("inferno", "Grad-CAM", False),
}


def view_image(acts: Mapping[str, torch.Tensor], layer: str, view: str, channel: int) -> np.ndarray:
    """The float 2-D array an activation view draws: ``"channel"``, ``"mean"`` or ``"grid"``.

    Args:
        acts: ``{layer name: [C, H, W]}`` for one sample.
        layer: Key into ``acts``.
        view: ``"channel"`` (channel ``channel`` as is), ``"mean"`` (the mean over channels) or ``"grid"``
            (channels ``channel .. channel + 15``, each scaled to [0, 1], NaN between tiles).
        channel: Channel index (the first one of the grid), clamped to ``0 .. C - 1``.
    """
    act = acts[layer]
    channel = min(max(channel, 0), act.shape[0] - 1)
    if view == "channel":
        return act[channel].numpy()
    if view == "mean":
        return act.mean(0).numpy()
    if view == "grid":
        return activation_grid(act[channel : channel + GRID], GRID)
    raise InputError(f"view: expected one of ('channel', 'mean', 'grid') for an activation, got {view!r}")


def layer_conv(model: nn.Module, layer: str) -> tuple[str, torch.Tensor]:
    """The conv whose filters stand for ``layer`` and its weight as ``[out, in, k, k]``.

    A conv layer is its own conv; a block (``"downs.1"``) is represented by its last 3x3 conv (the one
    that makes the block's output), or its last conv of any size when it has no 3x3 one.

    Returns:
        The conv's name in ``model.named_modules()`` and a CPU copy of its weight.
    """
    module = find_layers(model, [layer])[layer]
    kinds = (nn.Conv2d, nn.ConvTranspose2d)  # ConvTranspose2d: the upsampling of upconvs.*
    convs = [(f"{layer}.{name}" if name else layer, m) for name, m in module.named_modules() if isinstance(m, kinds)]
    if not convs:
        raise InputError(f"layer {layer!r}: has no convolution, so it has no filters to show")
    name, conv = ([c for c in convs if c[1].kernel_size == (3, 3)] or convs)[-1]
    weight = conv.weight.detach().cpu().float()
    return name, weight.transpose(0, 1) if isinstance(conv, nn.ConvTranspose2d) else weight  # ConvTranspose: [in, out]


def filter_image(weight: torch.Tensor, channel: int) -> np.ndarray:
    """Output filter ``channel`` of a conv weight ``[out, in, k, k]``: its ``in`` kernels tiled about square.

    The kernels keep their values (one colour scale for all); NaN separates the tiles.
    """
    kernels = weight[min(max(channel, 0), weight.shape[0] - 1)].unsqueeze(1)  # (in, 1, k, k)
    grid = make_grid(kernels, nrow=math.ceil(math.sqrt(len(kernels))), padding=1, pad_value=math.nan)
    return grid[0].numpy()  # (3, H', W'): make_grid repeats a single channel three times


def cam_image(cam: torch.Tensor, size: Sequence[int]) -> np.ndarray:
    """A Grad-CAM map ``[h, w]`` upsampled (bilinear) to the picture's ``size`` ``(H, W)``."""
    return F.interpolate(cam[None, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()


def describe_activation(act: torch.Tensor, layer: str, channel: int, grid: bool) -> str:
    """One line about what is shown: layer, shape (C, H, W), channel, and min/max/mean of the shown values."""
    c, h, w = act.shape
    shown, which = (act, "all channels") if grid else (act[channel], f"channel {channel}")
    return f"{layer}, shape (C, H, W) = ({c}, {h}, {w}), {which}: {summary(shown)}"


def summary(values: torch.Tensor) -> str:
    """``min .., max .., mean ..`` of a tensor, to three significant digits."""
    return f"min {values.min().item():.3g}, max {values.max().item():.3g}, mean {values.mean().item():.3g}"


def run_with_activations(model: nn.Module, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """One forward pass in eval mode on ``image [3, H, W]``; returns ``{layer: [C, H, W]}`` on the CPU.

    The model goes back to training mode afterwards if it was in it.
    """
    device = next(model.parameters()).device
    with eval_mode(model), torch.inference_mode(), capture(model, layers) as acts:
        model(image.unsqueeze(0).to(device))  # (1, 3, H, W)
    return {name: act[0].cpu() for name, act in acts.items()}  # drop the batch of one


class LayerExplorer:
    """Widgets to browse the layers of ``model`` on a few images.

    Args:
        model: The network (a :class:`~unet_lib.model.UNet`).
        images: ``[N, 3, H, W]`` or a list of ``[3, H, W]`` in [0, 1].
        masks: Optional reference masks ``[N, H, W]``, outlined on the input picture.
        layers: Layer names to offer; default ``layer_names(model)``.

    Show ``explorer.widget`` in a notebook; ``explorer.figure()`` is the same view as a plain Figure (a
    static copy for readers without a kernel); ``explorer.state()`` reports what is on screen;
    ``explorer.displayed`` holds the 2-D array drawn on the right and ``explorer.displayed_input`` the
    input picture on the left (uint8 ``[3, H, W]``).
    """

    def __init__(
        self,
        model: nn.Module,
        images: torch.Tensor | Sequence[torch.Tensor],
        masks: torch.Tensor | Sequence[torch.Tensor] | None = None,
        layers: Sequence[str] | None = None,
    ):
        if len(images) == 0:
            raise InputError("images: expected at least one image")
        if masks is not None and len(masks) != len(images):
            raise InputError(f"masks: expected one per image ({len(images)}), got {len(masks)}")
        self.model, self.images, self.masks = model, images, masks
        outputs = getattr(model, "arch", {}).get("num_classes", 1)
        # Grad-CAM scores output channel 0: for a one-channel (binary) model that is the car logit.
        self._target = "the car logit (output channel 0)" if outputs == 1 else "class 0 (output channel 0)"
        self.layers = list(layers) if layers is not None else layer_names(model)
        if not self.layers:
            raise InputError("layers: expected at least one layer name, e.g. layer_names(model)")
        self._cache: dict[int, dict[str, torch.Tensor]] = {}  # sample index -> {layer: [C, H, W]}
        self._cams: dict[tuple[int, str], torch.Tensor] = {}  # (sample, layer) -> Grad-CAM [h, w]
        self._updating = False

        wide, text = widgets.Layout(width="260px"), {"description_width": "initial"}
        self.sample = widgets.IntSlider(max=len(images) - 1, description="sample", layout=wide, style=text)
        self.layer = widgets.Dropdown(options=self.layers, description="layer", layout=wide, style=text)
        self.view = widgets.ToggleButtons(options=VIEWS, description="view", style={**text, "button_width": "auto"})
        self.channel = widgets.IntSlider(max=0, description="channel", layout=wide, style=text)
        self.reference = widgets.Checkbox(masks is not None, description="reference outline", indent=False)
        self.reference.disabled, self.reference.layout.width = masks is None, "auto"  # on when there are masks
        self.info = widgets.HTML()  # unlike a Label, it wraps instead of cutting the numbers off
        self.output = widgets.Output()
        self.controls = widgets.Box(
            [self.sample, self.layer, self.channel, self.view, self.reference],
            layout=widgets.Layout(flex_flow="row wrap", align_items="center"),
        )
        self.widget = widgets.VBox([self.controls, self.info, self.output])
        for control in (self.sample, self.layer, self.view, self.channel, self.reference):
            control.observe(self._on_change, names="value")
        self._update_channel()
        self._redraw()

    def _activations(self, sample: int) -> dict[str, torch.Tensor]:
        if sample not in self._cache:  # one forward pass per sample, the first time it is picked
            self._cache[sample] = run_with_activations(self.model, torch.as_tensor(self.images[sample]), self.layers)
        return self._cache[sample]

    def _cam(self, sample: int, layer: str) -> torch.Tensor:
        if (sample, layer) not in self._cams:  # a forward and a backward pass, only when asked for
            image = torch.as_tensor(self.images[sample])[None].to(next(self.model.parameters()).device)
            self._cams[sample, layer] = grad_cam(self.model, image, layer, target=0)[0].cpu()  # (h, w)
        return self._cams[sample, layer]

    def num_channels(self) -> int:
        """What the channel slider picks from: the conv's output filters (filters view), else the layer's channels."""
        if self.view.value == "filters":
            return layer_conv(self.model, self.layer.value)[1].shape[0]
        return self._activations(self.sample.value)[self.layer.value].shape[0]

    def _update_channel(self) -> None:
        n = self.num_channels()
        self._updating = True  # setting max below the value clamps the channel: hold the redraw until both are set
        self.channel.max = max(n - GRID, 0) if self.view.value == "grid" else n - 1  # a grid page is full
        self.channel.disabled = self.view.value in ("mean", "grad-cam")
        self._updating = False

    def _on_change(self, change: dict) -> None:
        if self._updating:
            return
        try:
            if change["owner"] in (self.layer, self.view):
                self._update_channel()
            self._redraw()
        except InputError as error:  # e.g. the filters of a layer without a conv: say so instead of a traceback
            self.info.value = html.escape(str(error), quote=False)
            self.output.clear_output()

    def _picture(self) -> tuple[np.ndarray, str, str]:
        """The array drawn on the right, its panel title and the info line, for the current values."""
        sample, layer, view, channel = self.sample.value, self.layer.value, self.view.value, self.channel.value
        acts = self._activations(sample)
        c, h, w = acts[layer].shape
        if view == "filters":
            conv, weight = layer_conv(self.model, layer)
            n_out, n_in, k, _ = weight.shape
            title = f"{conv}: filter {channel} of {n_out}, its {n_in} kernels {k}x{k}"
            return filter_image(weight, channel), title, f"{layer}, {title}: {summary(weight[channel])}"
        if view == "grad-cam":
            cam = self._cam(sample, layer)
            title = f"Grad-CAM of {layer} for {self._target} (map {cam.shape[0]}x{cam.shape[1]})"
            return cam_image(cam, self.images[sample].shape[-2:]), title, f"{title}: {summary(cam)}"
        shown = view_image(acts, layer, view, channel)
        if view == "channel":
            return shown, f"channel {channel} of {c}", describe_activation(acts[layer], layer, channel, grid=False)
        if view == "grid":
            which = f"channels {channel}..{min(channel + GRID, c) - 1} of {c}"
            title, values = f"{which}, each scaled to its own range", acts[layer][channel : channel + GRID]
        else:
            which = title = f"mean of {c} channels"
            values = torch.from_numpy(shown)
        return shown, title, f"{layer}, shape (C, H, W) = ({c}, {h}, {w}), {which}: {summary(values)}"

    def _outlined(self) -> bool:
        return self.masks is not None and self.reference.value

    def _input_picture(self) -> torch.Tensor:
        image = to_uint8(torch.as_tensor(self.images[self.sample.value]))
        if self._outlined():
            image = outline(image, torch.as_tensor(self.masks[self.sample.value]), width=2)
        return image

    def _draw(self, picture: np.ndarray, title: str, image: torch.Tensor) -> Figure:
        cmap, label, symmetric = LOOKS[self.view.value]
        fig = new_figure((10, 4))
        left, right = fig.subplots(1, 2)
        left.imshow(to_display(image))
        image_axis(left, title="input, reference outlined" if self._outlined() else "input")
        limit = (float(np.nanmax(np.abs(picture))) or 1.0) if symmetric else None
        over_photo = self.view.value == "grad-cam"  # the heat over the photo, which shows through it
        if over_photo:
            right.imshow(to_display(torch.as_tensor(self.images[self.sample.value])))
        vmin, alpha = (-limit if limit else None), (0.6 if over_photo else None)
        im = right.imshow(picture, cmap=cmap, interpolation="nearest", alpha=alpha, vmin=vmin, vmax=limit)
        if label:
            fig.colorbar(im, ax=right, label=label, shrink=0.8)
        image_axis(right, title=title)
        fig.suptitle(f"sample {self.sample.value}, layer {self.layer.value}")
        return fig

    def figure(self) -> Figure:
        """The current view as a plain matplotlib Figure: ``display(explorer.figure())`` keeps a static copy."""
        return self._draw(*self._picture()[:2], self._input_picture())

    def _redraw(self) -> None:
        self.displayed, self._title, label = self._picture()
        self.info.value = html.escape(label, quote=False)
        self.displayed_input = self._input_picture()
        fig = self._draw(self.displayed, self._title, self.displayed_input)
        with self.output:
            clear_output(wait=True)  # keep the old picture until the new one is ready: no flicker
            display(fig)

    def state(self) -> dict:
        """What is on screen: the controls' values, the channel slider's range, shapes, titles and the info line."""
        act = self._activations(self.sample.value)[self.layer.value]
        view, channel = self.view.value, self.channel.value
        return {
            "sample": self.sample.value,
            "layer": self.layer.value,
            "view": view,
            "channel": channel,
            "channel_max": self.channel.max,
            "channel_enabled": not self.channel.disabled,
            "num_channels": self.num_channels(),
            "first_channel": channel if view == "grid" else None,
            "last_channel": min(channel + GRID, act.shape[0]) - 1 if view == "grid" else None,
            "grid": view == "grid",
            "conv": layer_conv(self.model, self.layer.value)[0] if view == "filters" else None,
            "reference": self._outlined(),
            "activation_shape": tuple(act.shape),
            "shape": tuple(self.displayed.shape),
            "title": self._title,
            "label": self.info.value,
        }
