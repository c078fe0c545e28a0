"""The main job (``make demo``): train a small U-Net on Carvana data on the CPU and show it is real.

It makes sample data when ``data/carvana`` is absent, trains, scores the held-out cars, and
prints two trivial baselines beside the network's Dice, so the number means something.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from unet_lib.checkpoint import model_from_checkpoint, new_run_dir
from unet_lib.cli.baselines import mean_mask_dice, threshold_dice
from unet_lib.config import recipe
from unet_lib.data import build_datasets, build_loaders
from unet_lib.evaluation import Scores, evaluate, predict
from unet_lib.inspect.doctor import Doctor
from unet_lib.losses import make_loss
from unet_lib.runtime import Precision
from unet_lib.training import train

TARGET_DICE = 0.97  # the demo's promise on the held-out sample cars


def stack_dataset(dataset, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(image, mask)`` items of a dataset as two tensors [N, 3, H, W] and [N, H, W]."""
    items = [dataset[i] for i in range(len(dataset) if limit is None else min(limit, len(dataset)))]
    return torch.stack([image for image, _ in items]), torch.stack([mask for _, mask in items])


def run_demo(
    data_dir: str | Path = "data/carvana",
    models_dir: str | Path = "models/demo",
    epochs: int | None = None,
    threads: int | None = None,
) -> int:
    """Train, evaluate and compare with baselines; returns 0 when the Dice target is met, else 1."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        from unet_lib.cli.sample import write_carvana_sample

        print(f"{data_dir} is absent: writing sample Carvana data there (1918x1280 JPEG + GIF masks + CSV)")
        started = time.perf_counter()
        write_carvana_sample(data_dir, num_cars=8)
        print(f"  done in {time.perf_counter() - started:.0f} s")
    config = recipe(
        "demo", data_dir=str(data_dir), device="cpu", threads=threads, **({"num_epochs": epochs} if epochs else {})
    )
    train_set, val_set = build_datasets(config)
    out_dir = new_run_dir(models_dir)
    print(
        f"training {config.features} U-Net at {config.image_size[0]}x{config.image_size[1]} on the CPU: "
        f"{len(train_set)} training / {len(val_set)} held-out images -> {out_dir}"
    )
    started = time.perf_counter()
    doctor = Doctor(
        config.num_epochs, ("background", "car")
    )  # what went wrong, if anything, after epoch 1 and at the end
    history = train(config, out_dir, datasets=(train_set, val_set), on_epoch_end=doctor)
    minutes = (time.perf_counter() - started) / 60

    best_model, _ = model_from_checkpoint(out_dir / "best.pt", num_classes=1)
    _, val_loader = build_loaders(config, train_set, val_set)
    loss_fn = make_loss(config.loss, 1)
    precision = Precision.choose(torch.device(config.device), config.amp, config.channels_last)  # as trained
    best_model = precision.prepare(best_model)
    amp_dtype = precision.dtype
    metrics = evaluate(best_model, val_loader, [Scores(1, [config.threshold])], loss_fn, amp_dtype)
    train_images, train_masks = stack_dataset(build_datasets(dataclasses.replace(config, augment="none"))[0])
    val_images, val_masks = stack_dataset(val_set)
    mean_mask = mean_mask_dice(train_masks, val_masks)
    threshold = threshold_dice(val_images, val_masks)

    from unet_lib.viz import show_predictions

    preds = predict(best_model, val_images[:6], config.threshold, amp_dtype=amp_dtype)  # (6, H, W)
    figure = show_predictions(
        val_images[:6], preds, val_masks[:6], overlay=True, title="Held-out cars: top prediction, bottom reference"
    )
    figure.savefig(out_dir / "predictions.png", dpi=100, bbox_inches="tight")

    print(f"\ntrained {len(history)} epochs in {minutes:.1f} min; best checkpoint {out_dir / 'best.pt'}")
    print("held-out cars (mean per-image Dice, the Kaggle metric):")
    print(f"  U-Net                           {metrics['dice']:.4f}   (pixel accuracy {metrics['pixel_accuracy']:.4f})")
    print(f"  baseline: mean training mask    {mean_mask:.4f}")
    print(
        f"  baseline: best global threshold {threshold['dice']:.4f}   ({threshold['feature']} at {threshold['threshold']:.3g})"
    )
    print(f"figure: {out_dir / 'predictions.png'}")
    if metrics["dice"] < TARGET_DICE:
        print(f"validation Dice {metrics['dice']:.4f} is below the demo's target {TARGET_DICE}")
        return 1
    return 0
