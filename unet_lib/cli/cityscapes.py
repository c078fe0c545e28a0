"""Cityscapes result files: full-resolution labelId PNGs that the official evaluator and the test server read,
and the official script's two score tables. The scores themselves are ``data.cityscapes.OfficialScores``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from unet_lib.cli.pictures import Inference, predict_full_res
from unet_lib.data.cityscapes import CityscapesDataset, OfficialScores
from unet_lib.errors import InputError
from unet_lib.viz.colors import colorize


def predict_label_ids(
    model: nn.Module, image_paths: Sequence[str | Path], how: Inference
) -> Iterator[tuple[int, torch.Tensor]]:
    """Predict labelIds at each image's own size (a 19-class model's trainIds mapped back to labelIds).

    Yields:
        ``(index into image_paths, labelIds uint8 [H, W] on the model's device)``.
    """
    for index, logits in predict_full_res(model, image_paths, how):
        yield index, OfficialScores().label_ids(logits).to(torch.uint8)


def result_paths(out_dir: str | Path, image_id: str) -> tuple[Path, Path]:
    """Where ``write_cityscapes_predictions`` puts an image's labelIds PNG and its colour PNG.

    The official evaluator searches its results folder recursively for exactly one file named
    ``<city>_<seq>_<frame>*.png`` per image, so the colour file's name starts with ``color_``.
    """
    out_dir = Path(out_dir)
    return out_dir / f"{image_id}_leftImg8bit.png", out_dir / "color" / f"color_{image_id}.png"


def write_cityscapes_predictions(
    model: nn.Module, dataset: CityscapesDataset, out_dir: str | Path, how: Inference, overwrite: bool = False
) -> list[Path]:
    """Write full-resolution labelId PNGs that the official evaluator and test server read, plus colour PNGs.

    Point ``CITYSCAPES_RESULTS`` at ``out_dir`` and run ``csEvalPixelLevelSemanticLabeling``;
    zip the labelId files for the test server.

    Args:
        model: A 19-class (trainIds) or 34-class (labelIds) U-Net.
        dataset: The split to predict (``ids`` name the files).
        out_dir: Folder for ``<id>_leftImg8bit.png`` (labelIds) and ``color/color_<id>.png``.
        how: Size, TTA and batches (:class:`~unet_lib.cli.pictures.Inference`).
        overwrite: Replace existing files.

    Returns:
        The labelId PNGs written.
    """
    paths = [result_paths(out_dir, image_id) for image_id in dataset.ids]
    existing = [p for pair in paths for p in pair if p.exists()]
    if existing and not overwrite:
        raise InputError(
            f"{existing[0]}: already exists ({len(existing)} files would be replaced); "
            "pass --overwrite (overwrite=True) or choose another --out"
        )
    (Path(out_dir) / "color").mkdir(parents=True, exist_ok=True)
    for index, label_ids in predict_label_ids(model, dataset.images, how):
        label_path, color_path = paths[index]
        label_ids = label_ids.cpu()  # (H, W) uint8
        Image.fromarray(label_ids.numpy()).save(label_path)
        Image.fromarray(colorize(label_ids, "labelid").permute(1, 2, 0).numpy()).save(color_path)
    return [label_path for label_path, _ in paths]


def print_scores(scores: dict[str, Any]) -> None:
    """The two tables the official script prints: class IoU and category IoU, each with its mean."""
    for title, key in (("classes", "iou"), ("categories", "category_iou")):
        print(f"{title:<16} IoU\n{'-' * 22}")
        for name, value in scores[key].items():
            print(f"{name:<16} {value:.3f}")
        mean = scores["miou" if key == "iou" else "category_miou"]
        print(f"{'-' * 22}\n{'Score Average':<16} {mean:.3f}\n")
    print(f"{'pixel accuracy':<16} {scores['pixel_accuracy']:.3f}")


__all__ = ["predict_label_ids", "print_scores", "result_paths", "write_cityscapes_predictions"]
