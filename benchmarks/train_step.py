"""Figure: one CPU training step at the original configuration (31 M parameter ``UNet()``, 160x240, batch 16).

The original loop, re-typed (``model(x)``, ``BCEWithLogitsLoss``, Adam step), against the project's
``train_one_epoch``, with and without channels_last; plus the step's FLOPs, counted by
``FlopCounterMode``, as a share of the machine's own matrix-multiply rate.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.measure import Row, interleaved, matmul_flops, median, speedup_row, spread
from unet_lib.config import TrainConfig, recipe
from unet_lib.engine import build_model, make_optimizer, train_one_epoch
from unet_lib.losses import make_loss

TARGET_SPEEDUP = 1.0
TARGET_FLOP_SHARE = 0.5  # the aim: half of what a plain matrix multiply reaches on the same cores


def original_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, targets: torch.Tensor):
    """The original project's training step: forward, BCE with logits, backward, Adam."""
    loss = nn.BCEWithLogitsLoss()(model(images), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def step_flops(config: TrainConfig, batch_size: int) -> int:
    """FLOPs of one forward and backward pass, counted on the meta device (shapes only, no arithmetic)."""
    with torch.device("meta"):
        model = build_model(config)
        images = torch.empty(batch_size, 3, *config.image_size)
        masks = torch.zeros(batch_size, *config.image_size, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        make_loss(config.loss, config.num_classes)(model(images), masks).backward()
    return counter.get_total_flops()


def run(batch_size: int, repeats: int, features: tuple[int, ...] | None = None) -> list[Row]:
    """Seconds per step of the original loop and of ours (NCHW and channels_last), interleaved.

    Args:
        batch_size: 16 is the original configuration.
        repeats: Timed steps per contender, after one warm-up step each.
        features: Encoder widths; None for the original ``(64, 128, 256, 512)``.
    """
    config = recipe("original-160x240", batch_size=batch_size)
    if features is not None:
        config = dataclasses.replace(config, features=tuple(features))
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = build_model(config)
    images = torch.rand(batch_size, 3, *config.image_size)  # (B, 3, 160, 240)
    masks = (torch.rand(batch_size, *config.image_size) > 0.5).long()  # (B, 160, 240)
    loss_fn = make_loss(config.loss, config.num_classes)

    original = copy.deepcopy(model)
    original_optimizer = torch.optim.Adam(original.parameters(), lr=config.lr)
    targets = masks[:, None].float()  # (B, 1, H, W) as the original fed BCEWithLogitsLoss

    def ours_step(channels_last: bool):
        net = copy.deepcopy(model)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(net, config)
        batch = [(images, masks)]
        return lambda: train_one_epoch(
            net, batch, loss_fn, optimizer, device, channels_last=channels_last, progress=False
        )

    contenders = {
        "original": lambda: original_step(original, original_optimizer, images, targets),
        "ours": ours_step(False),
        "ours, channels_last": ours_step(True),
    }
    machine = matmul_flops()
    interleaved(contenders, 1)  # warm-up: Adam state, oneDNN kernels for these shapes
    times = interleaved(contenders, repeats)
    machine = max(machine, matmul_flops())  # before and after: the better of the two
    for name, seconds in times.items():
        print(f"  train step, {name}: {spread(seconds)}")

    flops = step_flops(config, batch_size)
    achieved = flops / median(times["ours"])
    print(
        f"  train step: {flops / 1e9:.0f} GFLOP per step (forward + backward); ours reaches {achieved / 1e9:.1f} GFLOP/s,"
        f" the machine's fp32 matmul {machine / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads)"
    )
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    label = f"train step {config.image_size[0]}x{config.image_size[1]} b{batch_size} {millions:.0f}M"
    nchw, nhwc = median(times["ours"]), median(times["ours, channels_last"])
    return [
        speedup_row(label, nchw, median(times["original"]), "s", TARGET_SPEEDUP, False),
        Row(f"{label}: channels_last vs NCHW", f"{nhwc:.3g} s", f"{nchw:.3g} s", f"{nchw / nhwc:.2f}x"),
        Row(
            "train step: FLOP/s vs fp32 matmul",
            f"{achieved / 1e9:.1f} GFLOP/s",
            f"{machine / 1e9:.1f} GFLOP/s mm",
            f"{achieved / machine:.0%}",
            f">= {TARGET_FLOP_SHARE:.0%}",
            achieved / machine >= TARGET_FLOP_SHARE,
        ),
    ]
