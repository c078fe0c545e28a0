"""Figures of why a U-Net works: the whole U of activations, filters before and after training,
predictions without skip connections, Grad-CAM maps and receptive fields drawn over the photo.

Every ``show_*`` function returns a Figure that pyplot has let go of.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from unet_lib.errors import InputError
from unet_lib.viz.colors import overlay
from unet_lib.viz.common import grid_figure, image_axis, to_display


def _activation(act: torch.Tensor, name: str) -> torch.Tensor:
    act = torch.as_tensor(act).detach().cpu().float()
    if act.ndim != 3:
        raise InputError(f"activations[{name!r}]: expected one activation [C, H, W], got {tuple(act.shape)}")
    return act


def show_activation_rows(
    activations: Mapping[str, torch.Tensor],
    channels: Sequence[int] = (0, 1),
    mean: bool = True,
    title: str = "Layer outputs",
    tile: float = 2.0,
) -> Figure:
    """One row per layer: the mean over its channels and a few single channels, each with its colour bar.

    Every map is drawn at the layer's own resolution, so the encoder's coarsening and the decoder's
    re-sharpening show as the size of the pixels.

    Args:
        activations: ``{layer name: [C, H, W]}`` in display order (e.g. downs.0 ... ups.3).
        channels: Channels to draw after the mean.
        mean: Draw the channel mean first.
        title: Figure title.
        tile: Width of a panel in inches.
    """
    if not activations:
        raise InputError("activations: expected at least one layer")
    acts = {name: _activation(act, name) for name, act in activations.items()}
    h, w = next(iter(acts.values())).shape[-2:]
    columns = (["mean"] if mean else []) + [f"channel {c}" for c in channels]
    fig, axes = grid_figure(len(acts), len(columns), tile=(tile, tile * h / w + 0.45))
    for row, (name, act) in enumerate(acts.items()):
        maps = ([act.mean(0)] if mean else []) + [act[min(c, act.shape[0] - 1)] for c in channels]
        for col, (label, picture) in enumerate(zip(columns, maps, strict=True)):
            ax = axes[row, col]
            im = ax.imshow(picture.numpy(), cmap="viridis", interpolation="nearest")
            fig.colorbar(im, ax=ax, shrink=0.8)
            what = f"mean of {act.shape[0]}" if label == "mean" else f"{label} of {act.shape[0]}"
            image_axis(ax, title=f"{what}\n{act.shape[1]}x{act.shape[2]}", ylabel=name if col == 0 else None)
    fig.suptitle(title)
    return fig


def show_kernels(
    kernels: Mapping[str, torch.Tensor], max_inputs: int = 9, title: str = "Filters", tile: float = 1.1
) -> Figure:
    """One row per filter: its 3x3 kernels on the first ``max_inputs`` input channels, one colour scale per row.

    Args:
        kernels: ``{row label: one filter [in, k, k]}``, e.g. the same filter at initialisation and
            after training.
        max_inputs: Input channels drawn per row.
        title: Figure title.
        tile: Width of a kernel's panel in inches.
    """
    rows = {name: torch.as_tensor(k).detach().cpu().float() for name, k in kernels.items()}
    if not rows or any(k.ndim != 3 for k in rows.values()):
        raise InputError("kernels: expected filters of shape [in, k, k], one per row")
    cols = min(max_inputs, min(k.shape[0] for k in rows.values()))
    fig, axes = grid_figure(len(rows), cols, tile=(tile, tile + 0.25))
    for r, (name, kernel) in enumerate(rows.items()):
        limit = float(kernel[:cols].abs().max()) or 1.0  # symmetric: white is 0, red positive, blue negative
        for c in range(cols):
            im = axes[r, c].imshow(kernel[c].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            image_axis(axes[r, c], title=f"in {c}")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center")  # horizontal: long labels fit
        fig.colorbar(im, ax=list(axes[r]), shrink=0.8, label="weight")
    fig.suptitle(title)
    return fig


def _upsampled(heat: torch.Tensor, size: Sequence[int]) -> np.ndarray:
    heat = torch.as_tensor(heat).detach().cpu().float()
    return F.interpolate(heat[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()


def show_heatmaps(
    image: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    region: torch.Tensor | None = None,
    title: str = "Grad-CAM",
    cmap: str = "inferno",
) -> Figure:
    """The photo, then each map upsampled to the photo and drawn half-transparent over it, with a colour bar.

    Args:
        image: The photo ``[3, H, W]`` in [0, 1].
        maps: ``{panel title: [h, w]}`` at any resolution (Grad-CAM maps at their layer's size).
        region: Optional bool ``[H, W]`` painted on the first panel (e.g. the pixels a score was taken over).
        title: Figure title.
        cmap: Colour map of the heat.
    """
    image = torch.as_tensor(image).detach().cpu()
    size = image.shape[-2:]
    fig, axes = grid_figure(1, 1 + len(maps), tile=(2.8, 2.8 * size[0] / size[1] + 0.6))
    first = image if region is None else overlay(image, region.long(), "binary") / 255
    axes[0, 0].imshow(to_display(first))
    image_axis(axes[0, 0], title="photo" + ("" if region is None else ", region in red"))
    for ax, (name, heat) in zip(axes[0, 1:], maps.items(), strict=True):
        ax.imshow(to_display(image))
        im = ax.imshow(_upsampled(heat, size), cmap=cmap, alpha=0.6)
        fig.colorbar(im, ax=ax, shrink=0.8)
        image_axis(ax, title=f"{name}\n(map {heat.shape[-2]}x{heat.shape[-1]})")
    fig.suptitle(title)
    return fig


def show_receptive_fields(
    image: torch.Tensor,
    fields: Mapping[str, torch.Tensor],
    position: tuple[int, int],
    theoretical: int | None = None,
    title: str = "Effective receptive field",
) -> Figure:
    """Effective receptive fields over the photo: where the output pixel at ``position`` looks.

    Args:
        image: The photo ``[3, H, W]`` in [0, 1] (the fields must have its size).
        fields: ``{panel title: [H, W]}`` absolute input gradients (``interpret.effective_receptive_field``).
        position: ``(row, column)`` of the output pixel, marked with a cross.
        theoretical: Side of the theoretical receptive field in pixels, drawn as a square.
        title: Figure title.
    """
    image = torch.as_tensor(image).detach().cpu()
    h, w = image.shape[-2:]
    fig, axes = grid_figure(1, len(fields), tile=(3.6, 3.6 * h / w + 0.6))
    for ax, (name, field) in zip(axes[0], fields.items(), strict=True):
        field = torch.as_tensor(field).detach().cpu().float()
        if field.shape != (h, w):
            raise InputError(f"fields[{name!r}]: expected the photo's size {h}x{w}, got {tuple(field.shape)}")
        ax.imshow(to_display(image))
        im = ax.imshow((field / field.max().clamp(min=1e-12)).numpy(), cmap="inferno", alpha=0.7, vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, shrink=0.8, label="|gradient|, share of the peak")
        ax.plot([position[1]], [position[0]], marker="+", color="cyan", markersize=12, mew=2, label="output pixel")
        if theoretical is not None:
            half = theoretical / 2
            box = Rectangle((position[1] - half, position[0] - half), theoretical, theoretical, fill=False)
            box.set(edgecolor="cyan", linestyle="--", label=f"theoretical field, {theoretical} px")
            ax.add_patch(box)
        ax.set(xlim=(-0.5, w - 0.5), ylim=(h - 0.5, -0.5))
        image_axis(ax, title=name)
    axes[0, 0].legend(loc="lower left", fontsize=7)
    fig.suptitle(title)
    return fig


def show_mask_panels(
    image: torch.Tensor, masks: Mapping[str, torch.Tensor], title: str = "Predictions", tile: float = 3.2
) -> Figure:
    """The photo with each binary mask painted over it in red, one panel per mask.

    Args:
        image: The photo ``[3, H, W]`` in [0, 1].
        masks: ``{panel title: [H, W] of 0/1}``, e.g. predictions with and without a skip connection.
        title: Figure title.
        tile: Width of a panel in inches.
    """
    image = torch.as_tensor(image).detach().cpu()
    h, w = image.shape[-2:]
    fig, axes = grid_figure(1, len(masks), tile=(tile, tile * h / w + 0.6))
    for ax, (name, mask) in zip(axes[0], masks.items(), strict=True):
        ax.imshow(to_display(overlay(image, torch.as_tensor(mask).cpu().long(), "binary")))
        image_axis(ax, title=name)
    fig.suptitle(title)
    return fig
