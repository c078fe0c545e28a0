"""ONNX export: onnxruntime matches PyTorch for any batch and picture size; the README's snippet runs it."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from PIL import Image

from unet_lib.checkpoint import save_checkpoint
from unet_lib.cli import main
from unet_lib.cli.export import export_onnx, onnx_differences
from unet_lib.config import TrainConfig
from unet_lib.errors import InputError
from unet_lib.model import UNet

README = Path(__file__).resolve().parent.parent / "README.md"
SHAPES = [(batch, 3, h, w) for batch in (1, 3) for h, w in ((64, 96), (50, 70), (37, 83))]  # 50x70, 37x83: not /16


@pytest.mark.parametrize("block, upsample", [("double", "transpose"), ("residual", "bilinear")])
def test_onnxruntime_matches_pytorch_for_every_batch_and_size(tmp_path, block, upsample):
    torch.manual_seed(0)
    model = UNet(3, 2, features=(4, 8, 16, 32), block=block, upsample=upsample).eval()
    path = export_onnx(model, tmp_path / "model.onnx", image_size=(64, 96))
    graph = onnx.load(path)
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    differences = onnx_differences(path, model, SHAPES)
    print(
        f"{block}/{upsample} max |onnx - torch|:", {"x".join(map(str, s)): f"{d:.1e}" for s, d in differences.items()}
    )
    assert max(differences.values()) < 1e-4
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"images": np.zeros((3, 3, 50, 70), dtype=np.float32)})
    assert logits.shape == (3, 2, 50, 70)  # the picture's own size, even where it is not divisible by 16


@pytest.fixture
def checkpoint(tmp_path):
    """A small binary folder model's checkpoint, as train writes it."""
    torch.manual_seed(0)
    model = UNet(3, 1, features=(4, 8, 16, 32))
    config = TrainConfig(dataset="folder", class_names=("sky", "kite"), image_size=(48, 64), features=(4, 8, 16, 32))
    state = {
        "model": model.state_dict(),
        "arch": model.arch,
        "config": config.to_dict(),
        "class_names": ["sky", "kite"],
    }
    return save_checkpoint(state, tmp_path / "best.pt")


def test_export_command_writes_metadata_and_refuses_to_overwrite(checkpoint, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime vs PyTorch, largest logit difference:" in printed and "at 2x3x55x69" in printed
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert (
        meta["image_size"] == "48x64" and json.loads(meta["classes"]) == ["sky", "kite"] and meta["threshold"] == "0.5"
    )
    written = out.read_bytes()
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    assert (
        capsys.readouterr().err
        == f"error: {out}: already exists; pass --overwrite (overwrite=True) or choose another --out\n"
    )
    assert out.read_bytes() == written
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--overwrite"]) == 0
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "model.pt")]) == 2
    assert "expected a file name ending in .onnx" in capsys.readouterr().err


def test_a_missing_onnx_package_is_one_clear_line(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(
        InputError, match=r"model.onnx: writing ONNX needs the onnx package; pip install 'unet_lib\[export\]'"
    ):
        export_onnx(UNet(features=(4, 8)), tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_the_readme_snippet_runs_the_exported_model(checkpoint, tmp_path, monkeypatch):
    section = README.read_text().split("## Run the exported model without this project", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--checkpoint", str(checkpoint), "--out", "model.onnx"]) == 0
    photo = np.random.default_rng(0).integers(0, 256, (75, 101, 3), dtype=np.uint8)
    Image.fromarray(photo).save("photo.jpg", quality=95)
    exec(compile(snippet, "README.md", "exec"), {})
    mask = np.asarray(Image.open("mask.png"))
    # The same steps in PyTorch: resize to the training size, logits, threshold, nearest resize back.
    model = UNet(3, 1, features=(4, 8, 16, 32))
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    resized = Image.open("photo.jpg").convert("RGB").resize((64, 48), Image.BILINEAR)
    images = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        labels = (model.eval()(images)[0, 0].sigmoid() > 0.5).numpy().astype(np.uint8) * 255
    expected = np.asarray(Image.fromarray(labels).resize((101, 75), Image.NEAREST))
    assert mask.shape == (75, 101) and np.array_equal(mask, expected)
