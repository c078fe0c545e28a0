"""The predict command, and loading a checkpoint for the commands that run a trained model.

Like ``unet_lib.commands``, each command takes the parsed ``argparse.Namespace`` and returns the exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from unet_lib.carvana_eval import write_submission
from unet_lib.checkpoint import checkpoint_config, model_from_checkpoint
from unet_lib.cityscapes_eval import write_cityscapes_predictions
from unet_lib.config import TrainConfig
from unet_lib.data import CarvanaDataset, CityscapesDataset, FolderDataset
from unet_lib.data.check import detect_dataset
from unet_lib.data.cityscapes import NUM_LABEL_IDS, label_to_train_lut
from unet_lib.data.folder import FolderClasses, folder_classes
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX, check_threshold
from unet_lib.runtime import pick_device

__all__ = ["config_for", "folder_split", "load_for_inference", "predict"]


def config_for(state: dict, args: argparse.Namespace) -> TrainConfig:
    """The checkpoint's config, checked against ``--data`` and with ``--data``/``--size`` applied."""
    config = checkpoint_config(state, args.checkpoint)
    data = getattr(args, "data", None)
    kind = detect_dataset(data) if data else None
    if kind is not None and kind != config.dataset:
        raise InputError(
            f"{args.checkpoint}: a {state['arch']['num_classes']}-class {config.dataset} model, but {data} holds {kind} data"
        )
    return dataclasses.replace(
        config, data_dir=str(data) if data else config.data_dir, image_size=args.size or config.image_size
    )


def load_for_inference(args: argparse.Namespace) -> tuple[torch.nn.Module, dict, TrainConfig, torch.device]:
    """The model on its device, the checkpoint dict and its config, after checking the shared options."""
    if args.workers < 0:
        raise InputError(f"--workers: expected 0 or more DataLoader processes, got {args.workers}")
    device = pick_device(args.device)
    model, state = model_from_checkpoint(args.checkpoint, map_location=device)
    return model.to(device), state, config_for(state, args), device


def folder_split(config: TrainConfig, split: str, with_masks: bool = True, progress: bool = True) -> FolderDataset:
    """A split of the folder data in ``config.data_dir`` at the network's size, checked against the model's classes.

    Args:
        config: The checkpoint's config (``config_for``).
        split: ``"train"`` or ``"val"``.
        with_masks: Read the masks' classes (to score); without, only the pictures are listed.
        progress: Show a progress bar while the masks are read.
    """
    names = config.class_names
    classes = folder_classes(config.data_dir, progress) if with_masks else FolderClasses(names)
    if len(classes.names) != len(names):
        raise InputError(
            f"{config.data_dir}: holds {len(classes.names)} classes ({', '.join(classes.names)}), but the model "
            f"predicts {len(names)} ({', '.join(names)})"
        )
    return FolderDataset(
        config.data_dir, split, size=config.image_size, val_fraction=config.val_fraction, classes=classes
    )


def predict(args: argparse.Namespace) -> int:
    check_threshold(args.threshold)
    if args.data is not None:
        if args.inputs:
            raise InputError(f"{args.inputs[0]}: give either image files (INPUTS) or --data, not both")
        return _predict_split(args)
    if not args.inputs:
        raise InputError("predict: expected image files or folders (INPUTS), or --data DIR for a whole split")
    if args.submission is not None or args.format == "cityscapes":
        raise InputError("--submission and --format cityscapes: predict a whole split, so pass --data DIR (not INPUTS)")
    if args.out is None:
        raise InputError("--out: expected a folder for the masks and overlays")

    from unet_lib.predict import collect_inputs

    model, state, config, device = load_for_inference(args)
    return _write_masks(args, model, state, config, device, collect_inputs(args.inputs))


def _write_masks(args, model, state, config: TrainConfig, device: torch.device, files: list[Path]) -> int:
    """``<name>_mask.png`` and ``<name>_overlay.jpg`` for each picture, at the picture's own size."""
    from PIL import Image
    from tqdm.auto import tqdm

    from unet_lib.predict import predict_file, save_mask_png
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
    for path in tqdm(files, desc="predict", disable=args.quiet or len(files) < 2):
        image, labels = predict_file(model, path, config.image_size, device, args.threshold, args.tta)
        mask_path, overlay_path = outputs[path]
        if config.num_classes == 1:
            save_mask_png(labels, mask_path)
            painted = overlay(image, labels, "binary")
        else:
            if config.dataset == "cityscapes" and state["arch"]["num_classes"] == NUM_LABEL_IDS:
                labels = label_to_train_lut()[labels].long()  # the original 34-class model predicts labelIds
            save_mask_png(labels, mask_path, scale=1)  # class indices, as the masks store them
            if config.dataset == "folder":
                labels = labels.masked_fill(labels == 0, IGNORE_INDEX)  # class 0 is taken as the background: unpainted
            painted = overlay(image, labels, "trainid")
        Image.fromarray(painted.permute(1, 2, 0).numpy()).save(overlay_path, quality=90)
    print(f"wrote {len(files)} masks and overlays to {args.out}")
    return 0


def _predict_split(args: argparse.Namespace) -> int:
    """``predict --data``: a Kaggle CSV (Carvana), the official result PNGs (Cityscapes), or masks (folder)."""
    model, state, config, device = load_for_inference(args)
    common = dict(
        tta=args.tta,
        batch_size=args.batch_size,
        num_workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    if config.dataset == "folder":
        if args.submission is not None or args.format == "cityscapes":
            raise InputError(
                f"--submission and --format cityscapes: {args.checkpoint} is a folder model; use --out DIR"
            )
        dataset = folder_split(config, "val" if args.split == "test" else args.split, with_masks=False)
        return _write_masks(args, model, state, config, device, [dataset.image_path(i) for i in range(len(dataset))])
    if config.dataset == "carvana":
        if args.format == "cityscapes":
            raise InputError(f"--format cityscapes: {args.checkpoint} is a Carvana model; use --submission CSV")
        if args.submission is None:
            raise InputError("--submission: expected the CSV file to write the Kaggle predictions of --data into")
        dataset = CarvanaDataset(args.data, args.split)
        paths = [dataset.image_path(i) for i in range(len(dataset))]
        write_submission(model, paths, args.submission, config.image_size, device, args.threshold, **common)
        print(f"wrote {len(paths)} rows (img,rle_mask) to {args.submission}")
    else:
        if args.submission is not None:
            raise InputError(
                f"--submission: {args.checkpoint} is a Cityscapes model; use --format cityscapes --out DIR"
            )
        if args.format == "png":
            raise InputError(
                "--format png: only for INPUTS; a Cityscapes --data split is written as --format cityscapes"
            )
        if args.out is None:
            raise InputError("--out: expected a folder for the Cityscapes labelId PNGs")
        dataset = CityscapesDataset(args.data, args.split, mode=config.mode)
        write_cityscapes_predictions(model, dataset, args.out, config.image_size, device, **common)
        print(
            f"wrote {len(dataset)} labelId PNGs to {args.out} (colour PNGs in {args.out / 'color'}); "
            f"the official tools read them: CITYSCAPES_RESULTS={args.out} csEvalPixelLevelSemanticLabeling"
        )
    return 0
