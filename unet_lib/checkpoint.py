"""Saving and loading checkpoints: a plain dict of tensors and Python values (model, optimizer, epoch, config,
metrics, ...), written atomically, loaded with ``weights_only=True``, and the run's JSON files beside them."""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import torch

from unet_lib.errors import InputError
from unet_lib.model import UNet


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_args: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it to ``path`` once the block ends without error:
    a crash or an interruption leaves the old file intact and no half-written one behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (a dict of tensors and plain values) to ``path`` with :func:`atomic_write`."""
    with atomic_write(path) as f:
        torch.save(state, f)
    return Path(path)


def _json_safe(value: Any) -> Any:
    """NaN and infinities (an undefined score) become None: strict JSON has no NaN. Tensors become lists."""
    if isinstance(value, torch.Tensor):
        return _json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def to_json(value: Any, indent: int | None = 1) -> str:
    """Strict JSON (``jq`` and every parser read it): undefined scores are ``null``, never ``NaN``."""
    return json.dumps(_json_safe(value), indent=indent, allow_nan=False)


def write_json(value: Any, path: str | Path) -> None:
    """Write ``value`` as strict JSON, atomically."""
    with atomic_write(path, "w") as f:
        f.write(to_json(value))


def _first_line(err: Exception) -> str:
    """An error's first line, at most 160 characters, to quote in a one-line message."""
    lines = str(err).strip().splitlines()
    return lines[0][:160] if lines else ""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: a file crafted to run code on load is refused, not run.
    Every bad file is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = _first_line(err) or "unsafe content"
        raise InputError(
            f"{path}: refused to load: the file holds objects other than tensors and plain values ({first})"
        ) from None
    except Exception as err:  # a damaged zip or pickle stream surfaces as many exception types
        raise InputError(
            f"{path}: not a readable checkpoint, truncated or corrupt ({_first_line(err) or type(err).__name__})"
        ) from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a checkpoint: expected a dict, found {type(state).__name__}")
    return state


def infer_arch(state_dict: dict[str, torch.Tensor], path: str | Path = "checkpoint") -> dict[str, Any]:
    """Read a U-Net's constructor arguments off its weights' shapes."""
    try:
        depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("downs."))
        features = [state_dict[f"downs.{i}.conv.0.weight"].shape[0] for i in range(depth)]
        in_channels = state_dict["downs.0.conv.0.weight"].shape[1]
        num_classes = state_dict["final_conv.weight"].shape[0]
    except (KeyError, ValueError, IndexError):
        raise InputError(
            f"{path}: not a U-Net state_dict: expected keys downs.N.conv.0.weight and final_conv.weight"
        ) from None
    residual = "downs.0.shortcut.0.weight" in state_dict or "downs.0.conv.3.bias" not in state_dict
    block = "residual" if residual else "double"
    upsample = "transpose" if "upconvs.0.weight" in state_dict else "bilinear"
    return dict(in_channels=in_channels, num_classes=num_classes, features=features, block=block, upsample=upsample)


def load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: str | Path = "checkpoint") -> None:
    """Load ``state_dict`` into ``model``, explaining any mismatch in one line."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or wrong:
        arch = getattr(model, "arch", {})
        found = infer_arch(state_dict, path) if "final_conv.weight" in state_dict else {}
        differs = [f"{k}={found[k]} in the file vs {arch[k]} here" for k in arch if k in found and found[k] != arch[k]]
        detail = "; ".join(differs) or (
            f"{len(missing)} missing keys (e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]}), "
            f"{len(wrong)} of another shape (e.g. {wrong[:1]})"
        )
        raise InputError(f"{path}: checkpoint does not fit this model: {detail}")
    model.load_state_dict(state_dict)


def model_from_checkpoint(
    path: str | Path, num_classes: int | None = None, map_location: str | torch.device = "cpu"
) -> tuple[UNet, dict[str, Any]]:
    """Build the U-Net a checkpoint describes and load its weights.

    Args:
        path: A checkpoint of this project, or an original project ``.h5`` file (a bare state_dict).
        num_classes: The class count the caller expects, if any; another one is an error.

    Returns:
        ``(model in eval mode, the checkpoint dict)``, with ``arch`` always filled in.
    """
    path = Path(path)
    state = load_checkpoint(path, map_location)
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        state = {"model": state}  # a bare state_dict
    if not isinstance(state.get("model"), dict):
        raise InputError(f"{path}: not a U-Net checkpoint: no 'model' weights inside (keys: {sorted(state)[:6]})")
    state_dict = state["model"]
    arch = state.get("arch") or infer_arch(state_dict, path)
    if num_classes is not None and arch["num_classes"] != num_classes:
        raise InputError(
            f"{path}: checkpoint predicts {arch['num_classes']} classes, expected {num_classes} for this data"
        )
    model = UNet(**arch)
    load_weights(model, state_dict, path)
    return model.eval(), {**state, "arch": arch}


def new_run_dir(base: str | Path, prefix: str = "run") -> Path:
    """A fresh folder ``base/<prefix>-NNN`` that does not exist yet, so nothing is ever overwritten."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name.rsplit("-", 1)[1]) for p in base.glob(f"{prefix}-*") if p.name.rsplit("-", 1)[1].isdigit()]
    number = max(taken, default=0) + 1
    while True:
        path = base / f"{prefix}-{number:03d}"
        with suppress(FileExistsError):  # another run may have taken it since the glob
            path.mkdir()
            return path
        number += 1
