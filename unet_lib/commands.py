"""What each command-line command does; ``unet_lib.cli`` parses the arguments and calls these.

Each function takes the parsed ``argparse.Namespace`` and returns the exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import torch
import torch.distributed as dist

from unet_lib.carvana_eval import evaluate_carvana, write_submission
from unet_lib.checkpoint import checkpoint_config, load_checkpoint, model_from_checkpoint, new_run_dir, to_json
from unet_lib.cityscapes_eval import evaluate_cityscapes, print_scores, write_cityscapes_predictions
from unet_lib.config import TrainConfig, recipe
from unet_lib.data import CarvanaDataset, CityscapesDataset, build_datasets
from unet_lib.data.cityscapes import NUM_LABEL_IDS, label_to_train_lut
from unet_lib.engine import train as train_run
from unet_lib.errors import InputError
from unet_lib.losses import make_loss
from unet_lib.metrics import check_threshold
from unet_lib.runtime import keep_freed_memory, pick_device

__all__ = ["demo", "evaluate", "predict", "sample_data", "train", "train_config"]


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig for ``train``: a recipe, then any option given on the command line."""
    name = args.recipe or ("recommended" if args.dataset == "carvana" else "cityscapes-recommended")
    config = recipe(name)
    if config.dataset != args.dataset:
        raise InputError(f"--recipe {name}: is a {config.dataset} recipe, but the dataset is {args.dataset}")
    overrides = {
        "data_dir": str(args.data or Path("data") / args.dataset),
        "image_size": args.size,
        "num_epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "features": args.features,
        "limit": args.limit,
        "num_workers": args.workers,
        "device": args.device,
        "seed": args.seed,
        "amp": args.amp,
        "channels_last": args.channels_last,
    }
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def print_metrics(metrics: dict, as_json: bool = False) -> None:
    """Metrics as strict JSON (undefined scores are null), or as an aligned two-column table."""
    if as_json:
        print(to_json(metrics, indent=2))
        return
    for key, value in metrics.items():
        if isinstance(value, float):
            print(f"  {key:<22} {value:.4f}")
        elif not isinstance(value, (list, dict)):
            print(f"  {key:<22} {value}")


def sample_data(args: argparse.Namespace) -> int:
    from unet_lib.data import sample

    if args.dataset == "carvana":
        ids = sample.write_carvana_sample(
            args.dir, num_cars=args.cars, size=args.size or (1918, 1280), seed=args.seed, overwrite=args.overwrite
        )
        print(f"wrote {len(ids)} training images of {args.cars} cars (+ test cars) to {args.dir}")
    else:
        sample.write_cityscapes_sample(
            args.dir, num_images=args.images, size=args.size or (2048, 1024), seed=args.seed, overwrite=args.overwrite
        )
        print(f"wrote {args.images} images per split to {args.dir}")
    return 0


def _init_distributed(device: str = "auto") -> tuple[bool, int]:
    """Join the process group torchrun set up (RANK/WORLD_SIZE/LOCAL_RANK); returns (distributed, local_rank).

    GPUs talk through NCCL, one per process; CPU processes (``--device cpu``, or no GPU) through gloo.
    """
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend)
    return True, local_rank


def train(args: argparse.Namespace) -> int:
    config = train_config(args)
    if args.resume:
        if args.out is None:
            raise InputError("--resume: also pass --out, the run folder to continue")
        config = TrainConfig.from_dict(load_checkpoint(args.out / "last.pt")["config"])
        changes = {"device": args.device, "num_workers": args.workers}
        config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
    distributed, local_rank = _init_distributed(config.device)
    try:
        nccl = distributed and dist.get_backend() == "nccl"
        device = torch.device("cuda", local_rank) if nccl else pick_device(config.device)
        rank0 = not distributed or dist.get_rank() == 0
        datasets = build_datasets(config)  # a data problem ends here, before a run folder is made
        out = [args.out or (new_run_dir(Path("models") / config.dataset) if rank0 else None)]
        if distributed:
            dist.broadcast_object_list(out, src=0)  # every rank writes (rank 0) or reads the same folder
        out_dir = Path(out[0])
        if device.type == "cpu":
            keep_freed_memory()  # much faster CPU steps; this process keeps its peak memory until it ends
        if rank0:
            print(f"training on {device} -> {out_dir}")
        history = train_run(
            config,
            out_dir,
            resume=args.resume,
            overwrite=args.overwrite,
            datasets=datasets,
            device=device,
            threads=args.threads,
            progress=not args.quiet and rank0,
        )
        if rank0:
            key = config.best_metric
            best = max(history, key=lambda row: row[key])
            print(f"best {key} {best[key]:.4f} at epoch {best['epoch']}; checkpoints in {out_dir} (best.pt, last.pt)")
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


def _data_kind(folder: Path) -> str | None:
    """ "cityscapes" or "carvana" by the folder's layout, None when it looks like neither."""
    folder = Path(folder)
    if (folder / "leftImg8bit").is_dir():
        return "cityscapes"
    if any((folder / name).is_dir() for name in ("train", "test", "val")):
        return "carvana"
    return None


def _config_for(state: dict, args: argparse.Namespace) -> TrainConfig:
    """The checkpoint's config, checked against ``--data`` and with ``--data``/``--size`` applied."""
    config = checkpoint_config(state, args.checkpoint)
    data = getattr(args, "data", None)
    kind = _data_kind(data) if data else None
    if kind is not None and kind != config.dataset:
        raise InputError(
            f"{args.checkpoint}: a {state['arch']['num_classes']}-class {config.dataset} model, but {data} holds {kind} data"
        )
    return dataclasses.replace(
        config, data_dir=str(data) if data else config.data_dir, image_size=args.size or config.image_size
    )


def _load_for_inference(args: argparse.Namespace) -> tuple[torch.nn.Module, dict, TrainConfig, torch.device]:
    """The model on its device, the checkpoint dict and its config, after checking the shared options."""
    if args.workers < 0:
        raise InputError(f"--workers: expected 0 or more DataLoader processes, got {args.workers}")
    device = pick_device(args.device)
    model, state = model_from_checkpoint(args.checkpoint, map_location=device)
    return model.to(device), state, _config_for(state, args), device


def evaluate(args: argparse.Namespace) -> int:
    model, _, config, device = _load_for_inference(args)
    common = dict(batch_size=args.batch_size, num_workers=args.workers, progress=not args.quiet)
    if config.dataset == "carvana":
        if args.split == "test":
            raise InputError("--split test: the Carvana test images have no masks to score against; use predict")
        dataset = CarvanaDataset(args.data, args.split, size=config.image_size, val_fraction=config.val_fraction)
        loss_fn = make_loss(config.loss, config.num_classes)
        metrics = evaluate_carvana(model, dataset, device, config.threshold, loss_fn, **common)
    else:
        dataset = CityscapesDataset(args.data, args.split, mode=config.mode)
        metrics = evaluate_cityscapes(model, dataset, config.image_size, device, tta=args.tta, **common)
    result = {"checkpoint": str(args.checkpoint), "split": args.split, "images": len(dataset), **metrics}
    if args.json:
        print_metrics(result, as_json=True)
        return 0
    height, width = config.image_size
    print(f"{args.checkpoint} on {args.data} ({args.split}, {len(dataset)} images, network at {height}x{width}):")
    if config.dataset == "carvana":
        print_metrics(result)
    else:
        print_scores(metrics)
    return 0


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

    from PIL import Image
    from tqdm.auto import tqdm

    from unet_lib.predict import collect_inputs, predict_file, save_mask_png
    from unet_lib.viz import overlay

    model, state, config, device = _load_for_inference(args)
    files = collect_inputs(args.inputs)
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
            if state["arch"]["num_classes"] == NUM_LABEL_IDS:
                labels = label_to_train_lut()[labels].long()  # the original 34-class model predicts labelIds
            save_mask_png(labels, mask_path, scale=1)
            painted = overlay(image, labels, "trainid")
        Image.fromarray(painted.permute(1, 2, 0).numpy()).save(overlay_path, quality=90)
    print(f"wrote {len(files)} masks and overlays to {args.out}")
    return 0


def _predict_split(args: argparse.Namespace) -> int:
    """``predict --data``: a Kaggle submission CSV (Carvana) or the official result PNGs (Cityscapes)."""
    model, _, config, device = _load_for_inference(args)
    common = dict(
        tta=args.tta,
        batch_size=args.batch_size,
        num_workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
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


def demo(args: argparse.Namespace) -> int:
    from unet_lib.demo import run_demo

    keep_freed_memory()  # the demo trains on the CPU: much faster steps
    return run_demo(args.data, args.models, epochs=args.epochs, threads=args.threads, progress=not args.quiet)
