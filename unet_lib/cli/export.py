"""Export a trained U-Net to ONNX, to run it without PyTorch or this project (onnxruntime, numpy and PIL suffice).

The graph takes ``images``, float32 [N, 3, H, W] RGB in [0, 1], of any batch size, height and width, and
returns ``logits`` [N, C, H, W]: a pixel is foreground where sigmoid(logit) > threshold for one channel,
else its class is the argmax over C. Its metadata holds the training size, the class names and the threshold.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from unet_lib.checkpoint import atomic_write, model_from_checkpoint
from unet_lib.cli.original import checkpoint_config
from unet_lib.config import TrainConfig
from unet_lib.data import class_names
from unet_lib.errors import InputError

OPSET = 17  # onnxruntime 1.16 and later run it
DYNAMIC_AXES = {name: {0: "batch", 2: "height", 3: "width"} for name in ("images", "logits")}
INSTALL_HINT = "pip install 'unet_lib[export]' (or: pip install onnx onnxruntime)"


def export_onnx(
    model: nn.Module,
    out: str | Path,
    image_size: tuple[int, int] = (64, 96),
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as an ONNX file with a dynamic batch size, height and width.

    The TorchScript exporter traces the model once; ``model.pad_to`` pads in the traced graph for every
    size, so sizes not divisible by ``2 ** len(features)`` give the same logits as PyTorch.

    Args:
        model: A U-Net (it is copied to the CPU; the original is left where it is).
        out: The ``.onnx`` file to write (atomically).
        image_size: ``(H, W)`` of the example traced; any size works afterwards.
        metadata: Strings stored in the file (``onnx`` model properties).
        overwrite: Replace an existing ``out``.

    Returns:
        The path written.
    """
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise InputError(f"{out}: expected a file name ending in .onnx")
    if out.exists() and not overwrite:
        raise InputError(f"{out}: already exists; pass --overwrite (overwrite=True) or choose another --out")
    try:
        import onnx
    except ImportError:
        raise InputError(f"{out}: writing ONNX needs the onnx package; {INSTALL_HINT}") from None
    model = copy.deepcopy(model).cpu().eval()
    example = torch.rand(1, 3, *image_size, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter announces its successor (torch.export); it is the one that traces every size here.
        for category in (FutureWarning, DeprecationWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category)
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes=DYNAMIC_AXES,
        )
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(graph, metadata or {})
    onnx.checker.check_model(graph)
    with atomic_write(out) as f:
        f.write(graph.SerializeToString())
    return out


def export_checkpoint(
    checkpoint: str | Path, out: str | Path, overwrite: bool = False
) -> tuple[Path, nn.Module, TrainConfig]:
    """Export a checkpoint (this project's ``.pt`` or an original ``.h5``), with its classes and size as metadata.

    Returns:
        ``(the .onnx path, the PyTorch model it was made from, its config)``.
    """
    model, state = model_from_checkpoint(checkpoint)
    config = checkpoint_config(state, checkpoint)
    names = list(state.get("class_names") or class_names(config))
    if len(names) != max(2, state["arch"]["num_classes"]):
        names = []  # e.g. the original project's 34 labelIds: no names stored
    height, width = config.image_size
    metadata = {
        "image_size": f"{height}x{width}",  # HxW the model was trained at: resize pictures to it
        "classes": json.dumps(names),
        "threshold": str(config.threshold),
        "input": "images: float32 [N, 3, H, W], RGB in [0, 1]",
        "output": "logits: [N, C, H, W]; C == 1: sigmoid(logits) > threshold, else argmax over C",
    }
    if config.crop:  # trained on crops: pictures are predicted at their own size, in tiles of the crop's
        metadata["tile"] = "x".join(map(str, config.crop))
    return export_onnx(model, out, config.image_size, metadata, overwrite), model, config


def onnx_differences(
    path: str | Path, model: nn.Module, shapes: Sequence[tuple[int, int, int, int]]
) -> dict[tuple[int, ...], float]:
    """Largest absolute difference between onnxruntime's and PyTorch's logits for random pictures of each shape.

    Raises:
        InputError: onnxruntime is not installed.
    """
    try:
        import onnxruntime
    except ImportError:
        raise InputError(f"{path}: checking the ONNX file needs onnxruntime; {INSTALL_HINT}") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = copy.deepcopy(model).cpu().eval()
    generator = torch.Generator().manual_seed(0)
    differences = {}
    for shape in shapes:
        images = torch.rand(*shape, generator=generator)
        with torch.inference_mode():
            expected = model(images).numpy()
        (logits,) = session.run(["logits"], {"images": images.numpy()})
        differences[tuple(shape)] = float(abs(logits - expected).max())
    return differences
