"""Pictures of what is inside the network: activation maps and grids, conv filters, and the
original project's layer figure (prediction, down block 1, bottleneck, up block 1, reference).

Every ``show_*``/``plot_*`` function returns a Figure that pyplot has let go of.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torchvision.utils import make_grid

from unet_lib.errors import InputError
from unet_lib.viz.common import grid_figure, image_axis, new_figure, show_mask, to_display


def _single(act: torch.Tensor, name: str = "act") -> torch.Tensor:
    act = torch.as_tensor(act).detach().cpu().float()
    if act.ndim == 4 and act.shape[0] == 1:
        act = act[0]  # drop a batch of one
    if act.ndim != 3:
        raise InputError(f"{name}: expected one activation [C, H, W] (or [1, C, H, W]), got {tuple(act.shape)}")
    return act


def activation_grid(
    act: torch.Tensor, max_channels: int = 16, ncols: int | None = None, padding: int = 1
) -> np.ndarray:
    """Tile the first channels of one activation into a grey picture, each channel scaled to [0, 1].

    Args:
        act: ``[C, H, W]`` (or ``[1, C, H, W]``).
        max_channels: How many channels to tile, from channel 0.
        ncols: Tiles per row; default about a square.
        padding: Pixels of border between tiles (a single tile comes back without border).

    Returns:
        Float ``[rows * (H + padding) + padding, ncols * (W + padding) + padding]``: tiles in [0, 1]
        (a constant channel becomes all zeros); borders and empty slots are NaN, which imshow leaves blank.
    """
    tiles = _single(act)[:max_channels].unsqueeze(1)  # (n, 1, H, W)
    ncols = ncols or math.ceil(math.sqrt(len(tiles)))
    grid = make_grid(tiles, nrow=ncols, padding=padding, normalize=True, scale_each=True, pad_value=math.nan)
    # (3, H', W'): make_grid repeats a single channel three times
    return grid[0].numpy()


def activation_image(act: torch.Tensor, channel: int | None = None, max_channels: int = 16) -> np.ndarray:
    """What :func:`plot_activation` draws: channel ``channel`` as is, or the grid when ``channel`` is None."""
    act = _single(act)
    if channel is None:
        return activation_grid(act, max_channels)
    if not 0 <= channel < act.shape[0]:
        raise InputError(f"channel: expected 0..{act.shape[0] - 1}, got {channel}")
    return act[channel].numpy()


def plot_activation(
    act: torch.Tensor,
    channel: int | None = None,
    max_channels: int = 16,
    title: str | None = None,
    image: torch.Tensor | None = None,
    cmap: str = "viridis",
) -> Figure:
    """One channel of an activation with a colour bar, or a grid of its channels when ``channel`` is None.

    Args:
        act: ``[C, H, W]`` (or ``[1, C, H, W]``).
        channel: Channel to show, or None for the grid of the first ``max_channels``.
        max_channels: Channels in the grid.
        title: Title of the activation panel; a description of what is shown by default.
        image: Optional picture ``[3, H, W]`` (the input, maybe with a mask drawn on) shown on the left.
        cmap: Matplotlib colour map.
    """
    c = _single(act).shape[0]
    picture = activation_image(act, channel, max_channels)
    fig = new_figure((9, 3.8) if image is not None else (5, 4))
    axes = fig.subplots(1, 2 if image is not None else 1, squeeze=False)[0]
    if image is not None:
        axes[0].imshow(to_display(image))
        image_axis(axes[0], title="input")
    ax = axes[-1]
    im = ax.imshow(picture, cmap=cmap, interpolation="nearest")
    if channel is None:
        default = f"channels 0..{min(c, max_channels) - 1} of {c}, each scaled to its own range"
    else:
        default = f"channel {channel} of {c}"
        fig.colorbar(im, ax=ax, label="activation")
    image_axis(ax, title=title or default)
    return fig


def show_filters(
    weight: torch.Tensor | nn.Conv2d, max_filters: int = 16, max_inputs: int = 8, title: str | None = None
) -> Figure:
    """Convolution filters ``[out, in, k, k]``: RGB tiles for a first layer (in == 3), else grey, one row per filter."""
    w = (weight.weight if isinstance(weight, nn.Module) else torch.as_tensor(weight)).detach().cpu().float()
    if w.ndim != 4:
        raise InputError(f"weight: expected a conv weight [out, in, k, k], got {tuple(w.shape)}")
    n_out, n_in, k, _ = w.shape
    fig = new_figure((6, 6))
    ax = fig.subplots()
    if n_in == 3:
        tiles = w[:max_filters]  # (n, 3, k, k): each filter is a tiny RGB picture
        grid = make_grid(
            tiles, nrow=math.ceil(math.sqrt(len(tiles))), padding=1, normalize=True, scale_each=True, pad_value=1
        )
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        image_axis(ax)
        default = f"{len(tiles)} of {n_out} filters as RGB, each scaled to its own range"
    else:
        tiles = w[:max_filters, :max_inputs]  # (n, m, k, k)
        rows, cols = tiles.shape[:2]
        grid = make_grid(tiles.reshape(-1, 1, k, k), nrow=cols, padding=1, normalize=True, pad_value=1)
        ax.imshow(grid[0].numpy(), cmap="gray", interpolation="nearest")
        centres = [1 + i * (k + 1) + (k - 1) / 2 for i in range(max(rows, cols))]  # tile centres, in pixels
        ax.set_xticks(centres[:cols], range(cols))
        ax.set_yticks(centres[:rows], range(rows))
        ax.set(xlabel="input channel", ylabel="output filter")
        default = f"{rows} of {n_out} filters x {cols} of {n_in} input channels (one grey scale)"
    ax.set_title(title or default)
    return fig


def show_layer_figure(
    image: torch.Tensor,
    pred: torch.Tensor,
    activations: Mapping[str, torch.Tensor],
    reference: torch.Tensor | None = None,
    channel: int | None = None,
    title: str = "Inside the U-Net",
) -> Figure:
    """The original project's figure: input, prediction, a few layer outputs, reference mask.

    Args:
        image: Input ``[3, H, W]``.
        pred: Predicted mask ``[1, H, W]`` or ``[H, W]`` (probabilities or binary).
        activations: ``{layer name: [C, H, W] or [1, C, H, W]}`` in display order, e.g. the outputs of
            ``downs.0``, ``bottleneck`` and ``ups.0`` from :func:`unet_lib.inspect.hooks.capture`.
        reference: True mask, or None to leave it out.
        channel: Show this channel of every activation; None shows the mean over channels.
        title: Figure title.
    """
    panels = 2 + len(activations) + (reference is not None)
    fig, axes = grid_figure(1, panels)
    axes = list(axes[0])
    axes[0].imshow(to_display(image))
    image_axis(axes[0], title="input")
    show_mask(axes[1], pred)
    image_axis(axes[1], title="prediction")
    for ax, (name, act) in zip(axes[2 : 2 + len(activations)], activations.items(), strict=True):
        act = _single(act, f"activations[{name!r}]")
        shown = act.mean(0).numpy() if channel is None else activation_image(act, channel)
        what = f"mean of {act.shape[0]} channels" if channel is None else f"channel {channel} of {act.shape[0]}"
        ax.imshow(shown, cmap="viridis")
        image_axis(ax, title=f"{name}\n{what}")
    if reference is not None:
        show_mask(axes[-1], reference)
        image_axis(axes[-1], title="reference")
    fig.suptitle(title)
    return fig
