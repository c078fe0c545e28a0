"""The training loop: ``train_one_epoch``, ``evaluate`` and ``fit`` as plain functions, and ``train``,
the one entry that turns a config into a trained run (the CLI, the demo and the notebooks call it).

``fit`` adds what a long run needs: per-epoch seeding (so a resumed run is bit-identical to an
uninterrupted one), atomic best/last checkpoints, a NaN guard and a history to plot.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from unet_lib.checkpoint import load_checkpoint, load_weights, save_checkpoint, write_json
from unet_lib.config import TrainConfig
from unet_lib.data import build_datasets, build_loaders, class_names_for
from unet_lib.data.folder import fill_classes
from unet_lib.errors import InputError
from unet_lib.losses import make_loss
from unet_lib.metrics import BinaryCounts, ConfusionMatrix
from unet_lib.model import UNet
from unet_lib.optim import make_optimizer, make_scheduler
from unet_lib.predict import predict_batches
from unet_lib.runtime import all_reduce, autocast_dtype, epoch_seed, is_main_process, pick_device, seed_everything


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def build_model(config: TrainConfig) -> UNet:
    """The U-Net a config describes."""
    return UNet(3, config.num_classes, config.features, config.block, config.upsample)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    epoch: int = 1,
    progress: bool = True,
) -> dict[str, float]:
    """One pass over ``loader`` with a gradient step per batch.

    Returns:
        ``{"train_loss": mean loss over the images seen}``.

    Raises:
        TrainingDiverged: the loss became NaN or infinite (before the bad step is applied).
    """
    model.train()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    num_images = 0
    bar = tqdm(loader, desc=f"epoch {epoch} train", leave=False, disable=not progress, dynamic_ncols=True)
    for step, (images, masks) in enumerate(bar):
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(images)  # (B, C, H, W)
        loss = loss_fn(logits.float(), masks)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss is {loss.item()} at epoch {epoch}, step {step + 1}: training diverged; "
                "lower the learning rate (--lr) or turn off mixed precision; the last good checkpoint is kept"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.detach() * len(images)
        num_images += len(images)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    totals = all_reduce(torch.stack([loss_sum, torch.tensor(num_images, device=device, dtype=torch.float64)]))
    return {"train_loss": (totals[0] / totals[1].clamp(min=1)).item()}


def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module,
    device: torch.device,
    num_classes: int,
    threshold: float = 0.5,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Loss and segmentation metrics over ``loader`` at the training size (over all processes when distributed).

    Returns:
        For one class (binary): ``loss``, and from ``metrics.binary_scores``: ``dice`` (mean
        per-image Dice, the Kaggle Carvana metric), ``pixel_accuracy``, ``precision``, ``recall``,
        ``iou``. For several classes: ``loss``, ``pixel_accuracy``, ``miou`` and per-class ``iou``
        (a list, NaN for classes absent from prediction and ground truth).
    """
    counts = BinaryCounts([threshold], device) if num_classes == 1 else ConfusionMatrix(num_classes, device=device)
    loss_sum = torch.zeros(2, dtype=torch.float64, device=device)  # loss * images, images
    for _, logits, masks in predict_batches(
        model, loader, device, amp_dtype=amp_dtype, progress=progress, desc="evaluate"
    ):
        loss_sum += torch.stack([loss_fn(logits, masks).double() * len(masks), torch.tensor(len(masks), device=device)])
        counts.update(logits if num_classes == 1 else logits.argmax(1), masks)
    counts.reduce_from_all_processes()
    loss_sum = all_reduce(loss_sum)
    result: dict[str, Any] = {"loss": (loss_sum[0] / loss_sum[1].clamp(min=1)).item()}
    if num_classes == 1:
        return result | counts.scores()
    scores = counts.compute()
    return result | {"pixel_accuracy": scores["pixel_accuracy"], "miou": scores["miou"], "iou": scores["iou"].tolist()}


def fit(
    model: nn.Module,
    train_loader: Any,
    val_loader: Any,
    loss_fn: nn.Module,
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    class_names: list[str] | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train for ``config.num_epochs``, validating and checkpointing after every epoch.

    Writes ``last.pt`` (every epoch), ``best.pt`` (best validation Dice or mIoU) and
    ``history.json`` in ``out_dir``. With ``resume=True`` it continues from ``last.pt``; an
    existing ``last.pt`` is otherwise only replaced with ``overwrite=True``.

    Args:
        model: A U-Net (wrapped in DistributedDataParallel when training on several processes).
        on_epoch_end: Called with the history after each epoch (notebooks redraw curves there).

    Returns:
        The history: one dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_dice`` or
        ``val_miou``, ``lr``, ``seconds``, ...).
    """
    out_dir = Path(out_dir)
    device = next(model.parameters()).device
    core = model.module if hasattr(model, "module") else model  # the U-Net inside DDP
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, len(train_loader))
    amp_dtype = autocast_dtype(device, config.amp)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    history: list[dict[str, Any]] = []
    start_epoch, best = 0, -math.inf
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    for stale in out_dir.glob(".*.pt.*.tmp") if is_main_process() else ():
        stale.unlink(missing_ok=True)  # left by a write that a crash cut short; never a checkpoint
    if resume and last_path.is_file():
        state = load_checkpoint(last_path, map_location=device)
        stored = TrainConfig.from_dict(state["config"])
        runtime = dict(device=config.device, num_workers=config.num_workers, cache=config.cache)  # free to change
        if dataclasses.replace(stored, **runtime) != config:
            changed = [k for k, v in config.to_dict().items() if stored.to_dict()[k] != v and k not in runtime]
            raise InputError(
                f"{last_path}: was trained with other settings ({', '.join(changed)}); resume with the stored config"
            )
        load_weights(core, state["model"], last_path)
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, history, best = state["epoch"], state["history"], state["best"]
    elif last_path.is_file() and not (overwrite or resume):
        raise InputError(
            f"{last_path}: a checkpoint is already there; pass --resume to continue it, --overwrite to replace it, or choose another --out"
        )
    key = config.best_metric

    for epoch in range(start_epoch + 1, config.num_epochs + 1):
        torch.manual_seed(epoch_seed(config.seed, epoch))  # a replayed epoch is the one that was lost
        if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(
            model,
            train_loader,
            loss_fn,
            optimizer,
            device=device,
            scheduler=scheduler,
            scaler=scaler,
            amp_dtype=amp_dtype,
            channels_last=config.channels_last,
            epoch=epoch,
            progress=progress,
        )
        val = evaluate(core, val_loader, loss_fn, device, config.num_classes, config.threshold, amp_dtype, progress)
        row = {"epoch": epoch, **train, **{f"val_{k}": v for k, v in val.items()}}
        row.update(lr=lr, seconds=time.perf_counter() - started)
        history.append(row)
        improved = row[key] > best
        best = max(best, row[key])
        if is_main_process():
            state = {
                "model": core.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch,
                "config": config.to_dict(),
                "arch": dict(core.arch),
                "metrics": {k: v for k, v in row.items() if not isinstance(v, list)},
                "history": history,
                "best": best,
                "class_names": list(class_names or []),
            }
            if improved:
                save_checkpoint(state, best_path)
            save_checkpoint(state, last_path)  # last, so a crash between the two never loses an epoch
            write_json(history, out_dir / "history.json")
        if on_epoch_end is not None:
            on_epoch_end(history)
    return history


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    datasets: tuple[Dataset, Dataset] | None = None,
    device: torch.device | None = None,
    threads: int | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train the U-Net a config describes: seed, data, model, loss, then :func:`fit` into ``out_dir``.

    Inside a ``torch.distributed`` process group (``torchrun``) the model is wrapped in
    DistributedDataParallel and each process trains on its shard of the data.

    Args:
        config: What to train (a recipe, maybe changed with ``dataclasses.replace``).
        out_dir: Run folder for ``best.pt``, ``last.pt`` and ``history.json``.
        resume: Continue from ``out_dir/last.pt``.
        overwrite: Replace the checkpoints of an earlier run in ``out_dir``.
        datasets: ``(train, val)`` datasets already built from ``config``, to reuse their cache.
        device: Where to train; by default ``config.device``.
        threads: CPU threads for PyTorch (results are bit-identical only with the same count).
        progress: Show progress bars.
        on_epoch_end: Called with the history after each epoch (e.g. ``viz.LiveHistory``).

    Returns:
        The history, one dict per epoch (see :func:`fit`).
    """
    seed_everything(config.seed, threads=threads)
    device = device or pick_device(config.device)
    train_set, val_set = datasets or build_datasets(config)
    config = fill_classes(config, train_set)  # folder data: the class names, and so the loss, come from the data
    train_loader, val_loader = build_loaders(config, train_set, val_set)
    model = build_model(config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dist.is_available() and dist.is_initialized():
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = make_loss(config.loss, config.num_classes)
    return fit(
        model,
        train_loader,
        val_loader,
        loss_fn,
        config,
        out_dir,
        resume=resume,
        overwrite=overwrite,
        class_names=class_names_for(config),
        progress=progress,
        on_epoch_end=on_epoch_end,
    )
