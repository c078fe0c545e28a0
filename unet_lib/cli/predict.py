"""The predict command, and loading a checkpoint for the commands that run a trained model.

Like ``unet_lib.cli.commands``, each command takes the parsed ``argparse.Namespace`` and returns the exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

from unet_lib.checkpoint import model_from_checkpoint
from unet_lib.cli.original import checkpoint_config
from unet_lib.cli.pictures import Inference, check_threshold, collect_inputs, predict_file, save_mask_png
from unet_lib.config import TrainConfig
from unet_lib.data import DATASETS, configure, detect_dataset, num_outputs
from unet_lib.data.cityscapes import NUM_LABEL_IDS, label_to_train_lut
from unet_lib.data.pairs import Layout
from unet_lib.errors import InputError
from unet_lib.evaluation import Tiled
from unet_lib.losses import make_loss
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.runtime import Precision, pick_device, show_progress

__all__ = ["announce", "config_for", "load_for_inference", "predict"]


LAYOUT_FIELDS = {  # option -> the TrainConfig field it sets
    "images": "images_dir",
    "masks": "masks_dir",
    "val_images": "val_images_dir",
    "val_masks": "val_masks_dir",
    "ignore_index": "ignore_index",
}


def layout_fields(args: argparse.Namespace) -> dict:
    """The config fields that ``--images``, ``--masks``, ``--val-images``, ``--val-masks`` and ``--ignore-index``
    give (those on the command line only)."""
    return {
        field: getattr(args, name) for name, field in LAYOUT_FIELDS.items() if getattr(args, name, None) is not None
    }


def config_for(state: dict, args: argparse.Namespace) -> TrainConfig:
    """The checkpoint's config, checked against ``--data`` and with ``--data``, ``--size`` and ``--tile`` applied: a
    tile (or the crop a checkpoint was trained on, unless ``--size`` is given) is kept as the config's ``crop``."""
    config = checkpoint_config(state, args.checkpoint)
    tile, depth = getattr(args, "tile", None), len(state["arch"]["features"])
    if tile is not None and args.size is not None:
        raise InputError("--size and --tile: give one; --size resizes each picture, --tile predicts it in tiles")
    if tile is not None and (tile[0] % 2**depth or tile[1] % 2**depth):
        h, w = (max(2**depth, round(n / 2**depth) * 2**depth) for n in tile)
        raise InputError(
            f"--tile {tile[0]}x{tile[1]}: not divisible by {2**depth} (the model halves it {depth} times);"
            f" try --tile {h}x{w}"
        )
    data = getattr(args, "data", None)
    layout = layout_fields(args)  # a folder tree laid out otherwise than the one trained on
    stored = Layout.of(dataclasses.replace(config, **layout))
    if data is not None and Path(data).is_dir() and (kind := detect_dataset(data, stored)) != config.dataset:
        raise InputError(
            f"{args.checkpoint}: a {state['arch']['num_classes']}-class {config.dataset} model, but {data} holds {kind} data"
        )
    crop = tile or (config.crop if args.size is None else None)  # --size on a crop-trained model: resize, no tiles
    data_dir = str(data) if data else config.data_dir
    size = args.size or config.image_size
    return dataclasses.replace(config, data_dir=data_dir, image_size=size, crop=crop, **layout)


def load_for_inference(args: argparse.Namespace) -> tuple[torch.nn.Module, dict, TrainConfig, Precision]:
    """The model on its device in the precision ``--amp`` and ``--channels-last`` choose (wrapped to predict in
    tiles of the config's ``crop``, if any), the checkpoint dict, its config and the precision, after checking
    the shared options."""
    if args.workers < 0:
        raise InputError(f"--workers: expected 0 or more DataLoader processes, got {args.workers}")
    device = pick_device(args.device)
    model, state = model_from_checkpoint(args.checkpoint, map_location=device)
    config = config_for(state, args)
    precision = Precision.choose(device, args.amp is not False, args.channels_last)
    model = precision.prepare(model.to(device))
    return Tiled(model, config.crop) if config.crop else model, state, config, precision


@dataclasses.dataclass
class ScoredSplit:
    """What ``evaluate`` and ``analyze`` score: the model as ``--amp`` chooses, a split with masks, the loss."""

    model: torch.nn.Module
    config: TrainConfig
    precision: Precision
    dataset: Dataset
    loss_fn: torch.nn.Module | None  # None: the model's outputs are not the config's classes (an original .h5)
    batch_size: int


def scored_split(args: argparse.Namespace) -> ScoredSplit:
    """The checkpoint and the ``--split`` of ``--data`` it is scored on, checked: the split has masks, and a
    folder's classes are the model's."""
    model, _, config, precision = load_for_inference(args)
    device = next(model.parameters()).device
    kind = DATASETS[config.dataset]
    dataset = kind.from_config(config, args.split)
    config = configure(config, dataset)  # a folder's classes: checked against the model's
    if len(dataset) and not isinstance(dataset[0], tuple):
        raise InputError(f"--split {args.split}: these {kind.title} images have no masks to score against; use predict")
    batch_size = 1 if config.crop else args.batch_size  # in tiles, at each picture's own size: one at a time
    same_outputs = num_outputs(config) == model.arch["num_classes"]  # not the original's 34 labelIds
    loss_fn = make_loss(config.loss, num_outputs(config), config.loss_weights).to(device) if same_outputs else None
    return ScoredSplit(model, config, precision, dataset, loss_fn, batch_size)


def announce(precision: Precision) -> None:
    """The precision's line, once the checks passed and the work begins: on stderr, so ``--json`` stays JSON."""
    print(precision, file=sys.stderr, flush=True)


def inference(args: argparse.Namespace, config: TrainConfig, precision: Precision) -> Inference:
    """The ``--tta``, ``--batch-size`` and ``--workers`` options, at the config's size (in tiles: at each
    picture's own size, one picture at a time), in ``precision``."""
    batch_size = args.batch_size if config.resize_to else 1
    return Inference(config.resize_to, args.tta, batch_size, args.workers, precision=precision)  # --quiet: env


def predict(args: argparse.Namespace) -> int:
    check_threshold(args.threshold)
    if args.data is not None:
        if args.inputs:
            raise InputError(f"{args.inputs[0]}: give either image files (INPUTS) or --data, not both")
        return predict_split(args)
    if not args.inputs:
        raise InputError("predict: expected image files or folders (INPUTS), or --data DIR for a whole split")
    if args.submission is not None or args.format == "cityscapes":
        raise InputError("--submission and --format cityscapes: predict a whole split, so pass --data DIR (not INPUTS)")
    if args.out is None:
        raise InputError("--out: expected a folder for the masks and overlays")
    model, state, config, precision = load_for_inference(args)
    return write_masks(args, model, config, collect_inputs(args.inputs), precision)


def write_masks(
    args: argparse.Namespace,
    model: torch.nn.Module,
    config: TrainConfig,
    files: list[Path],
    precision: Precision,
) -> int:
    """``<name>_mask.png`` and ``<name>_overlay.jpg`` for each picture, at the picture's own size."""
    from PIL import Image
    from tqdm.auto import tqdm

    from unet_lib.viz import overlay

    if args.out is None:
        raise InputError("--out: expected a folder for the masks and overlays")
    outputs = {f: (args.out / f"{f.stem}_mask.png", args.out / f"{f.stem}_overlay.jpg") for f in files}
    if not args.overwrite:
        existing = [p for pair in outputs.values() for p in pair if p.exists()]
        if existing:
            raise InputError(
                f"{existing[0]}: already exists ({len(existing)} output files would be replaced); pass --overwrite or choose another --out"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    announce(precision)
    background = DATASETS[config.dataset].background
    for path in tqdm(files, desc="predict", disable=len(files) < 2 or not show_progress()):
        image, labels = predict_file(model, path, config.resize_to, args.threshold, args.tta, precision.dtype)
        mask_path, overlay_path = outputs[path]
        if model.arch["num_classes"] == 1:
            save_mask_png(labels, mask_path)
            painted = overlay(image, labels, "binary")
        else:
            if model.arch["num_classes"] == NUM_LABEL_IDS:
                labels = label_to_train_lut()[labels].long()  # the original 34-class model predicts labelIds
            save_mask_png(labels, mask_path, scale=1)  # class indices, as the masks store them
            if background is not None:
                labels = labels.masked_fill(labels == background, IGNORE_INDEX)  # the background: unpainted
            painted = overlay(image, labels, "trainid")
        Image.fromarray(painted.permute(1, 2, 0).numpy()).save(overlay_path, quality=90)
    print(f"wrote {len(files)} masks and overlays to {args.out}")
    return 0


def predict_split(args: argparse.Namespace) -> int:
    """``predict --data``: what the dataset writes for a split: a Kaggle CSV, the official result PNGs, or masks."""
    model, _, config, precision = load_for_inference(args)
    kind = DATASETS[config.dataset]
    files = kind.split_predictions
    if args.submission is not None and files != "kaggle-csv":
        hint = "--format cityscapes --out DIR" if files == "labelid-pngs" else "--out DIR"
        raise InputError(f"--submission: {args.checkpoint} is a {kind.title} model; use {hint}")
    if args.format == "cityscapes" and files != "labelid-pngs":
        hint = "--submission CSV" if files == "kaggle-csv" else "--out DIR"
        raise InputError(f"--format cityscapes: {args.checkpoint} is a {kind.title} model; use {hint}")
    if files == "masks":
        dataset = kind.from_config(config, "val" if args.split == "test" else args.split)
        configure(config, dataset)  # the data's classes must be the model's
        return write_masks(args, model, config, [dataset.image_path(i) for i in range(len(dataset))], precision)
    dataset = kind.from_config(config, args.split)
    if files == "kaggle-csv":
        from unet_lib.cli.carvana import write_submission

        if args.submission is None:
            raise InputError("--submission: expected the CSV file to write the Kaggle predictions of --data into")
        paths = [dataset.image_path(i) for i in range(len(dataset))]
        write_submission(
            model, paths, args.submission, inference(args, config, precision), args.threshold, args.overwrite
        )
        print(f"wrote {len(paths)} rows (img,rle_mask) to {args.submission}")
        return 0
    from unet_lib.cli.cityscapes import write_cityscapes_predictions

    if args.format == "png":
        raise InputError("--format png: only for INPUTS; a Cityscapes --data split is written as --format cityscapes")
    if args.out is None:
        raise InputError("--out: expected a folder for the Cityscapes labelId PNGs")
    write_cityscapes_predictions(model, dataset, args.out, inference(args, config, precision), args.overwrite)
    print(
        f"wrote {len(dataset)} labelId PNGs to {args.out} (colour PNGs in {args.out / 'color'}); "
        f"the official tools read them: CITYSCAPES_RESULTS={args.out} csEvalPixelLevelSemanticLabeling"
    )
    return 0
