"""Training: ``train_step``, ``train_one_epoch`` and ``fit`` as plain functions, and ``train``, the one entry
that turns a config into a trained run (the command line, the demo and the notebooks all call it)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from unet_lib.checkpoint import load_checkpoint, load_weights, new_run_dir, save_checkpoint, write_json
from unet_lib.config import TrainConfig, recipe
from unet_lib.data import DATASETS, best_metric, build_datasets, build_loaders, class_names, configure, num_outputs
from unet_lib.data.check import check_tree, loss_weights
from unet_lib.data.pairs import Layout
from unet_lib.errors import InputError
from unet_lib.evaluation import Scores, Tiled, evaluate, forward
from unet_lib.losses import make_loss
from unet_lib.model import UNet
from unet_lib.runtime import (
    Precision,
    all_reduce,
    init_distributed,
    is_distributed,
    is_main_process,
    pick_device,
    seed_everything,
    show_progress,
)

WARMUP_SHARE = 0.15  # one-cycle: the share of all steps spent warming up to the peak lr
ESTIMATE_STEPS = 5  # steps timed in the first epoch (after its first, slow one) before the run's length is told
LONG_CPU_RUN = 3600.0  # seconds: a CPU run longer than this is pointed to the dataset's cpu_recipe
FIRST_STEPS = 20  # steps of each epoch whose losses the history keeps (first_losses): what the doctor reads
EPOCH_SEED_STRIDE = 100_003  # a prime larger than any epoch count: (seed, epoch) pairs never share a seed
EPOCH_LINE_SCORES = ("val_dice", "val_miou", "val_pixel_accuracy")  # what an epoch's line shows, when scored

History = list[dict[str, Any]]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def build_model(config: TrainConfig) -> UNet:
    """The U-Net a config describes (its output channels come from the dataset's classes)."""
    return UNet(3, num_outputs(config), config.features, config.block, config.upsample)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (the original) or AdamW, from the config, fused into one kernel per step (the same arithmetic as
    the per-tensor loop, about 7x faster for a 31 M parameter U-Net on a CPU)."""
    params = list(model.parameters())
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, fused=fused)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-step one-cycle schedule (warm-up then cosine decay), or None for a constant lr."""
    if config.scheduler == "none":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.num_epochs * steps_per_epoch, pct_start=WARMUP_SHARE
    )


def format_duration(seconds: float) -> str:
    """``0.4 s``, ``42 s``, ``3.5 min``, ``2.1 h`` or ``3.2 days``: the unit a person would say."""
    if seconds < 9.5:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def step_work(config: TrainConfig) -> float:
    """A training step's work, up to a constant: each level's 3x3 convolutions cost its width squared per pixel,
    and each level down has a quarter of the pixels."""
    height, width = config.crop or config.image_size
    return config.batch_size * height * width * sum(f * f / 4**level for level, f in enumerate(config.features))


class Stopwatch:
    """A run's first training epoch, timed: after ``ESTIMATE_STEPS`` steps (the first, slow one not counted;
    reading the pictures counted) it prints how long an epoch and the whole run will take on this machine, e.g.
    ``time: 1.84 s a step: about 9.4 min an epoch, 3.1 h for 20 epochs``, and on a CPU, for a run of more
    than ``LONG_CPU_RUN`` seconds, the recipe that fits one."""

    def __init__(self, loader: Iterable, config: TrainConfig, val_batches: int, epochs: int):
        self.loader, self.config, self.val_batches, self.epochs = loader, config, val_batches, epochs

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        return self.timed(iter(self.loader))  # the loader's iterator made now, as without the watch (it draws seeds)

    def timed(self, batches: Iterator) -> Iterator:
        """``batches``, printing the estimate once ``ESTIMATE_STEPS`` steps on them are done."""
        started, step = 0.0, 0
        for step, batch in enumerate(batches):
            yield batch  # resumed once the step on it is done
            if step == 0:
                started = time.perf_counter()
            elif step == ESTIMATE_STEPS:
                tqdm.write(self.estimate((time.perf_counter() - started) / step))
        if 0 < step < ESTIMATE_STEPS:  # a short epoch: the steps it had
            tqdm.write(self.estimate((time.perf_counter() - started) / step))

    def estimate(self, seconds: float) -> str:
        """The line for steps of ``seconds`` each: validation counts a third of a step per batch (no backward)."""
        epoch = seconds * (len(self.loader) + self.val_batches / 3)
        line = f"time: {seconds:.2f} s a step: about {format_duration(epoch)} an epoch, "
        line += f"{format_duration(epoch * self.epochs)} for {self.epochs} epochs"
        name = DATASETS[self.config.dataset].cpu_recipe
        fits = recipe(name)
        if self.config.device == "cpu" or not torch.cuda.is_available():
            per_picture = step_work(fits) / fits.batch_size / (step_work(self.config) / self.config.batch_size)
            small = epoch * fits.num_epochs * per_picture  # the same pictures, each that much less work
            if epoch * self.epochs > LONG_CPU_RUN and small < epoch * self.epochs / 2:
                height, width = fits.image_size
                line += (
                    f"; on a CPU, --recipe {name} ({fits.features} wide at"
                    f" {height}x{width}, {fits.num_epochs} epochs) would take about {format_duration(small)}"
                )
        return line


def train_step(
    model: nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    precision: Precision | None = None,
) -> torch.Tensor:
    """One gradient step on one batch (forward, loss, backward, update) of a model in training mode.

    Args:
        images: float [B, 3, H, W] in [0, 1], on the model's device.
        masks: int64 [B, H, W] class indices (255: ignored).

    Returns:
        The batch's loss before the step (a detached scalar); ``TrainingDiverged`` if it is NaN or infinite.
    """
    precision = precision or Precision()
    if precision.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    loss = loss_fn(forward(model, images, precision.dtype), masks)  # the loss in fp32, whatever the autocast dtype
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    if precision.scaler is not None:
        precision.scaler.scale(loss).backward()
        precision.scaler.step(optimizer)
        precision.scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach()


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    precision: Precision | None = None,
    epoch: int = 1,
) -> dict[str, Any]:
    """One pass over ``loader``, a gradient step (and a scheduler step) per batch: ``{"train_loss": the mean loss
    over the images seen}`` (over all processes when distributed), and the ``first_losses`` of its first steps."""
    device = next(model.parameters()).device
    model.train()
    loss_sum = torch.zeros(2, device=device, dtype=torch.float64)  # loss * images, images
    first: list[float] = []  # a loss rising over the first steps says the learning rate is too high
    bar = tqdm(loader, desc=f"epoch {epoch} train", leave=False, disable=not show_progress(), dynamic_ncols=True)
    for step, (images, masks) in enumerate(bar):
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        try:
            loss = train_step(model, images, masks, loss_fn, optimizer, precision)
        except TrainingDiverged as err:
            raise TrainingDiverged(
                f"{err} at epoch {epoch}, step {step + 1}: training diverged; "
                "lower the learning rate (--lr) or turn off mixed precision (--no-amp); the last good checkpoint is kept"
            ) from None
        if scheduler is not None:
            scheduler.step()
        loss_sum[0] += loss * len(images)
        loss_sum[1] += len(images)
        first += [loss.item()] if step < FIRST_STEPS else []
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    totals = all_reduce(loss_sum)
    return {"train_loss": (totals[0] / totals[1].clamp(min=1)).item(), "first_losses": first}


def fit(
    model: nn.Module,
    loaders: tuple[Iterable, Iterable],
    loss_fn: nn.Module,
    config: TrainConfig,
    out_dir: str | Path,
    if_exists: Literal["error", "resume", "overwrite"] = "error",
    on_epoch_end: Callable[[History], None] | None = None,
) -> History:
    """Train for ``config.num_epochs``, validating after each epoch, writing ``last.pt`` (every epoch), ``best.pt``
    (best validation Dice or mIoU) and ``history.json`` in ``out_dir``.

    Args:
        model: A U-Net (wrapped in DistributedDataParallel when training on several processes).
        loaders: ``(train_loader, val_loader)``.
        if_exists: When ``out_dir`` already holds a ``last.pt``: stop with an error, continue it
            (``"resume"``, bit-identical to a run never interrupted) or replace it (``"overwrite"``).
        on_epoch_end: Called with the history after each epoch's line, by the main process
            (notebooks pass ``viz.LiveHistory`` to redraw the curves).

    Returns:
        One dict per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_dice`` or ``val_miou``, ``lr``, ...
    """
    train_loader, val_loader = loaders
    out_dir = Path(out_dir)
    device = next(model.parameters()).device
    core = model.module if hasattr(model, "module") else model  # the U-Net inside DDP
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, len(train_loader))
    precision = Precision.choose(device, config.amp, config.channels_last)
    parts = {"optimizer": optimizer, "scheduler": scheduler, "scaler": precision.scaler}  # saved beside the model
    history: History = []
    start_epoch, best = 0, -math.inf
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    for stale in out_dir.glob(".*.pt.*.tmp") if is_main_process() else ():
        stale.unlink(missing_ok=True)  # left by a write that a crash cut short; never a checkpoint
    if if_exists == "resume" and last_path.is_file():
        state = load_checkpoint(last_path, map_location=device)
        stored = dataclasses.replace(TrainConfig.from_dict(state["config"]), **config.runtime_fields()).to_dict()
        if changed := [k for k, v in config.to_dict().items() if stored[k] != v]:
            raise InputError(
                f"{last_path}: was trained with other settings ({', '.join(changed)}); resume with the stored config"
            )
        load_weights(core, state["model"], last_path)
        for name, part in parts.items():
            if part is not None and state.get(name):  # None: not used in this run
                part.load_state_dict(state[name])
        start_epoch, history, best = state["epoch"], state["history"], state["best"]
    elif last_path.is_file() and if_exists == "error":
        raise InputError(
            f"{last_path}: a checkpoint is already there; pass --resume to continue it, --overwrite to replace it, or choose another --out"
        )
    key, num_classes = best_metric(config), num_outputs(config)

    for epoch in range(start_epoch + 1, config.num_epochs + 1):
        # Shuffling, augmentation and worker seeds follow from the epoch's seed, which depends only on the run's
        # seed and the epoch: an epoch replayed after a crash is the one that was lost.
        torch.manual_seed(config.seed * EPOCH_SEED_STRIDE + epoch)
        if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        first = epoch == start_epoch + 1 and is_main_process()  # timed, to say how long the run will take
        timed = Stopwatch(train_loader, config, len(val_loader), config.num_epochs - start_epoch) if first else None
        train = train_one_epoch(model, timed or train_loader, loss_fn, optimizer, scheduler, precision, epoch)
        scored = Tiled(core, config.crop) if config.crop else core  # trained on crops: whole pictures, in tiles
        val = evaluate(scored, val_loader, [Scores(num_classes, [config.threshold])], loss_fn, precision.dtype)
        row = {"epoch": epoch, **train, **{f"val_{k}": v for k, v in val.items()}}
        row.update(lr=lr, seconds=time.perf_counter() - started)
        history.append(row)
        improved, best = row[key] > best, max(best, row[key])
        if is_main_process():
            state = {
                "model": core.state_dict(),
                **{name: part.state_dict() if part is not None else None for name, part in parts.items()},
                "epoch": epoch,
                "config": config.to_dict(),
                "arch": dict(core.arch),
                "metrics": {k: v for k, v in row.items() if not isinstance(v, list)},
                "history": history,
                "best": best,
                "class_names": class_names(config),
            }
            if improved:
                save_checkpoint(state, best_path)
            save_checkpoint(state, last_path)  # last, so a crash between the two never loses an epoch
            write_json(history, out_dir / "history.json")
            # One line, readable in a log file: "epoch 3/20  train loss 0.4120  val loss 0.3980  val dice 0.9412  41 s"
            losses = f"train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}"
            scores = "".join(f"  {k.replace('_', ' ')} {row[k]:.4f}" for k in EPOCH_LINE_SCORES if k in row)
            print(f"epoch {epoch}/{config.num_epochs}  {losses}{scores}  {row['seconds']:.0f} s", flush=True)
            if on_epoch_end is not None:
                on_epoch_end(history)
    return history


def check_data(config: TrainConfig) -> tuple[Any, list[float]]:
    """check-data's checks on the config's data, run by the first process: the first problem stops training in
    one line, before a run folder is made; every process stops, or none. Returns what the check found that
    building the datasets would otherwise read again (a folder's classes), and the loss weights it suggests."""
    found = [None, None, []]  # (the first problem, the classes, the loss weights)
    if is_main_process():
        try:
            size, depth = config.image_size, len(config.features)
            report = check_tree(config.data_dir, config.dataset, size, depth, show_progress(), Layout.of(config))
            more = f" (and {len(report.problems) - 1} more: python -m unet_lib check-data {config.data_dir})"
            first = report.problems[0] + (more if len(report.problems) > 1 else "") if report.problems else None
            found = [first, report.classes, loss_weights(report)]
        except InputError as err:
            found = [str(err), None, []]
    if is_distributed():
        dist.broadcast_object_list(found, src=0)
    if found[0] is not None:
        raise InputError(found[0])
    return found[1], found[2]


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    datasets: tuple[Dataset, Dataset] | Callable[[TrainConfig, Any], tuple[Dataset, Dataset]] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    on_epoch_end: Callable[[History], None] | None = None,
    probe: Callable[[nn.Module, Dataset, nn.Module, TrainConfig, Precision], Any] | None = None,
) -> History:
    """Train the U-Net a config describes: check the data, build it, seed, build the model and loss, then :func:`fit`.
    Under ``torchrun``, the model is wrapped in DistributedDataParallel and each process trains on its shard.

    Args:
        out_dir: The run folder (None: a new ``models/<dataset>/run-NNN``).
        datasets: ``(train, val)`` already built from ``config`` (and so not checked again), or a
            function ``(config, what check-data found) -> (train, val)`` called after the checks
            (the command line's plugs a picture cache in); None: :func:`~unet_lib.data.build_datasets`.
        resume, overwrite: Continue or replace an earlier run in ``out_dir`` (a resumed run's config must
            match, except where and how it runs); neither: an earlier run there is an error.
        probe: Instead of a run, ``probe(model, train_set, loss_fn, config, precision)``, with the pictures
            not augmented, and what it returns; nothing is written. ``unet_lib.inspect.overfit.overfit_check``
            is ``train --overfit-batch`` (can the model learn the masks?), ``unet_lib.inspect.lr_find.lr_find``
            is ``lr-find`` (which learning rate?).

    Returns:
        The history (see :func:`fit`), or what ``probe`` returned.
    """
    joined = init_distributed(config.device)  # under torchrun: this process's device
    try:
        device = joined or pick_device(config.device)
        if probe is not None:
            config = dataclasses.replace(config, augment="none")  # the same pictures every step
        seed_everything(config.seed, threads=config.threads)
        checked = datasets is None or callable(datasets)
        weigh = config.class_weights != "none" and not config.loss_weights
        known, weights = check_data(config) if checked or weigh else (None, [])  # a data problem ends here
        if checked:
            datasets = (datasets or build_datasets)(config, known)
        train_set, val_set = datasets
        config = configure(config, train_set)  # folder data: the class names, and so the loss, come from the data
        if weigh:
            config = dataclasses.replace(config, loss_weights=tuple(weights))  # check-data's, stored with the run
        seed_everything(config.seed, threads=config.threads)  # building the data may draw random numbers
        model = build_model(config).to(device)
        loss_fn = make_loss(config.loss, num_outputs(config), config.loss_weights).to(device)
        precision = Precision.choose(device, config.amp, config.channels_last)  # bf16 where the device computes it
        model = precision.prepare(model)
        if probe is not None:  # instead of a run: the probe, on this model, loss and precision
            print(precision, flush=True)
            return probe(model, train_set, loss_fn, config, precision)
        out = [out_dir or (new_run_dir(Path("models") / config.dataset) if is_main_process() else None)]
        if is_distributed():
            device_ids = [device.index] if device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
            dist.broadcast_object_list(out, src=0)  # every process writes (the first) or reads the same folder
        out_dir = Path(out[0])
        if is_main_process():
            print(f"training on {device} -> {out_dir}\n{precision}", flush=True)
            if not DATASETS[config.dataset].class_names:  # classes from the data: say which, and how trained
                void = "255" if config.ignore_index is None else f"{config.ignore_index} and 255"
                how = (
                    f"one output channel, {config.loss}"
                    if num_outputs(config) == 1
                    else f"cross-entropy, {void} ignored"
                )
                print(f"{config.data_dir}: {len(config.class_names)} classes ({', '.join(config.class_names)}): {how}")
            if config.loss_weights:
                names = ["pos_weight"] if num_outputs(config) == 1 else class_names(config)
                shown = ", ".join(f"{n} {w:.2f}" for n, w in zip(names, config.loss_weights, strict=True))
                print(f"loss weights ({config.class_weights}, from check-data): {shown}", flush=True)
        loaders = build_loaders(config, train_set, val_set)
        if_exists = "resume" if resume else "overwrite" if overwrite else "error"
        history = fit(model, loaders, loss_fn, config, out_dir, if_exists, on_epoch_end)
        if is_main_process():
            key = best_metric(config)
            best = max(history, key=lambda row: row[key])
            print(f"best {key} {best[key]:.4f} at epoch {best['epoch']}; checkpoints in {out_dir} (best.pt, last.pt)")
            ious = best["val_iou"] if num_outputs(config) > 1 else []  # one per class
            if never := [name for name, iou in zip(class_names(config), ious, strict=False) if iou == 0]:
                hint = "" if config.loss_weights else "; try --class-weights median-frequency"
                print(f"never predicted right in validation (IoU 0): {', '.join(never)}{hint}", flush=True)
        return history
    finally:
        if joined is not None:
            dist.destroy_process_group()
