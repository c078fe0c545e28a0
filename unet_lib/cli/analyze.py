"""``analyze``: a checkpoint's pictures worst first and its error atlas (``unet_lib.inspect.analysis``); ``compare``:
two checkpoints on the same pictures, their paired difference with a bootstrap interval. As tables, as JSON, and
with ``--out`` a figure; ``check_figure`` guards every command's ``--out`` figure."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from unet_lib.checkpoint import to_json
from unet_lib.cli.predict import ScoredSplit, announce, scored_split
from unet_lib.data import class_names, num_outputs
from unet_lib.errors import InputError
from unet_lib.evaluation import evaluate, predict_labels, predict_logits
from unet_lib.inspect.analysis import SIZE_LIMITS, Atlas, paired_comparison

SHOWN = 10  # pictures listed in the table (--json lists them all)
FIGURE_PICTURES = 4  # worst pictures in the --out figure


def check_figure(args: argparse.Namespace, name: str) -> None:
    """A one-line error when ``--out`` is a file, or already holds the figure ``name`` and ``--overwrite`` is not given."""
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out: {args.out} is a file; expected a folder for {name}")
    if args.out is not None and (args.out / name).exists() and not args.overwrite:
        raise InputError(f"--out: {args.out / name} exists; pass --overwrite to replace it, or choose another --out")


def run_analysis(args: argparse.Namespace, split: ScoredSplit) -> int:
    """Score every picture of the split through ``unet_lib.evaluate`` with an :class:`Atlas`, then report."""
    if args.band < 0:
        raise InputError(f"--band: expected 0 or more pixels, got {args.band}")
    check_figure(args, "worst.png")
    config, dataset = split.config, split.dataset
    if split.loss_fn is None:
        raise InputError(
            f"{args.checkpoint}: predicts other classes than the dataset's (an original .h5?); analyze needs the dataset's"
        )
    atlas = Atlas(num_outputs(config), split.loss_fn, args.band, config.threshold)
    loader = DataLoader(dataset, split.batch_size, num_workers=args.workers)
    announce(split.precision)
    result = evaluate(split.model, loader, [atlas], amp_dtype=split.precision.dtype)
    names = class_names(config)
    for picture in result["pictures"]:
        picture["id"] = dataset.ids[picture["index"]]
    for row in result.get("classes", []):
        row["name"] = names[row["class"]]
        row["taken_for"] = None if row["taken_for"] is None else names[row["taken_for"]]
    result = {
        "checkpoint": str(args.checkpoint),
        "data": str(args.data),
        "split": args.split,
        "images": len(dataset),
        **result,
    }
    if args.out is not None:
        result["figure"] = str(write_figure(args.out, split, result))
    if args.json:
        print(to_json(result, indent=2))
    else:
        print("\n".join(report_lines(result, atlas.size)))
    return 0


def report_lines(result: dict, size: tuple[int, int] | None) -> list[str]:
    """The analysis as a person reads it: the worst pictures, where the wrong pixels lie, recall by size, classes."""
    score = "Dice" if result["score_name"] == "dice" else "mIoU"
    pictures = result["pictures"]
    head = f"{result['checkpoint']} on {result['data']} ({result['split']}, {result['images']} pictures)"
    lines = [f"{head}, {score} per picture, worst first:"]
    lines.append(f"  {'rank':>4}  {'picture':<28} {score:>6}  {'loss':>7}  wrong px")
    for rank, p in enumerate(pictures[:SHOWN], 1):
        loss = "-" if p["loss"] is None else f"{p['loss']:.4f}"
        lines.append(f"  {rank:>4}  {p['id']:<28} {p['score']:>6.4f}  {loss:>7}  {p['wrong']}")
    if len(pictures) > SHOWN:
        lines.append(f"  ... {len(pictures) - SHOWN} more (--json lists all)")
    band = result["boundary"]
    labelled = sum(p["labelled"] for p in pictures)
    if band["wrong"]:
        lines.append(
            f"wrong pixels: {band['wrong']:,} of {labelled:,} ({band['wrong'] / labelled:.2%}); "
            f"{band['wrong_share_in_band']:.0%} lie within {band['band_px']} px of a boundary between two labels, "
            f"where {band['pixels_share_in_band']:.0%} of all pixels lie; {1 - band['wrong_share_in_band']:.0%} in the interiors"
        )
    else:
        lines.append(f"wrong pixels: none of {labelled:,}")
    height, width = size or (0, 0)
    small, large = (round(limit * height * width) for limit in SIZE_LIMITS)
    lines.append(
        f"recall by object size (connected regions of each reference class; COCO's limits scaled to {height}x{width}:"
        f" small < {small} px, large >= {large} px):"
    )
    for row in result["by_size"]:
        recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        lines.append(
            f"  {row['bin']:<7} {row['objects']:>5} objects  {row['pixels']:>9,} px  recall {recall:>5}"
            f"  more than half found: {row['found_over_half']}"
        )
    if "classes" in result:
        lines.append(f"  {'class':<22} {'IoU':>6}  most often taken for")
        for row in sorted(result["classes"], key=lambda r: (r["iou"] == r["iou"], r["iou"])):  # NaN first, then worst
            iou = "-" if row["iou"] != row["iou"] else f"{row['iou']:.3f}"
            taken = "-" if row["taken_for"] is None else f"{row['taken_for']} ({row['taken_share']:.0%} of its pixels)"
            lines.append(f"  {row['name']:<22} {iou:>6}  {taken}")
    if "figure" in result:
        lines.append(f"the {min(FIGURE_PICTURES, len(pictures))} worst pictures: {result['figure']}")
    return lines


def write_figure(out: Path, split: ScoredSplit, result: dict) -> Path:
    """``out/worst.png``: the worst pictures, their predictions with the reference outlined and their error maps."""
    from unet_lib.viz.analysis import show_worst

    worst = result["pictures"][:FIGURE_PICTURES]
    images, masks, preds = [], [], []
    device = next(split.model.parameters()).device
    for picture in worst:  # one at a time: with --crop, pictures keep their own sizes
        image, mask = split.dataset[picture["index"]]  # (3, H, W), (H, W)
        logits = predict_logits(split.model, image[None].to(device), amp_dtype=split.precision.dtype)
        images.append(image)
        masks.append(mask)
        preds.append(predict_labels(logits, split.config.threshold)[0].cpu())
    score = "Dice" if result["score_name"] == "dice" else "mIoU"
    titles = [f"{p['id']}\n{score} {p['score']:.3f}" for p in worst]
    fig = show_worst(
        images, preds, masks, titles, band=result["boundary"]["band_px"], binary=num_outputs(split.config) == 1
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "worst.png"
    fig.savefig(path, dpi=100)
    return path


def picture_results(split: ScoredSplit, workers: int, band: int = 3) -> dict:
    """The :class:`Atlas` of one checkpoint on its split, through ``unet_lib.evaluate``."""
    if split.loss_fn is None:
        raise InputError(
            "--checkpoint: predicts other classes than the dataset's (an original .h5?); expected the dataset's"
        )
    atlas = Atlas(num_outputs(split.config), split.loss_fn, band, split.config.threshold)
    loader = DataLoader(split.dataset, split.batch_size, num_workers=workers)
    return evaluate(split.model, loader, [atlas], amp_dtype=split.precision.dtype)


def run_comparison(args: argparse.Namespace) -> int:
    """Both checkpoints' score of every picture, the paired difference B - A with its bootstrap interval, the wins."""
    if len(args.checkpoint) != 2:
        raise InputError(f"--checkpoint: expected two, A then B; got {len(args.checkpoint)}")
    check_figure(args, "disagreement.png")
    splits = [scored_split(argparse.Namespace(**{**vars(args), "checkpoint": path})) for path in args.checkpoint]
    a, b = splits
    if a.dataset.ids != b.dataset.ids or num_outputs(a.config) != num_outputs(b.config):
        raise InputError(
            f"--checkpoint: {args.checkpoint[0]} and {args.checkpoint[1]} score other pictures or classes; expected two models of the same data"
        )
    announce(a.precision)
    found = [sorted(picture_results(split, args.workers)["pictures"], key=lambda p: p["index"]) for split in splits]
    scores = [torch.tensor([p["score"] for p in pictures], dtype=torch.float64) for pictures in found]
    result = {
        "a": str(args.checkpoint[0]),
        "b": str(args.checkpoint[1]),
        "data": str(args.data),
        "split": args.split,
        "images": len(a.dataset),
        "score_name": "dice" if num_outputs(a.config) == 1 else "miou",
        "mean_a": scores[0].mean().item(),
        "mean_b": scores[1].mean().item(),
        **paired_comparison(*scores),
        "pictures": [
            {"id": a.dataset.ids[i], "a": sa, "b": sb, "difference": sb - sa}
            for i, (sa, sb) in enumerate(zip(scores[0].tolist(), scores[1].tolist(), strict=True))
        ],
    }
    if args.out is not None:
        result["figure"] = str(write_disagreement(args.out, splits, result))
    print(to_json(result, indent=2) if args.json else "\n".join(comparison_lines(result)))
    return 0


def comparison_lines(result: dict) -> list[str]:
    """The comparison as a person reads it, ending with what the interval says."""
    score = "Dice" if result["score_name"] == "dice" else "mIoU"
    low, high = result["interval"]
    lines = [
        f"A = {result['a']}\nB = {result['b']}\non {result['data']} ({result['split']}, {result['images']} pictures), {score} per picture:",
        f"  mean A {result['mean_a']:.4f}, mean B {result['mean_b']:.4f}; B - A {result['mean_difference']:+.4f},"
        f" 95 % bootstrap interval [{low:+.4f}, {high:+.4f}]"
        f" ({result['resamples']:,} resamples of the {result['images']} pictures, seed {result['seed']})",
        f"  B better on {pictures(result['b_wins'])}, A on {result['a_wins']}, equal on {result['ties']}",
    ]
    if result["ties"] == result["images"]:
        lines.append("  the two give the same score on every picture")
    elif result["interval_contains_zero"]:
        lines.append(
            "  the interval contains 0: these pictures do not show either model better; the difference may be"
            " the luck of which pictures were drawn"
        )
    else:
        better = "B" if low > 0 else "A"
        lines.append(
            f"  the interval lies {'above' if low > 0 else 'below'} 0: {better} is better on pictures like these"
        )
    if "figure" in result:
        lines.append(f"the pictures where they differ most: {result['figure']}")
    return lines


def pictures(count: int) -> str:
    """``"1 picture"``, ``"3 pictures"``."""
    return f"{count} picture{'' if count == 1 else 's'}"


def write_disagreement(out: Path, splits: list[ScoredSplit], result: dict) -> Path:
    """``out/disagreement.png``: the pictures whose scores differ most, and where the two predictions differ."""
    from unet_lib.viz.analysis import show_disagreement

    if splits[0].config.image_size != splits[1].config.image_size or splits[0].config.crop or splits[1].config.crop:
        raise InputError(
            "--out: the two checkpoints see the pictures at different sizes (or in tiles); leave --out out"
        )
    ranked = sorted(range(len(result["pictures"])), key=lambda i: -abs(result["pictures"][i]["difference"]))
    shown = ranked[:FIGURE_PICTURES]
    images, masks, preds = [], [], []
    for index in shown:
        image, mask = splits[0].dataset[index]
        pair = []
        for split in splits:
            device = next(split.model.parameters()).device
            logits = predict_logits(split.model, image[None].to(device), amp_dtype=split.precision.dtype)
            pair.append(predict_labels(logits, split.config.threshold)[0].cpu())
        images.append(image)
        masks.append(mask)
        preds.append(pair)
    score = "Dice" if result["score_name"] == "dice" else "mIoU"
    titles = [
        f"{result['pictures'][i]['id']}\n{score} A {result['pictures'][i]['a']:.3f}, B {result['pictures'][i]['b']:.3f}"
        for i in shown
    ]
    fig = show_disagreement(images, preds, masks, titles)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "disagreement.png"
    fig.savefig(path, dpi=100)
    return path
