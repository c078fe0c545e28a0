"""What each command-line command does; ``unet_lib.cli`` parses the arguments and calls these.

Each function takes the parsed ``argparse.Namespace`` and returns the exit code. Training goes through
``unet_lib.train`` and scoring through ``unet_lib.evaluate``, as in the notebooks; what differs between
datasets is asked of the dataset (``unet_lib.data.DATASETS``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import sys
from pathlib import Path

from unet_lib.checkpoint import load_checkpoint, to_json
from unet_lib.cli.cache import use_cache
from unet_lib.cli.full_res import binary_metrics, with_full_masks
from unet_lib.cli.predict import LAYOUT_FIELDS, announce, layout_fields, predict, scored_split
from unet_lib.cli.profiles import keep_freed_memory
from unet_lib.config import TrainConfig, recipe
from unet_lib.data import DATASETS, build_datasets, num_outputs
from unet_lib.data.check import check_tree
from unet_lib.data.pairs import Layout
from unet_lib.errors import InputError
from unet_lib.evaluation import Scores
from unet_lib.evaluation import evaluate as evaluate_model
from unet_lib.training import train as train_run

__all__ = ["check_data", "demo", "evaluate", "export", "predict", "sample_data", "train", "train_config"]

DEFAULT_RECIPES = {"carvana": "recommended", "cityscapes": "cityscapes-recommended", "folder": "folder"}


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig for ``train``: a recipe, then any option given on the command line.

    With ``--resume``, the config stored in the run's ``last.pt``; only where and how it runs may change.
    """
    runtime = {"device": args.device, "num_workers": args.workers, "cache": args.cache, "threads": args.threads}
    runtime |= {"amp": args.amp, "channels_last": args.channels_last}
    runtime = {k: v for k, v in runtime.items() if v is not None}
    if args.resume:
        if args.out is None:
            raise InputError("--resume: also pass --out, the run folder to continue")
        stored = TrainConfig.from_dict(load_checkpoint(args.out / "last.pt")["config"])
        return dataclasses.replace(stored, **runtime)
    name = args.recipe or DEFAULT_RECIPES[args.dataset]
    config = recipe(name)
    if config.dataset != args.dataset:
        raise InputError(f"--recipe {name}: is a {config.dataset} recipe, but the dataset is {args.dataset}")
    overrides = {
        "data_dir": str(args.data or Path("data") / args.dataset),
        "image_size": args.size,
        "crop": args.crop,
        "num_epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "features": args.features,
        "limit": args.limit,
        "seed": args.seed,
        "class_weights": args.class_weights,
        **layout_fields(args),
        **runtime,
    }
    if layout_fields(args) and not DATASETS[config.dataset].folders_named:
        flag = next(name for name in LAYOUT_FIELDS if getattr(args, name) is not None).replace("_", "-")
        raise InputError(f"--{flag}: says where folder data is (train folder ...); {config.dataset} has its own layout")
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


def sample_carvana(args: argparse.Namespace, options) -> None:
    from unet_lib.cli import sample

    cars = sample.FULL_SIZE_CARS if args.full_size else args.cars
    ids = sample.write_carvana_sample(args.dir, num_cars=cars, size=args.size or (1918, 1280), options=options)
    print(f"wrote {len(ids)} training images of {cars} cars (+ test cars) to {args.dir}")


def sample_cityscapes(args: argparse.Namespace, options) -> None:
    from unet_lib.cli import sample

    images = sample.FULL_SIZE_IMAGES if args.full_size else args.images
    sample.write_cityscapes_sample(args.dir, num_images=images, size=args.size or (2048, 1024), options=options)
    shown = " + ".join(f"{n} {split}" for split, n in images.items()) if args.full_size else f"{images} per split"
    print(f"wrote {shown} images to {args.dir}")


SAMPLE_WRITERS = {"carvana": sample_carvana, "cityscapes": sample_cityscapes}  # the layouts sample-data writes


def sample_data(args: argparse.Namespace) -> int:
    from unet_lib.cli.sample.common import WriteOptions

    options = WriteOptions(seed=args.seed, overwrite=args.overwrite, workers=args.workers, progress=None)
    SAMPLE_WRITERS[args.dataset](args, options)
    return 0


def cached_datasets(config: TrainConfig, known) -> tuple:
    """The datasets a config describes, read through the picture cache ``config.cache`` names."""
    train_set, val_set = build_datasets(config, known)
    return use_cache(train_set, config.cache), use_cache(val_set, config.cache)


def train(args: argparse.Namespace) -> int:
    config = train_config(args)
    if args.steps is not None and not args.overfit_batch:
        raise InputError("--steps: is the step limit of --overfit-batch; a run is as long as its --epochs")
    if args.overfit_batch:
        if args.resume:
            raise InputError("--overfit-batch: writes no run, so there is nothing to --resume; leave one of them out")
        if config.device in ("auto", "cpu"):
            keep_freed_memory()  # faster CPU steps: more of them fit in the time limit
        from unet_lib.inspect.overfit import overfit_check

        train_run(config, probe=functools.partial(overfit_check, steps=args.steps))
        return 0
    if config.device in ("auto", "cpu"):
        keep_freed_memory()  # much faster CPU steps; this process keeps its peak memory until it ends
    from unet_lib.inspect.doctor import Doctor

    names = DATASETS[config.dataset].class_names or config.class_names  # a folder's: known once its data is read
    watch = Doctor(config.num_epochs, names, weighted=config.class_weights != "none")
    train_run(
        config, args.out, datasets=cached_datasets, resume=args.resume, overwrite=args.overwrite, on_epoch_end=watch
    )
    return 0


def doctor(args: argparse.Namespace) -> int:
    from unet_lib.inspect.doctor import diagnose

    history_path, last = args.run / "history.json", args.run / "last.pt"
    if not history_path.is_file() or not last.is_file():
        raise InputError(f"{args.run}: expected a run folder with history.json and last.pt (from train)")
    try:
        history = json.loads(history_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{history_path}: not readable as a run's history (JSON: {err})") from None
    if not isinstance(history, list) or not all(isinstance(row, dict) and "epoch" in row for row in history):
        raise InputError(f"{history_path}: expected a list of epoch rows, as train writes it")
    state = load_checkpoint(last)
    stored = TrainConfig.from_dict(state["config"])
    found = diagnose(history, state.get("class_names") or (), weighted=bool(stored.loss_weights))
    if args.json:
        print(to_json({"run": str(args.run), "epochs": len(history), "findings": found}, indent=2))
    else:
        print(
            "\n".join(f"doctor: {line}" for line in found)
            or f"doctor: nothing wrong found in {len(history)} epochs of {args.run}"
        )
    return 0


def lr_find(args: argparse.Namespace) -> int:
    from unet_lib.cli.analyze import check_figure
    from unet_lib.inspect.lr_find import lr_find as sweep

    check_figure(args, "lr_find.png")
    config = train_config(args)
    if config.device in ("auto", "cpu"):
        keep_freed_memory()  # faster CPU steps
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):  # --json: only JSON on stdout
        found = train_run(config, probe=sweep)
    if args.out is not None:
        from unet_lib.viz import plot_lr_find

        args.out.mkdir(parents=True, exist_ok=True)
        plot_lr_find(found).savefig(args.out / "lr_find.png", dpi=100)
        found["figure"] = str(args.out / "lr_find.png")
    if args.json:
        print(to_json(found, indent=2))
        return 0
    print(f"{'lr':>10}  {'loss':>8}  smoothed")
    for i in range(0, len(found["lrs"]), 10):
        print(f"{found['lrs'][i]:>10.2e}  {found['losses'][i]:>8.4f}  {found['smoothed'][i]:.4f}")
    print(f"{len(found['lrs'])} steps; stopped: {found['stopped']}")
    print(
        f"suggested --lr {found['suggested_lr']:.1e}: {found['rule']} ({found['lowest_loss_lr']:.1e}); the loss fell"
        f" fastest at {found['steepest_lr']:.1e}; the recipe's is {found['config_lr']:.1e}"
    )
    print("a starting point, not an answer: train with it and with the recipe's, then compare the two runs (compare)")
    if "figure" in found:
        print(f"the curve: {found['figure']}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    split = scored_split(args)
    model, config, precision, dataset, loss_fn = (
        split.model,
        split.config,
        split.precision,
        split.dataset,
        split.loss_fn,
    )
    loader = with_full_masks(dataset, split.batch_size, args.workers)
    metrics = evaluation_metrics(DATASETS[config.dataset].scores, config, args.tta)
    announce(precision)
    scores = evaluate_model(model, loader, metrics, loss_fn, precision.dtype)
    if isinstance(scores.get("iou"), list):
        scores["iou"] = dict(zip(config.class_names, scores["iou"], strict=True))
    result = {"checkpoint": str(args.checkpoint), "split": args.split, "images": len(dataset), **scores}
    if args.json:
        print_metrics(result, as_json=True)
        return 0
    height, width = config.crop or config.image_size
    network = f"in {height}x{width} tiles" if config.crop else f"network at {height}x{width}"
    print(f"{args.checkpoint} on {args.data} ({args.split}, {len(dataset)} images, {network}):")
    print_scores(result)
    return 0


def evaluation_metrics(scores: str, config: TrainConfig, tta: bool) -> list:
    """What ``evaluate`` counts: Cityscapes' official scores, or by the classes: for two, the scores at the
    network's size and Kaggle's Dice at each picture's size, with and without flip TTA; for more, each IoU."""
    if scores == "official":
        from unet_lib.cli.cityscapes import OfficialScores

        return [OfficialScores(tta)]
    if num_outputs(config) == 1:
        return binary_metrics(config.threshold)
    if tta:
        raise InputError("--tta: scored for two-class folder data, Carvana and Cityscapes; leave it out here")
    return [Scores(num_outputs(config))]


def print_scores(result: dict) -> None:
    """The scores as tables: one IoU per class (and per category, for Cityscapes), or two columns."""
    if "category_iou" in result:
        from unet_lib.cli.cityscapes import print_scores as print_official

        print_official(result)
    elif isinstance(result.get("iou"), dict):
        print(f"{'class':<22} IoU\n{'-' * 28}")
        for name, value in result["iou"].items():
            print(f"{name:<22} {value:.3f}")
        print(f"{'-' * 28}\n{'mean (mIoU)':<22} {result['miou']:.3f}")
        print(f"{'pixel accuracy':<22} {result['pixel_accuracy']:.3f}")
    else:
        print_metrics(result)


def analyze(args: argparse.Namespace) -> int:
    from unet_lib.cli.analyze import run_analysis

    return run_analysis(args, scored_split(args))


def compare(args: argparse.Namespace) -> int:
    from unet_lib.cli.analyze import run_comparison

    return run_comparison(args)


def check_data(args: argparse.Namespace) -> int:
    from unet_lib.cli.check_report import report_lines

    layout = layout_fields(args)  # other folder names, or another void value: folder data
    layout = Layout.of(dataclasses.replace(TrainConfig(), **layout))
    report = check_tree(args.dir, args.dataset, size=args.size, layout=layout)
    print("\n".join(report_lines(report)))
    return 0 if report.ok else 2


def export(args: argparse.Namespace) -> int:
    from unet_lib.cli.export import OPSET, export_checkpoint, onnx_differences

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
    from unet_lib.cli.demo import run_demo

    keep_freed_memory()  # the demo trains on the CPU: much faster steps
    return run_demo(args.data, args.models, epochs=args.epochs, threads=args.threads)
