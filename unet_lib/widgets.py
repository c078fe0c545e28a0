"""An ipywidgets explorer of a U-Net's layer outputs: pick a sample, a layer and a channel.

The widgets only wire values together; what is shown comes from pure functions tested on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import torch
from IPython.display import clear_output, display
from torch import nn

from unet_lib.activations import capture, layer_names
from unet_lib.errors import InputError
from unet_lib.viz import activation_image, overlay, plot_activation


def select_activation(acts: Mapping[str, torch.Tensor], layer: str, channel: int, grid: bool) -> np.ndarray:
    """The picture for one layer: its channel ``channel``, or the grid of its first channels when ``grid``.

    Args:
        acts: ``{layer name: [C, H, W]}`` for one sample.
        layer: Key into ``acts``.
        channel: Channel index, clamped to ``0 .. C - 1``.
        grid: Show the channel grid instead of one channel.
    """
    act = acts[layer]
    return activation_image(act, None if grid else min(max(channel, 0), act.shape[0] - 1))


def describe_activation(act: torch.Tensor, layer: str, channel: int, grid: bool) -> str:
    """One line about what is shown: layer, shape (C, H, W), channel, and min/max/mean of the shown values."""
    c, h, w = act.shape
    shown, which = (act, "all channels") if grid else (act[channel], f"channel {channel}")
    return (
        f"{layer}, shape (C, H, W) = ({c}, {h}, {w}), {which}: "
        f"min {shown.min().item():.3g}, max {shown.max().item():.3g}, mean {shown.mean().item():.3g}"
    )


def run_with_activations(model: nn.Module, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """One forward pass in eval mode on ``image [3, H, W]``; returns ``{layer: [C, H, W]}`` on the CPU.

    The model goes back to training mode afterwards if it was in it.
    """
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.inference_mode(), capture(model, layers) as acts:
            model(image.unsqueeze(0).to(device))  # (1, 3, H, W)
    finally:
        model.train(was_training)
    return {name: act[0].cpu() for name, act in acts.items()}  # drop the batch of one


class LayerExplorer:
    """Widgets to browse the activations of ``model`` on a few images.

    Args:
        model: The network (a :class:`~unet_lib.model.UNet`).
        images: ``[N, 3, H, W]`` or a list of ``[3, H, W]`` in [0, 1].
        masks: Optional reference masks ``[N, H, W]``, drawn over the input picture.
        layers: Layer names to offer; default ``layer_names(model)``.

    Show ``explorer.widget`` in a notebook; ``explorer.state()`` reports what is on screen and
    ``explorer.displayed`` holds the picture drawn on the right (a 2-D array).
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
        self.layers = list(layers) if layers is not None else layer_names(model)
        if not self.layers:
            raise InputError("layers: expected at least one layer name, e.g. layer_names(model)")
        self._cache: dict[int, dict[str, torch.Tensor]] = {}  # sample index -> {layer: [C, H, W]}
        self.displayed = np.zeros((0, 0))
        self._updating = False

        channels = self._activations(0)[self.layers[0]].shape[0]
        self.sample = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="sample")
        self.layer = widgets.Dropdown(options=self.layers, value=self.layers[0], description="layer")
        self.channel = widgets.IntSlider(value=0, min=0, max=channels - 1, description="channel")
        self.grid = widgets.ToggleButton(value=False, description="grid view", icon="th")
        self.info = widgets.Label()
        self.output = widgets.Output()
        for control in (self.sample, self.layer, self.channel, self.grid):
            control.observe(self._on_change, names="value")
        controls = widgets.HBox([self.sample, self.layer, self.channel, self.grid])
        self.widget = widgets.VBox([controls, self.info, self.output])
        self._redraw()

    def _activations(self, sample: int) -> dict[str, torch.Tensor]:
        if sample not in self._cache:  # one forward pass per sample, the first time it is picked
            self._cache[sample] = run_with_activations(self.model, torch.as_tensor(self.images[sample]), self.layers)
        return self._cache[sample]

    def _on_change(self, change: dict) -> None:
        if self._updating:
            return
        if change["owner"] is self.layer:
            # Setting max below the value clamps the channel; hold the redraw until both are set.
            self._updating = True
            try:
                self.channel.max = self._activations(self.sample.value)[self.layer.value].shape[0] - 1
            finally:
                self._updating = False
        self.channel.disabled = self.grid.value
        self._redraw()

    def _redraw(self) -> None:
        sample, layer, channel, grid = self.sample.value, self.layer.value, self.channel.value, self.grid.value
        acts = self._activations(sample)
        self.displayed = select_activation(acts, layer, channel, grid)
        self.info.value = describe_activation(acts[layer], layer, channel, grid)
        image = torch.as_tensor(self.images[sample])
        if self.masks is not None:
            image = overlay(image, self.masks[sample])
        fig = plot_activation(acts[layer], None if grid else channel, image=image)
        fig.suptitle(f"sample {sample}, layer {layer}")
        with self.output:
            clear_output(wait=True)  # keep the old picture until the new one is ready: no flicker
            display(fig)

    def state(self) -> dict:
        """What is on screen: sample, layer, channel, grid flag, displayed array shape, label text."""
        act = self._activations(self.sample.value)[self.layer.value]
        return {
            "sample": self.sample.value,
            "layer": self.layer.value,
            "channel": self.channel.value,
            "channel_max": self.channel.max,
            "grid": self.grid.value,
            "activation_shape": tuple(act.shape),
            "shape": tuple(self.displayed.shape),
            "label": self.info.value,
        }
