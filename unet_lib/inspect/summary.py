"""A layer-by-layer table of a network: what each block receives, what it returns, and its parameters.

One forward pass on a blank image with forward hooks records every call, so the rows follow ``forward``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from unet_lib.errors import InputError
from unet_lib.evaluation import eval_mode
from unet_lib.inspect.hooks import layer_names

COLUMNS = ("layer", "type", "input (C x H x W)", "output (C x H x W)", "parameters")


def _shape(value: Any) -> tuple[int, ...]:
    """Shape of one image's tensor, without the batch dimension: (C, H, W) for a feature map."""
    if isinstance(value, (tuple, list)):
        value = value[0]
    return tuple(value.shape[1:])


def _default_names(model: nn.Module) -> list[str]:
    names = layer_names(model)
    if isinstance(getattr(model, "pool", None), nn.Module) and "pool" not in names:
        names.append("pool")  # the U-Net's shared max-pool: one row per call, after each down block
    return names


def _record(rows: list[dict[str, Any]], seen: set[str], name: str, module: nn.Module, args: tuple, output: Any) -> None:
    params = 0 if name in seen else sum(p.numel() for p in module.parameters())
    seen.add(name)  # a module called several times (the pool) counts its parameters once
    rows.append(
        {
            "name": name,
            "type": type(module).__name__,
            "input_shape": _shape(args),
            "output_shape": _shape(output),
            "params": params,
        }
    )


def _input_shape(model: nn.Module, input_size: Sequence[int]) -> tuple[int, int, int]:
    size = tuple(input_size)
    if len(size) == 2:
        channels = getattr(model, "arch", {}).get("in_channels")
        if channels is None:
            first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
            channels = first.in_channels if first is not None else 3
        size = (channels, *size)
    if len(size) != 3 or not all(isinstance(s, int) and s > 0 for s in size):
        raise InputError(f"input_size: expected (H, W) or (C, H, W) of positive integers, got {tuple(input_size)}")
    return size


def model_summary(
    model: nn.Module, input_size: Sequence[int], names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Run one image through ``model`` and describe every call of the named layers, in forward order.

    The model runs in eval mode (BatchNorm statistics are left alone) and goes back to its former
    mode afterwards; the hooks are removed even if ``forward`` fails.

    Args:
        model: A :class:`~unet_lib.model.UNet`, or any module taking ``[B, C, H, W]``.
        input_size: ``(H, W)`` (channels from the model) or ``(C, H, W)`` of one input image.
        names: Layers to list; by default the U-Net's blocks (``downs.i``, ``bottleneck``,
            ``upconvs.i``, ``ups.i``, ``final_conv``) and its ``pool``.

    Returns:
        One dict per call: ``name``, ``type`` (class name), ``input_shape`` and ``output_shape``
        (tuples without the batch dimension, e.g. ``(64, 160, 240)``) and ``params`` (parameters of
        the layer, counted at its first call only, so the column sums to the listed layers' total).
    """
    shape = _input_shape(model, input_size)
    named = dict(model.named_modules())
    wanted = list(names) if names is not None else _default_names(model)
    unknown = [name for name in wanted if name not in named]
    if unknown:
        raise InputError(f"names: no layer {unknown[0]!r} in {type(model).__name__}; try {layer_names(model)[:6]}")
    modules = {name: named[name] for name in wanted}
    first = next(model.parameters(), None)
    image = torch.zeros(1, *shape, device=first.device if first is not None else "cpu")  # (1, C, H, W)
    if first is not None and first.is_floating_point():
        image = image.to(first.dtype)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    handles = [module.register_forward_hook(partial(_record, rows, seen, name)) for name, module in modules.items()]
    try:
        with eval_mode(model), torch.inference_mode():
            model(image)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"input_size: the model cannot take an input of shape {shape} ({reason})") from None
    finally:
        for handle in handles:
            handle.remove()
    return rows


def _format_shape(shape: tuple[int, ...]) -> str:
    return " x ".join(str(s) for s in shape)


def format_summary(rows: Sequence[dict[str, Any]], total: int | None = None) -> str:
    """The rows of :func:`model_summary` as an aligned text table, with a total line.

    Args:
        rows: Output of :func:`model_summary`.
        total: The model's parameter count for the last line; by default the sum of the rows.

    Returns:
        A multi-line string; print it.
    """
    table = [
        (row["name"], row["type"], _format_shape(row["input_shape"]), _format_shape(row["output_shape"]))
        + (f"{row['params']:,}",)
        for row in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(COLUMNS, *table, strict=True)]
    right = (False, False, True, True, True)  # numbers line up on the right

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True))

    total = sum(row["params"] for row in rows) if total is None else total
    rule = "-" * len(line(COLUMNS))
    return "\n".join([line(COLUMNS), rule, *(line(cells) for cells in table), rule, f"total parameters: {total:,}"])
