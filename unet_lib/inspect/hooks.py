"""Capture what a layer outputs during ``forward``, with forward hooks that are always removed."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import nn

from unet_lib.errors import InputError


class Activations(dict):
    """``{layer name: output tensor}``, refilled on every forward; ``.inputs`` holds the layers' inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, torch.Tensor] = {}

    def _store_output(self, name: str, module: nn.Module, args: tuple, output: Any) -> None:
        self[name] = _detached(output)

    def _store_input(self, name: str, module: nn.Module, args: tuple) -> None:
        self.inputs[name] = _detached(args[0] if len(args) == 1 else args)


def layer_names(model: nn.Module, kind: str = "blocks") -> list[str]:
    """Names of the layers worth looking at, to pass to :func:`capture`, as ``model.named_modules()`` spells them.

    Args:
        model: A :class:`~unet_lib.model.UNet`, or any module.
        kind: ``"blocks"``: a U-Net's blocks in forward order (``downs.0 .. downs.3``, ``bottleneck``,
            ``upconvs.0``, ``ups.0``, ..., ``final_conv``), or another model's top-level layers; ``"all"``:
            every named submodule, containers and leaves, in the order they were created.
    """
    if kind == "all":
        return [name for name, _ in model.named_modules() if name]
    if kind != "blocks":
        raise InputError(f"kind: expected 'blocks' or 'all', got {kind!r}")
    if all(hasattr(model, part) for part in ("downs", "bottleneck", "upconvs", "ups", "final_conv")):
        names = [f"downs.{i}" for i in range(len(model.downs))] + ["bottleneck"]
        for i in range(len(model.ups)):
            names += [f"upconvs.{i}", f"ups.{i}"]  # the decoder alternates: upsample, then block
        return names + ["final_conv"]
    # Any other model: its top-level children, with lists of blocks opened one level.
    names = []
    for name, child in model.named_children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
            names += [f"{name}.{sub}" for sub, _ in child.named_children()]
        else:
            names.append(name)
    return names


def _detached(value: Any) -> Any:
    # clone(): a later in-place op (a ReLU(inplace=True) after a BatchNorm) would overwrite the layer's output.
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_detached(v) for v in value)
    return value


def find_layers(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    """``{name: module}`` for layer names of ``model``; an unknown name is an error that suggests close ones."""
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules:
            close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
            hint = close or layer_names(model)[:5]
            raise InputError(f"layer {name!r}: no such module in {type(model).__name__}; try one of {hint}")
    return {name: modules[name] for name in names}


@contextmanager
def capture(model: nn.Module, names: str | Sequence[str], capture_inputs: bool = False) -> Iterator[Activations]:
    """Record the outputs of the named layers on every forward pass inside the ``with`` block, in the
    :class:`Activations` dict it yields (empty until the first forward).

    One forward hook per layer stores a detached copy of its output, kept on the model's device
    and with its batch dimension (``[B, C, H, W]`` for a conv block); call ``.cpu()`` to plot it.
    Each forward replaces the previous values. A module called twice per forward (like ``pool``)
    keeps its last call. The hooks are removed when the block ends, also when ``forward`` raises.

    Args:
        names: One layer name or several, as listed by :func:`layer_names`.
        capture_inputs: Also record each layer's input in ``acts.inputs[name]``.

    Example:
        >>> with capture(model, ["downs.0", "bottleneck"]) as acts:
        ...     logits = model(images)
        >>> acts["bottleneck"].shape  # (B, 1024, H/16, W/16)
    """
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))  # drop repeats, keep order
    modules = find_layers(model, names)
    store = Activations()
    handles = []
    try:
        for name, module in modules.items():
            # partial binds the name, so each hook knows which layer it belongs to.
            handles.append(module.register_forward_hook(partial(store._store_output, name)))
            if capture_inputs:
                handles.append(module.register_forward_pre_hook(partial(store._store_input, name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()
