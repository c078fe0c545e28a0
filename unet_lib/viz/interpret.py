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
from unet_lib.viz.colors import outline, overlay
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
    kernels: Mapping[str, torch.Tensor],
    max_inputs: int = 9,
    title: str = "Filters",
    tile: float = 1.1,
    rows_per_scale: int = 1,
) -> Figure:
    """One row per filter: its 3x3 kernels on the first ``max_inputs`` input channels, on symmetric colour scales.

    Args:
        kernels: ``{row label: one filter [in, k, k]}``, e.g. the same filter at initialisation and
            after training.
        max_inputs: Input channels drawn per row.
        title: Figure title.
        tile: Width of a kernel's panel in inches.
        rows_per_scale: Consecutive rows that share one colour scale and one colour bar: 2 puts each
            before/after pair on the same scale, so their colours can be compared.
    """
    rows = {name: torch.as_tensor(k).detach().cpu().float() for name, k in kernels.items()}
    if not rows or any(k.ndim != 3 for k in rows.values()):
        raise InputError("kernels: expected filters of shape [in, k, k], one per row")
    if rows_per_scale < 1 or len(rows) % rows_per_scale:
        raise InputError(f"rows_per_scale: expected a divisor of the {len(rows)} rows, got {rows_per_scale}")
    cols = min(max_inputs, min(k.shape[0] for k in rows.values()))
    fig, axes = grid_figure(len(rows), cols, tile=(tile, tile + 0.25))
    names, filters = list(rows), list(rows.values())
    for first in range(0, len(rows), rows_per_scale):
        group = range(first, first + rows_per_scale)
        # Symmetric: white is 0, red positive, blue negative; one limit for the whole group.
        limit = max(float(filters[r][:cols].abs().max()) for r in group) or 1.0
        for r in group:
            for c in range(cols):
                im = axes[r, c].imshow(filters[r][c].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
                image_axis(axes[r, c], title=f"in {c}")
            axes[r, 0].set_ylabel(names[r], rotation=0, ha="right", va="center")  # horizontal: long labels fit
        label = "weight" if rows_per_scale == 1 else f"weight, shared by these {rows_per_scale} rows"
        fig.colorbar(im, ax=list(axes[list(group)].flat), shrink=0.8, label=label)
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
    tile: float = 2.8,
) -> Figure:
    """The photo, then each map upsampled to the photo and drawn half-transparent over it, with a colour bar.

    Args:
        image: The photo ``[3, H, W]`` in [0, 1].
        maps: ``{panel title: [h, w]}`` at any resolution (Grad-CAM maps at their layer's size).
        region: Optional bool ``[H, W]`` painted on the first panel (e.g. the pixels a score was taken over).
        title: Figure title.
        cmap: Colour map of the heat.
        tile: Width of a panel in inches.
    """
    image = torch.as_tensor(image).detach().cpu()
    size = image.shape[-2:]
    fig, axes = grid_figure(1, 1 + len(maps), tile=(tile, tile * size[0] / size[1] + 0.6))
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


def _field_box(position: tuple[int, int], side: int, size: tuple[int, int]) -> Rectangle:
    """The dashed square of a theoretical receptive field, clipped to the picture when it is larger."""
    h, w = size
    half = side / 2
    top, left = position[0] - half, position[1] - half
    bottom, right = top + side, left + side
    clipped = top < -0.5 or left < -0.5 or bottom > h - 0.5 or right > w - 0.5
    top, left = max(top, -0.5), max(left, -0.5)
    bottom, right = min(bottom, h - 0.5), min(right, w - 0.5)
    label = f"theoretical field, {side} px" + (", larger than the picture: drawn at its edges" if clipped else "")
    box = Rectangle((left, top), right - left, bottom - top, fill=False, linewidth=2)
    # Not clipped by the axes: a square on the picture's edge keeps its whole line.
    box.set(edgecolor="cyan", linestyle="--", label=label, clip_on=False)
    return box


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
        theoretical: Side of the theoretical receptive field in pixels, drawn as a dashed square
            (clipped to the picture's edges when it is larger, as the legend then says).
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
            ax.add_patch(_field_box(position, theoretical, (h, w)))
        ax.set(xlim=(-0.5, w - 0.5), ylim=(h - 0.5, -0.5))
        image_axis(ax, title=name)
    # Under the panels, where it hides no pixel of the field.
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=8)
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


def show_outlined_predictions(
    images: torch.Tensor,
    preds: torch.Tensor,
    masks: torch.Tensor,
    names: Sequence[str],
    title: str = "Predictions",
    tile: float = 2.2,
) -> Figure:
    """One column per photo, named: the prediction painted red over the photo, the reference outlined in yellow.

    Args:
        images: The photos ``[N, 3, H, W]`` in [0, 1].
        preds: Predicted masks ``[N, H, W]`` of 0/1.
        masks: Reference masks ``[N, H, W]`` of 0/1.
        names: One column title per photo, e.g. its id and its Dice.
        title: Figure title.
        tile: Width of a panel in inches.
    """
    images = torch.as_tensor(images).detach().cpu()
    if not len(images) == len(preds) == len(masks) == len(names):
        raise InputError(f"images, preds, masks and names: expected one of each per photo, got {len(images)} images")
    h, w = images.shape[-2:]
    fig, axes = grid_figure(1, len(images), tile=(tile, tile * h / w + 0.6))
    for ax, image, pred, mask, name in zip(axes[0], images, preds, masks, names, strict=True):
        painted = overlay(image, torch.as_tensor(pred).cpu().long(), "binary")
        ax.imshow(to_display(outline(painted, torch.as_tensor(mask).cpu(), color="yellow")))
        image_axis(ax, title=name)
    fig.suptitle(title)
    return fig
