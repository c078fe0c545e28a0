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
from torch.utils.data import DataLoader

from unet_lib.carvana_eval import evaluate_carvana
from unet_lib.checkpoint import load_checkpoint, new_run_dir, to_json
from unet_lib.cityscapes_eval import evaluate_cityscapes, print_scores
from unet_lib.commands_predict import folder_split, load_for_inference, predict
from unet_lib.config import TrainConfig, recipe
from unet_lib.data import CarvanaDataset, CityscapesDataset, build_datasets
from unet_lib.data.check import check_tree
from unet_lib.data.folder import FolderClasses, fill_classes
from unet_lib.engine import evaluate as evaluate_model
from unet_lib.engine import train as train_run
from unet_lib.errors import InputError
from unet_lib.losses import make_loss
from unet_lib.runtime import keep_freed_memory, pick_device

__all__ = ["check_data", "demo", "evaluate", "export", "predict", "sample_data", "train", "train_config"]

DEFAULT_RECIPES = {"carvana": "recommended", "cityscapes": "cityscapes-recommended", "folder": "folder"}


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig for ``train``: a recipe, then any option given on the command line."""
    name = args.recipe or DEFAULT_RECIPES[args.dataset]
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
        "cache": args.cache,
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

    common = dict(seed=args.seed, overwrite=args.overwrite, workers=args.workers, progress=True)
    if args.dataset == "carvana":
        cars = sample.FULL_SIZE_CARS if args.full_size else args.cars
        ids = sample.write_carvana_sample(args.dir, num_cars=cars, size=args.size or (1918, 1280), **common)
        print(f"wrote {len(ids)} training images of {cars} cars (+ test cars) to {args.dir}")
    else:
        images = sample.FULL_SIZE_IMAGES if args.full_size else args.images
        sample.write_cityscapes_sample(args.dir, num_images=images, size=args.size or (2048, 1024), **common)
        shown = " + ".join(f"{n} {split}" for split, n in images.items()) if args.full_size else f"{images} per split"
        print(f"wrote {shown} images to {args.dir}")
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
        changes = {"device": args.device, "num_workers": args.workers, "cache": args.cache}
        config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
    if args.overfit_batch:
        return overfit(args, config)
    distributed, local_rank = _init_distributed(config.device)
    try:
        nccl = distributed and dist.get_backend() == "nccl"
        device = torch.device("cuda", local_rank) if nccl else pick_device(config.device)
        rank0 = not distributed or dist.get_rank() == 0
        classes = check_before_training(config, distributed, progress=not args.quiet and rank0)
        datasets = build_datasets(config, classes)  # a data problem ends here, before a run folder is made
        config = fill_classes(config, datasets[0])
        out = [args.out or (new_run_dir(Path("models") / config.dataset) if rank0 else None)]
        if distributed:
            dist.broadcast_object_list(out, src=0)  # every rank writes (rank 0) or reads the same folder
        out_dir = Path(out[0])
        if device.type == "cpu":
            keep_freed_memory()  # much faster CPU steps; this process keeps its peak memory until it ends
        if rank0:
            print(f"training on {device} -> {out_dir}")
            if config.dataset == "folder":
                print(describe_classes(config, classes))
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


def evaluate(args: argparse.Namespace) -> int:
    model, _, config, device = load_for_inference(args)
    common = dict(batch_size=args.batch_size, num_workers=args.workers, progress=not args.quiet)
    if config.dataset == "folder":
        dataset = folder_split(config, args.split, progress=not args.quiet)
        loss_fn = make_loss(config.loss, config.num_classes)
        if config.num_classes == 1:  # two classes: the Carvana scores, at the network's size and the file's
            metrics = evaluate_carvana(model, dataset, device, config.threshold, loss_fn, **common)
        else:
            if args.tta:
                raise InputError("--tta: scored for two-class folder data, Carvana and Cityscapes; leave it out here")
            loader = DataLoader(dataset, args.batch_size, num_workers=args.workers)
            metrics = evaluate_model(model, loader, loss_fn, device, config.num_classes, progress=not args.quiet)
            metrics["iou"] = dict(zip(config.class_names, metrics["iou"], strict=True))
    elif config.dataset == "carvana":
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
    if config.num_classes == 1:
        print_metrics(result)
    elif config.dataset == "folder":
        print(f"{'class':<22} IoU\n{'-' * 28}")
        for name, value in metrics["iou"].items():
            print(f"{name:<22} {value:.3f}")
        print(f"{'-' * 28}\n{'mean (mIoU)':<22} {metrics['miou']:.3f}")
        print(f"{'pixel accuracy':<22} {metrics['pixel_accuracy']:.3f}")
    else:
        print_scores(metrics)
    return 0


def check_before_training(config: TrainConfig, distributed: bool, progress: bool) -> FolderClasses | None:
    """check-data's checks, run by the first process: the first problem stops training (one line).

    Returns:
        The classes of folder data (so its masks are not read again), else None.
    """
    found = [None, None]  # (the first problem, the classes)
    if not distributed or dist.get_rank() == 0:
        try:
            size, depth = config.image_size, len(config.features)
            report = check_tree(config.data_dir, config.dataset, size, depth, progress, mode=config.mode)
            more = f" (and {len(report.problems) - 1} more: python -m unet_lib check-data {config.data_dir})"
            first = report.problems[0] + more * (len(report.problems) > 1) if report.problems else None
            found = [first, report.classes]
        except InputError as err:
            found = [str(err), None]
    if distributed:
        dist.broadcast_object_list(found, src=0)  # every process stops, or none
    if found[0] is not None:
        raise InputError(found[0])
    return found[1]


def describe_classes(config: TrainConfig, classes: FolderClasses | None) -> str:
    """One line: a folder's classes and how they are trained."""
    names = ", ".join(config.class_names)
    where = "; 255 in the masks is the foreground" if classes is not None and classes.foreground_255 else ""
    how = f"one output channel, {config.loss}" if config.num_classes == 1 else "cross-entropy, 255 ignored"
    return f"{config.data_dir}: {len(config.class_names)} classes ({names}){where}: {how}"


def overfit(args: argparse.Namespace, config: TrainConfig) -> int:
    """``train --overfit-batch``: train on one fixed batch, write nothing, and say whether it was learnt."""
    from unet_lib.overfit import overfit_message, overfit_run

    if args.resume:
        raise InputError("--overfit-batch: writes no run, so there is nothing to --resume; leave one of them out")
    classes = check_before_training(config, False, progress=not args.quiet)
    config = dataclasses.replace(config, augment="none", cache="none")  # the same pictures every step
    train_set, _ = build_datasets(config, classes)
    config = fill_classes(config, train_set)
    loss, steps = overfit_run(config, train_set, pick_device(config.device), args.threads, progress=not args.quiet)
    print(overfit_message(loss, steps))
    return 0


def check_data(args: argparse.Namespace) -> int:
    from unet_lib.data.check_report import report_lines

    report = check_tree(args.dir, args.dataset, size=args.size, progress=not args.quiet)
    print("\n".join(report_lines(report)))
    return 0 if report.ok else 2


def export(args: argparse.Namespace) -> int:
    from unet_lib.export import OPSET, export_checkpoint, onnx_differences

    path, model, config = export_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite)
    size = path.stat().st_size
    shown = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"
    print(f"wrote {path} ({shown}, ONNX opset {OPSET}): images [N, 3, H, W] RGB in [0, 1] -> logits [N, C, H, W]")
    height, width = config.image_size
    try:
        differences = onnx_differences(path, model, [(1, 3, height, width), (2, 3, height + 7, width + 5)])
    except InputError as err:
        print(f"not compared with PyTorch: {err}")
        return 0
    shown = ", ".join(f"{diff:.1e} at {'x'.join(map(str, shape))}" for shape, diff in differences.items())
    print(f"onnxruntime vs PyTorch, largest logit difference: {shown}")
    return 0 if max(differences.values()) < 1e-3 else 1


def demo(args: argparse.Namespace) -> int:
    from unet_lib.demo import run_demo

    keep_freed_memory()  # the demo trains on the CPU: much faster steps
    return run_demo(args.data, args.models, epochs=args.epochs, threads=args.threads, progress=not args.quiet)
