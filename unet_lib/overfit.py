"""Overfit one batch: the first check that a model, its loss and the masks fit together.

A network that cannot drive the loss of one fixed batch close to zero will not learn the whole data set
either: the masks, the loss or the learning rate are wrong. It takes a minute instead of a night.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

from unet_lib.config import TrainConfig
from unet_lib.engine import build_model
from unet_lib.losses import make_loss
from unet_lib.optim import make_optimizer
from unet_lib.runtime import seed_everything

TARGET_LOSS = 0.05  # below this the batch is learnt
MAX_STEPS = 300


def overfit_batch(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    target: float = TARGET_LOSS,
    max_steps: int = MAX_STEPS,
    progress: bool = False,
) -> tuple[float, int]:
    """Take gradient steps on one batch until its loss falls below ``target`` or ``max_steps`` steps are taken.

    Args:
        model: The network (in training mode here), on the device the batch is moved to.
        batch: ``(images [B, 3, H, W], masks [B, H, W])``, the same every step.
        loss_fn: Called as ``loss_fn(logits, masks)``.
        optimizer: Steps ``model``'s parameters (a constant learning rate).
        target: The loss that counts as learnt.
        max_steps: The most gradient steps.
        progress: Show a progress bar with the loss.

    Returns:
        ``(loss, steps)``: the batch's loss after ``steps`` gradient steps (NaN if it diverged).
    """
    device = next(model.parameters()).device
    images, masks = (t.to(device) for t in batch)
    model.train()
    bar = tqdm(total=max_steps, desc="overfit-batch", leave=False, disable=not progress)
    for step in range(max_steps + 1):
        loss = loss_fn(model(images), masks)  # the loss after `step` gradient steps
        if loss.item() < target or step == max_steps or not math.isfinite(loss.item()):
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.close()
    return loss.item(), step


def overfit_run(
    config: TrainConfig, dataset: Dataset, device: torch.device, threads: int | None = None, progress: bool = True
) -> tuple[float, int]:
    """:func:`overfit_batch` on the first ``config.batch_size`` items of ``dataset`` with the model, loss and lr of ``config``.

    Build ``dataset`` without augmentation, so every step sees the same pictures.
    """
    seed_everything(config.seed, threads=threads)
    batch = default_collate([dataset[i] for i in range(min(config.batch_size, len(dataset)))])
    model = build_model(config).to(device)
    optimizer = make_optimizer(model, config)  # no schedule: one constant learning rate
    return overfit_batch(model, batch, make_loss(config.loss, config.num_classes), optimizer, progress=progress)


def overfit_message(loss: float, steps: int, target: float = TARGET_LOSS) -> str:
    """One line saying whether the batch was learnt, and what to check when it was not."""
    if not math.isfinite(loss):
        return f"overfit-batch: loss became {loss} after {steps} steps: lower the learning rate (--lr)"
    if loss < target:
        return f"overfit-batch: loss {loss:.3f} after {steps} steps: the model can learn this batch"
    return (
        f"overfit-batch: loss still {loss:.3f} after {steps} steps (target {target}): the model cannot learn even "
        "one batch; check the masks (check-data) and the learning rate (--lr)"
    )
