"""Why a U-Net segments well: Grad-CAM, skip-connection ablation and receptive fields.

Hooks doing real work: a forward hook reads a layer, a forward pre-hook changes a block's input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from unet_lib.errors import InputError
from unet_lib.inspect.hooks import find_layers


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the model in eval mode, then give every submodule back the mode it had."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()  # BatchNorm uses its running statistics, so the images in a batch do not mix
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _input_leaf(images: torch.Tensor) -> torch.Tensor:
    """A fresh copy of ``images`` that requires grad, so autograd records the whole forward pass."""
    if images.ndim != 4:
        raise InputError(f"images: expected a batch [B, C, H, W], got shape {tuple(images.shape)}")
    if torch.is_inference_mode_enabled():
        raise InputError("gradients are off under torch.inference_mode(); call this outside that block")
    # clone(): a tensor made under inference_mode (by predict, say) cannot join a graph, its copy can.
    return images.detach().clone().requires_grad_(True)


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    target: int = 0,
    region: torch.Tensor | None = None,
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017): where the layer's channels raise the class score.

    The score of each image is the sum of the logits of class ``target`` over ``region`` (all pixels
    when ``region`` is None). A forward hook keeps the layer's output ``A`` (B, C, h, w); then
    ``torch.autograd.grad`` differentiates the score with respect to that kept tensor, which gives
    ``dscore/dA`` without ``.backward()``, so the parameters' ``.grad`` stay as they were. Each
    channel's weight is the spatial mean of its gradient, and the map is ``ReLU(sum_c w_c A_c)``
    at the layer's own resolution, not normalised.

    The model runs in eval mode (every submodule gets its mode back afterwards) with gradients
    switched on, so this works inside ``torch.no_grad()``; under ``torch.inference_mode()`` no
    gradient can exist and it raises :class:`InputError`.

    Args:
        model: The network, e.g. a :class:`~unet_lib.model.UNet`.
        images: Input batch [B, C, H, W].
        layer: A name from ``model.named_modules()`` such as ``"downs.1"``, ``"bottleneck"``, ``"ups.1"``.
        target: The class whose logits make the score (0 for a binary model).
        region: Optional bool mask [B, H, W]: only these pixels count in the score.

    Returns:
        The maps [B, h, w], where (h, w) is the layer's output size.
    """
    module = find_layers(model, [layer])[layer]
    x = _input_leaf(images)
    if region is not None and tuple(region.shape) != (x.shape[0], *x.shape[-2:]):
        raise InputError(f"region: expected a mask of shape {(x.shape[0], *x.shape[-2:])}, got {tuple(region.shape)}")
    kept: list[torch.Tensor] = []

    def keep_output(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        kept.append(output)
        # The rest of the network gets a copy: an in-place op downstream (ReLU(inplace=True))
        # then changes the copy, while the kept tensor stays the layer's output in the graph.
        return output.clone() if isinstance(output, torch.Tensor) else None

    # A hook reads any named layer during the normal forward: no second, re-typed forward needed.
    handle = module.register_forward_hook(keep_output)
    try:
        with _eval_mode(model), torch.enable_grad():
            logits = model(x)  # (B, num_classes, H, W)
            if len(kept) != 1 or not isinstance(kept[0], torch.Tensor) or kept[0].ndim != 4:
                seen = [tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__ for out in kept]
                raise InputError(
                    f"layer {layer!r}: Grad-CAM needs a layer that runs once per forward and returns a "
                    f"[B, C, h, w] tensor (a block such as 'downs.1'); its outputs in this forward: {seen}"
                )
            if not 0 <= target < logits.shape[1]:
                raise InputError(f"target: expected a class in 0..{logits.shape[1] - 1}, got {target}")
            mask = torch.ones_like(logits[:, target]) if region is None else region.to(logits)  # (B, H, W)
            scores = (logits[:, target] * mask).sum(dim=(1, 2))  # (B,)
            # In eval mode image b's score depends only on image b, so one gradient of the sum
            # holds every image's own gradient.
            (grads,) = torch.autograd.grad(scores.sum(), kept[0])  # (B, C, h, w)
    finally:
        handle.remove()
    acts = kept[0].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    return F.relu((weights * acts).sum(dim=1))  # (B, h, w)


@contextmanager
def without_skips(model: nn.Module, levels: Iterable[int]) -> Iterator[None]:
    """Inside the ``with`` block, the decoder receives zeros instead of the skip at ``levels``.

    Level 0 is the output of ``downs.0`` (full resolution), level ``depth - 1`` the coarsest.
    The skip of level ``l`` feeds ``ups[depth - 1 - l]``, whose input is ``cat([skip, x])``; a
    forward pre-hook on that block replaces the first ``features[l]`` channels by zeros. The
    hooks are removed when the block ends, also when it raises.

    Args:
        model: A :class:`~unet_lib.model.UNet`.
        levels: Which skip connections to cut, each in ``0 .. depth - 1``.

    Example:
        >>> with without_skips(model, [0]):
        ...     logits = model(images)  # the decoder never sees downs.0's fine map
    """
    depth = len(model.downs)
    features = model.arch["features"]  # the skip of level l has features[l] channels
    levels = list(dict.fromkeys(levels))  # drop repeats, keep order
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < depth:
            raise InputError(f"levels: expected skip levels in 0..{depth - 1}, got {level!r}")

    def zero_skip(channels: int, module: nn.Module, args: tuple) -> tuple:
        x = args[0]  # (B, 2f, h, w): the skip's f channels first, then the upsampled map's
        skip, rest = x[:, :channels], x[:, channels:]
        return (torch.cat([torch.zeros_like(skip), rest], dim=1), *args[1:])  # (B, 2f, h, w)

    handles = []
    try:
        for level in levels:
            block = model.ups[depth - 1 - level]
            # partial binds the width, so each hook knows how many channels its skip has.
            handles.append(block.register_forward_pre_hook(partial(zero_skip, features[level])))
        yield
    finally:
        for handle in handles:
            handle.remove()


def effective_receptive_field(
    model: nn.Module, images: torch.Tensor, position: tuple[int, int] | None = None
) -> torch.Tensor:
    """Effective receptive field (Luo et al., 2016): how strongly each input pixel moves one output logit.

    The gradient of the class-0 logit at ``position`` with respect to the input, taken with
    ``torch.autograd.grad`` (parameters' ``.grad`` untouched), in absolute value, summed over the
    input channels and averaged over the batch. The model runs in eval mode with gradients on
    (fine inside ``torch.no_grad()``, not inside ``torch.inference_mode()``); modes are restored.

    Args:
        model: The network.
        images: Input batch [B, C, H, W].
        position: ``(row, column)`` of the output pixel; the centre ``(H // 2, W // 2)`` if None.

    Returns:
        The map [H, W]; zero outside the theoretical receptive field around ``position`` (the
        last ``ups`` entry of :func:`receptive_fields`).
    """
    x = _input_leaf(images)
    height, width = x.shape[-2:]
    row, col = position if position is not None else (height // 2, width // 2)
    if not (0 <= row < height and 0 <= col < width):
        raise InputError(f"position: expected (row, column) inside {height}x{width}, got {position}")
    with _eval_mode(model), torch.enable_grad():
        logits = model(x)  # (B, num_classes, H, W)
        (grads,) = torch.autograd.grad(logits[:, 0, row, col].sum(), x)  # (B, C, H, W)
    return grads.abs().sum(dim=1).mean(dim=0)  # (H, W)


def erf_size(erf: torch.Tensor, position: tuple[int, int] | None = None, share: float = 0.9) -> int:
    """Summarise an effective receptive field as one size in pixels.

    Args:
        erf: A map [H, W] of non-negative weights, as :func:`effective_receptive_field` returns.
        position: Centre of the square, ``(row, column)``; the map's centre ``(H // 2, W // 2)`` if None.
        share: Part of the total weight the square must hold, in (0, 1].

    Returns:
        The side (odd, in pixels) of the smallest square centred on ``position`` that holds
        ``share`` of the map's total; pixels of the square outside the map count as empty.
        0 for a map that is zero everywhere.
    """
    if erf.ndim != 2:
        raise InputError(f"erf: expected a map [H, W], got shape {tuple(erf.shape)}")
    if not 0 < share <= 1:
        raise InputError(f"share: expected a number in (0, 1], got {share}")
    height, width = erf.shape
    row, col = position if position is not None else (height // 2, width // 2)
    weights = erf.detach().double().abs().cpu()
    total = weights.sum()
    if total == 0:
        return 0
    rows = (torch.arange(height) - row).abs()[:, None]  # (H, 1)
    cols = (torch.arange(width) - col).abs()[None, :]  # (1, W)
    # A square of half-side k holds the pixels at chessboard distance <= k from the centre.
    distance = torch.maximum(rows, cols)  # (H, W)
    held = torch.bincount(distance.flatten(), weights=weights.flatten()).cumsum(0)  # (max distance + 1,)
    half = int(torch.searchsorted(held, share * total * (1 - 1e-9)))  # the tiny slack absorbs rounding
    return 2 * min(half, len(held) - 1) + 1


def _geometry(layer: nn.Module) -> tuple[int, int, int]:
    """(kernel, stride, dilation) of a conv, pooling or upsampling layer, along the rows (kernels are square)."""

    def first(value: int | float | tuple) -> int:
        return int(value[0] if isinstance(value, tuple) else value)

    if isinstance(layer, nn.Upsample):
        scale = first(layer.scale_factor)
        # Nearest copies one input per output; bilinear blends the two nearest, a kernel twice the scale.
        return (scale if layer.mode == "nearest" else 2 * scale), scale, 1
    return first(layer.kernel_size), first(layer.stride), first(layer.dilation)


def _seen_pixels(blocks: list[nn.Module]) -> int:
    """Input pixels that one position of the last block's output can see, walking back to the input."""
    positions = 1
    for block in reversed(blocks):
        for name, layer in reversed(list(block.named_modules())):
            if name.split(".")[0] == "shortcut":
                continue  # a residual block's 1x1 branch runs beside the 3x3 convs: the longer path sets the field
            if isinstance(layer, (nn.ConvTranspose2d, nn.Upsample)):
                kernel, stride, _ = _geometry(layer)
                # n outputs read at most (n + k - 2) // s + 1 inputs; fewer when the window falls
                # evenly on the coarser grid: the field is the worst case over output positions.
                positions = (positions + kernel - 2) // stride + 1
            elif isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                kernel, stride, dilation = _geometry(layer)
                positions = (positions - 1) * stride + (kernel - 1) * dilation + 1
    return positions


def receptive_fields(model: nn.Module) -> dict[str, int]:
    """Theoretical receptive field of each U-Net block, in input pixels.

    That is the side of the square of input pixels that one output position of the block can see.
    On the way down this is the standard recurrence over the layers in forward order
    (``downs.0``, ``pool``, ``downs.1``, ..., ``pool``, ``bottleneck``): ``r += (k - 1) * d * j;
    j *= s``, with ``j`` the distance in input pixels between neighbouring positions. The code
    walks the same layers backwards from one position of the block to the input, which gives the
    same numbers and also handles the decoder's upsampling: there the field depends a little on
    where a position falls on the coarser grid, and the largest is reported. A decoder block's
    field is that of its longest path, the one through the bottleneck; ``final_conv`` is 1x1, so
    the last ``ups`` block's field is the whole network's. For the default ``UNet()``: downs.0 5,
    downs.1 14, downs.2 32, downs.3 68, bottleneck 140, then ups.0 to ups.3 172, 188, 204, 204.

    Args:
        model: A :class:`~unet_lib.model.UNet` (double or residual blocks, either upsampling).

    Returns:
        ``{block name: field side in pixels}`` for the down blocks, the bottleneck and the up blocks, in forward order.
    """
    blocks: list[tuple[str, nn.Module]] = []  # every block in forward order, pooling and upsampling included
    for i, down in enumerate(model.downs):
        blocks += [(f"downs.{i}", down), ("pool", model.pool)]
    blocks.append(("bottleneck", model.bottleneck))
    for j, (upconv, up) in enumerate(zip(model.upconvs, model.ups, strict=True)):
        blocks += [(f"upconvs.{j}", upconv), (f"ups.{j}", up)]
    return {
        name: _seen_pixels([block for _, block in blocks[: i + 1]])
        for i, (name, _) in enumerate(blocks)
        if name.split(".")[0] in ("downs", "bottleneck", "ups")
    }
