"""The training loop: ``train_one_epoch``, ``evaluate`` and ``fit``, as plain functions.

``fit`` adds what a long run needs: per-epoch seeding (so a resumed run is bit-identical to an
uninterrupted one), atomic best/last checkpoints, a NaN guard and a history to plot.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from unet_lib.checkpoint import load_checkpoint, load_weights, save_checkpoint
from unet_lib.config import TrainConfig
from unet_lib.errors import InputError
from unet_lib.metrics import ConfusionMatrix, dice_per_image
from unet_lib.model import UNet
from unet_lib.runtime import all_reduce, autocast_dtype, is_main_process, keep_freed_memory


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def build_model(config: TrainConfig) -> UNet:
    """The U-Net a config describes."""
    return UNet(3, config.num_classes, config.features, config.block, config.upsample)


def predict_labels(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Logits (B, C, H, W) -> label map (B, H, W): sigmoid > threshold for C == 1, else argmax."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > math.log(threshold / (1 - threshold))).long()  # sigmoid(x) > t  <=>  x > logit(t)
    return logits.argmax(dim=1)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
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


@torch.inference_mode()
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
    """Loss and segmentation metrics over ``loader`` (summed across processes when distributed).

    Returns:
        For one class (binary): ``loss``, ``pixel_accuracy``, ``dice`` (mean per-image Dice, the
        Kaggle Carvana metric), ``precision``, ``recall``, ``iou``. For several classes: ``loss``,
        ``pixel_accuracy``, ``miou`` and per-class ``iou`` (a list, NaN for absent classes).
    """
    model.eval()
    matrix = ConfusionMatrix(max(num_classes, 2))
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss * images, dice sum, images
    for images, masks in tqdm(loader, desc="evaluate", leave=False, disable=not progress, dynamic_ncols=True):
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(images)
        preds = predict_labels(logits.float(), threshold)  # (B, H, W)
        matrix.update(preds.cpu(), masks.cpu())
        sums[0] += loss_fn(logits.float(), masks).double() * len(images)
        if num_classes == 1:
            sums[1] += dice_per_image(preds, masks).double().sum()
        sums[2] += len(images)
    sums = all_reduce(sums)
    matrix.mat = all_reduce(matrix.mat.to(device)).cpu()
    scores = matrix.compute()
    n = sums[2].clamp(min=1)
    result: dict[str, Any] = {"loss": (sums[0] / n).item(), "pixel_accuracy": float(scores["pixel_accuracy"])}
    if num_classes == 1:
        result.update(
            dice=(sums[1] / n).item(),
            precision=float(scores["precision"][1]),
            recall=float(scores["recall"][1]),
            iou=float(scores["iou"][1]),
        )
    else:
        result.update(miou=float(scores["miou"]), iou=[float(v) for v in scores["iou"]])
    return result


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (the original) or AdamW, from the config, as one fused kernel per step on a CPU or CUDA GPU.

    The fused update does the same arithmetic as the per-tensor loop, about 7x faster for a 31 M
    parameter U-Net on a CPU.
    """
    params = list(model.parameters())
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, fused=fused)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """A per-step one-cycle schedule (warm-up then cosine decay), or None for a constant lr."""
    if config.scheduler == "none":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.num_epochs * steps_per_epoch, pct_start=0.15
    )


def best_metric_name(config: TrainConfig) -> str:
    """The validation metric that picks the best checkpoint: Dice for carvana, mIoU for cityscapes."""
    return "val_dice" if config.num_classes == 1 else "val_miou"


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
    existing ``last.pt`` is otherwise only replaced with ``overwrite=True``. On the CPU it calls
    ``keep_freed_memory`` first: much faster steps, and the process keeps its peak memory.

    Args:
        model: A U-Net (wrapped in DistributedDataParallel when training on several processes).
        on_epoch_end: Called with the history after each epoch (notebooks redraw curves there).

    Returns:
        The history: one dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_dice`` or
        ``val_miou``, ``lr``, ``seconds``, ...).
    """
    out_dir = Path(out_dir)
    device = next(model.parameters()).device
    if device.type == "cpu":
        keep_freed_memory()  # a quarter of a CPU step's time otherwise goes to page faults
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
    key = best_metric_name(config)

    for epoch in range(start_epoch + 1, config.num_epochs + 1):
        # Everything random in an epoch (shuffling, augmentation, worker seeds) follows from this
        # seed, so an epoch replayed after a crash is identical to the one that was lost.
        torch.manual_seed(config.seed * 100_003 + epoch)
        if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(
            model,
            train_loader,
            loss_fn,
            optimizer,
            device,
            scheduler,
            scaler,
            amp_dtype,
            config.channels_last,
            epoch,
            progress,
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
            _write_json(history, out_dir / "history.json")
        if on_epoch_end is not None:
            on_epoch_end(history)
    return history


def _write_json(value: Any, path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(value, indent=1, allow_nan=True))
    os.replace(tmp, path)
