"""Training: ``train_step``, ``train_one_epoch`` and ``fit`` as plain functions, and ``train``, the one entry
that turns a config into a trained run (the command line, the demo and the notebooks all call it)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

from unet_lib.checkpoint import load_checkpoint, load_weights, new_run_dir, save_checkpoint, write_json
from unet_lib.config import TrainConfig
from unet_lib.data import DATASETS, best_metric, build_datasets, build_loaders, class_names, configure, num_outputs
from unet_lib.data.check import check_tree, loss_weights
from unet_lib.data.pairs import Layout
from unet_lib.errors import InputError
from unet_lib.evaluation import Scores, Tiled, evaluate, forward
from unet_lib.losses import make_loss
from unet_lib.metrics import IGNORE_INDEX, BinaryCounts, ConfusionMatrix
from unet_lib.model import UNet
from unet_lib.runtime import (
    all_reduce,
    autocast_dtype,
    init_distributed,
    is_distributed,
    is_main_process,
    pick_device,
    seed_everything,
    show_progress,
)

WARMUP_SHARE = 0.15  # one-cycle: the share of all steps spent warming up to the peak lr
# --overfit-batch. The verdict is judged on the batch's own score, not on a loss level: a loss falls at a pace
# that depends on the loss, the classes and the model, while Dice and mIoU read the same on any data.
OVERFIT_PICTURES = 4  # at most this many: a 31 M parameter U-Net still takes a step every few seconds on 2 cores
OVERFIT_STEPS = 300  # step limit (train --steps): what a 2 M parameter model takes in about a minute on 2 cores
OVERFIT_SECONDS = 60.0  # time limit: the answer comes in about a minute, whatever the model and picture size
OVERFIT_MIN_STEPS = 3  # taken whatever the time: one step's score says nothing of a rise, and the first is slow
# Learned: a fit this close shows the shapes of each picture, not the average mask. mIoU asks less than Dice: it
# is a mean over every class in the batch, thin poles and signs included, and IoU is lower than Dice anyway.
OVERFIT_TARGETS = {"dice": 0.9, "miou": 0.8}
OVERFIT_RISE = 0.1  # clearly risen: the best score closed this share of the gap from its start up to 1
# Following the pictures: the batch scores OVERFIT_MARGIN more with its own masks than with each other's (or
# OVERFIT_SHARE of the most it could, when the masks are much alike), and pictures not trained on keep
# OVERFIT_KEPT of that lead, and more than OVERFIT_NOISE. Measured: real masks keep 20-100 % of it (a 4-channel
# toy at a tenth of its lr included), masks shuffled against their pictures 0-2 %, within +-0.015.
OVERFIT_MARGIN = 0.05
OVERFIT_SHARE = 0.25
OVERFIT_KEPT = 0.1
OVERFIT_NOISE = 0.01
OVERFIT_LINE_SECONDS = 10.0  # without a progress bar, a line this often
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


@dataclass
class Precision:
    """How a step runs: the autocast dtype, gradient scaling and the images' memory layout."""

    dtype: torch.dtype | None = None  # autocast in this dtype; None: fp32
    scaler: torch.amp.GradScaler | None = None  # fp16 only: small gradients would round to zero without it
    channels_last: bool = False

    @classmethod
    def choose(cls, device: torch.device, config: TrainConfig) -> Precision:
        """bf16 (or fp16 with a scaler) on a CUDA GPU when ``config.amp``; fp32 on the CPU."""
        dtype = autocast_dtype(device, config.amp)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        return cls(dtype, scaler, config.channels_last)


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
) -> dict[str, float]:
    """One pass over ``loader``, a gradient step (and a scheduler step) per batch: ``{"train_loss": the mean loss
    over the images seen}`` (over all processes when distributed)."""
    device = next(model.parameters()).device
    model.train()
    loss_sum = torch.zeros(2, device=device, dtype=torch.float64)  # loss * images, images
    bar = tqdm(loader, desc=f"epoch {epoch} train", leave=False, disable=not show_progress(), dynamic_ncols=True)
    for step, (images, masks) in enumerate(bar):
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        try:
            loss = train_step(model, images, masks, loss_fn, optimizer, precision)
        except TrainingDiverged as err:
            raise TrainingDiverged(
                f"{err} at epoch {epoch}, step {step + 1}: training diverged; "
                "lower the learning rate (--lr) or turn off mixed precision; the last good checkpoint is kept"
            ) from None
        if scheduler is not None:
            scheduler.step()
        loss_sum[0] += loss * len(images)
        loss_sum[1] += len(images)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    totals = all_reduce(loss_sum)
    return {"train_loss": (totals[0] / totals[1].clamp(min=1)).item()}


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
    precision = Precision.choose(device, config)
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
        train = train_one_epoch(model, train_loader, loss_fn, optimizer, scheduler, precision, epoch)
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


class _KeepLogits(nn.Module):
    """A loss that keeps the logits of its last call: the batch's score then costs no second forward pass."""

    def __init__(self, loss_fn: nn.Module):
        super().__init__()
        self.loss_fn, self.logits = loss_fn, None

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        self.logits = logits.detach()
        return self.loss_fn(logits, masks)


def batch_score(logits: torch.Tensor, masks: torch.Tensor) -> float:
    """A batch's score: Dice (mean per picture) for one output channel, else mIoU over the classes in its masks.

    Args:
        logits: [B, C, H, W]; one channel: a pixel is foreground where its probability exceeds 0.5.
        masks: int64 [B, H, W] class indices (255: ignored).

    Returns:
        The score, in [0, 1].
    """
    if logits.shape[1] == 1:
        counts = BinaryCounts(device=logits.device)
        counts.update(logits, masks)
        return counts.scores()["dice"]
    matrix = ConfusionMatrix(logits.shape[1], device=logits.device)
    matrix.update(logits.argmax(1), masks)
    found = matrix.compute()
    return found["iou"][found["mat"].sum(1) > 0].mean().item()  # a class predicted but absent is not asked for


def blind_score(logits: torch.Tensor, masks: torch.Tensor) -> float:
    """What the predictions score against the other pictures' masks: their score had they ignored the pictures.
    A prediction that is the same for every picture (an average mask, however good) scores here exactly its
    :func:`batch_score`; only predictions that follow their own pictures score less here than there.

    Args:
        logits: [B, C, H, W] of B >= 2 pictures.
        masks: int64 [B, H, W] class indices (255: ignored).

    Returns:
        The mean :func:`batch_score` over the B - 1 ways of giving each picture another picture's mask.
    """
    return sum(batch_score(logits, masks.roll(k, 0)) for k in range(1, len(masks))) / (len(masks) - 1)


@dataclass
class OverfitResult:
    """What :func:`overfit_batch` saw. Its scores are training-mode scores: BatchNorm normalises with the
    statistics of the pictures scored, as in every training step."""

    metric: str  # "dice" or "miou"
    start: float  # the batch's score at the first step
    best: float  # its best score
    last: float  # its score at the last step
    last_blind: float  # and its blind_score then; NaN with one picture: nothing to compare
    own: float  # at the end, pictures not trained on (or the batch, when there are none): scored with their masks
    blind: float  # and with each other's
    apart: float  # 1 - blind_score of the batch's true masks: how much last can exceed last_blind at most
    held_out: int  # how many pictures not trained on gave own and blind (0: the batch did)
    loss: float  # at the last step; NaN: diverged
    steps: int = 0
    seconds: float = 0.0

    @property
    def risen(self) -> bool:
        """Whether the batch's score clearly rose: closed ``OVERFIT_RISE`` of the gap from its start up to 1."""
        return self.best >= self.start + OVERFIT_RISE * (1 - self.start)

    @property
    def follows(self) -> bool:
        """Whether the predictions follow the pictures, in a way that holds for pictures not trained on."""
        lead = self.last - self.last_blind  # NaN (one picture): nothing to compare, not held against it
        needed = min(OVERFIT_MARGIN, OVERFIT_SHARE * self.apart)  # masks much alike leave little to tell apart
        return not (lead < needed or self.own - self.blind < max(OVERFIT_NOISE, OVERFIT_KEPT * lead))

    @property
    def verdict(self) -> str:
        """``learned``, ``learning slowly``, ``not learning`` or ``diverged``: see :func:`overfit_batch`."""
        if not math.isfinite(self.loss):
            return "diverged"
        if not (self.risen and self.follows):
            return "not learning"
        return "learned" if self.best >= OVERFIT_TARGETS[self.metric] else "learning slowly"


def overfit_batch(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    held_out: tuple[torch.Tensor, torch.Tensor] | None = None,
    limits: tuple[int, float] = (OVERFIT_STEPS, OVERFIT_SECONDS),
    clock: Callable[[], float] = time.perf_counter,
) -> OverfitResult:
    """Take :func:`train_step` s on one batch, scoring the logits of each step, until its score has clearly risen
    to ``OVERFIT_TARGETS`` or a limit is reached: the first check that a model, its loss and the masks fit together.
    Prints a line now and then (``step 40  12 s  loss 0.512  batch dice 0.812``), or a progress bar on a terminal.

    The verdict (:attr:`OverfitResult.verdict`) asks two things. Has the batch's score clearly risen
    (:attr:`OverfitResult.risen`)? Do the predictions follow the pictures (:attr:`OverfitResult.follows`): does
    the batch score more with its own masks than with each other's (:func:`blind_score`), and do pictures not
    trained on keep some of that lead? A network learns masks by heart, even masks shuffled against their
    pictures, in about as many steps as real ones; only real ones teach it something that holds for other
    pictures. Both: *learned* at the target, else *learning slowly*; either one missing: *not learning*.

    Args:
        batch: ``(images, masks)``: float [B, 3, H, W] and int64 [B, H, W] (255: ignored).
        held_out: Other pictures and masks, scored once at the end (None: the batch's last logits are).
        limits: The most steps, and seconds on ``clock``: past ``OVERFIT_MIN_STEPS``, no step begins that would
            end past them at the pace of the last one.

    Returns:
        The scores, the last loss, the steps taken and the time they took.
    """
    device = next(model.parameters()).device
    images, masks = (t.to(device) for t in batch)
    kept, (max_steps, max_seconds) = _KeepLogits(loss_fn), limits
    model.train()  # training mode throughout: the scores come from the training step's own forward pass
    started, shown, took = clock(), -math.inf, 0.0
    unknown = dict.fromkeys(["start", "last", "last_blind", "own", "blind", "apart", "loss"], math.nan)
    result = OverfitResult("", best=-math.inf, held_out=0 if held_out is None else len(held_out[0]), **unknown)
    height, width = images.shape[-2:]
    timed = f" or {max_seconds:.0f} s" if math.isfinite(max_seconds) else ""
    print(f"overfit-batch: {len(images)} pictures at {height}x{width}, up to {max_steps} steps{timed}", flush=True)
    with tqdm(total=max_steps, desc="overfit-batch", leave=False, disable=not show_progress()) as bar:
        while result.steps < max_steps and (
            result.steps < OVERFIT_MIN_STEPS or result.seconds + took <= max_seconds  # at the last step's pace
        ):
            try:
                result.loss = train_step(model, images, masks, kept, optimizer).item()  # before this step's update
            except TrainingDiverged:
                result.loss = math.nan
                return result
            score = batch_score(kept.logits, masks)  # of the weights before this step's update, as the loss
            if result.steps == 0:
                result.metric, result.start = "dice" if kept.logits.shape[1] == 1 else "miou", score
            result.best, result.last, result.steps = max(result.best, score), score, result.steps + 1
            now = clock() - started
            took, result.seconds = now - result.seconds, now
            bar.update()
            bar.set_postfix({"loss": f"{result.loss:.4f}", result.metric: f"{score:.3f}"})
            if bar.disable and result.seconds - shown >= OVERFIT_LINE_SECONDS:
                shown = result.seconds
                line = f"step {result.steps}  {result.seconds:.0f} s  loss {result.loss:.4f}  batch {result.metric}"
                print(f"{line} {score:.3f}", flush=True)
            if result.risen and result.best >= OVERFIT_TARGETS[result.metric]:
                break
    if len(masks) > 1:
        result.last_blind = blind_score(kept.logits, masks)
        labelled, channels = masks.where(masks != IGNORE_INDEX, 0), kept.logits.shape[1]
        truth = labelled[:, None] * 2.0 - 1 if channels == 1 else F.one_hot(labelled, channels).movedim(-1, 1).float()
        result.apart = 1 - blind_score(truth, masks)  # the true masks as logits [B, C, H, W]
    result.own, result.blind = result.last, result.last_blind
    if held_out is not None:
        with torch.no_grad():
            logits = forward(model, held_out[0].to(device))
        result.own, result.blind = (judge(logits, held_out[1].to(device)) for judge in (batch_score, blind_score))
    result.seconds = clock() - started
    return result


def overfit_message(result: OverfitResult) -> str:
    """The verdict of :func:`overfit_batch` in one line, with what to do next."""
    r = result
    ran = f"after {r.steps} steps, {r.seconds:.0f} s"
    if r.verdict == "diverged":
        return f"overfit-batch: diverged: the loss became {r.loss} {ran}: lower the learning rate (--lr)"
    where = f"{r.held_out} pictures it did not train on" if r.held_out else "the batch"
    scores = (
        f"batch {r.metric} {r.best:.3f} (from {r.start:.3f}, target {OVERFIT_TARGETS[r.metric]}) {ran}; "
        f"{where}: {r.own:.3f} with their own masks, {r.blind:.3f} with each other's"
    )
    if r.verdict == "learned":
        return f"overfit-batch: learned: {scores}: the model, the loss and the masks fit together; train for real"
    if r.verdict == "learning slowly":
        return f"overfit-batch: learning, but slowly: {scores}: try a higher --lr or more --steps"
    if not r.risen:
        return (
            f"overfit-batch: not learning: {scores}: the score hardly rose; try a higher --lr or more --steps, "
            "then check the masks against their pictures (check-data)"
        )
    return (
        f"overfit-batch: not learning: {scores}: what it learns holds for no other picture, so the masks do not "
        "follow from the pictures; check them against their pictures (check-data; a mask of another picture?)"
    )


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    datasets: tuple[Dataset, Dataset] | Callable[[TrainConfig, Any], tuple[Dataset, Dataset]] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    on_epoch_end: Callable[[History], None] | None = None,
    overfit: bool | int = False,
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
        overfit: True (at most ``OVERFIT_STEPS`` steps or ``OVERFIT_SECONDS`` seconds), or a step limit (then
            no time limit): instead of a run, :func:`overfit_batch` on up to ``OVERFIT_PICTURES`` training
            pictures (no augmentation, the config's lr held constant) with as many others held out, print its
            verdict (:func:`overfit_message`), and write nothing.

    Returns:
        The history (see :func:`fit`); with ``overfit``, one row: the :class:`OverfitResult` and its ``verdict``.
    """
    joined = init_distributed(config.device)  # under torchrun: this process's device
    try:
        device = joined or pick_device(config.device)
        if overfit:
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
        if overfit:  # a few pictures spread over the training set, the config's learning rate held constant
            count = min(OVERFIT_PICTURES, config.batch_size, len(train_set))
            chosen = [int(i) for i in torch.linspace(0, len(train_set) - 1, count).round()]
            rest = [i for i in range(len(train_set)) if i not in chosen]  # the held-out check's, as many, spread too
            held = [rest[int(i)] for i in torch.linspace(0, len(rest) - 1, min(count, len(rest))).round()]
            batch = default_collate([train_set[i] for i in chosen])
            held_out = default_collate([train_set[i] for i in held]) if len(held) > 1 else None  # two to compare
            # A step limit asked for is kept, however long it takes; by default the time limit comes first.
            limits = (OVERFIT_STEPS, OVERFIT_SECONDS) if overfit is True else (overfit, math.inf)
            result = overfit_batch(model, batch, loss_fn, make_optimizer(model, config), held_out, limits)
            print(overfit_message(result), flush=True)
            return [{**dataclasses.asdict(result), "verdict": result.verdict}]
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        out = [out_dir or (new_run_dir(Path("models") / config.dataset) if is_main_process() else None)]
        if is_distributed():
            device_ids = [device.index] if device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
            dist.broadcast_object_list(out, src=0)  # every process writes (the first) or reads the same folder
        out_dir = Path(out[0])
        if is_main_process():
            print(f"training on {device} -> {out_dir}", flush=True)
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
