"""Figure: one CPU training step at the original configuration (31 M parameter ``UNet()``, 160x240, batch 16).

The original loop, re-typed (``model(x)``, ``BCEWithLogitsLoss``, Adam step), against the project's
``train_one_epoch`` as the CLI trains on a CPU (fused AdamW update, freed memory kept for reuse),
with and without channels_last; plus the step's FLOPs, counted by ``FlopCounterMode``, as a share
of the cores' peak: the fastest dense kernel measured here, or the CPU's own figure where it is higher.

Each contender lives in a process of its own: how the C library hands out memory is set per
process, and ours changes it. The parent asks them for one step at a time, in alternating order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
from multiprocessing.connection import Connection

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.measure import Row, interleaved, measured_peak, median, spec_peak, speedup_row, spread
from unet_lib.cli.profiles import keep_freed_memory
from unet_lib.config import TrainConfig, recipe
from unet_lib.losses import make_loss
from unet_lib.runtime import Precision
from unet_lib.training import build_model, make_optimizer, train_one_epoch

TARGET_SPEEDUP = 1.0
TARGET_FLOP_SHARE = 0.5  # the aim: half of the cores' peak


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
        make_loss(config.loss, 1)(model(images), masks).backward()
    return counter.get_total_flops()


def _contender(conn: Connection, name: str, config: TrainConfig, threads: int) -> None:
    """A process owning one contender: it builds the model and data, then runs a step per request."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(config)  # the same weights in every process
    images = torch.rand(config.batch_size, 3, *config.image_size)  # (B, 3, 160, 240)
    masks = (torch.rand(config.batch_size, *config.image_size) > 0.5).long()  # (B, 160, 240)
    if name == "original":
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        targets = masks[:, None].float()  # (B, 1, H, W) as the original fed BCEWithLogitsLoss

        def step():
            original_step(model, optimizer, images, targets)

    else:
        keep_freed_memory()  # as the CLI does on the CPU
        channels_last = name.endswith("channels_last")
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer, loss_fn = make_optimizer(model, config), make_loss(config.loss, 1)
        batch = [(images, masks)]

        def step():
            train_one_epoch(model, batch, loss_fn, optimizer, precision=Precision(channels_last=channels_last))

    conn.send("ready")
    while conn.recv() == "step":
        step()
        conn.send("done")


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
    context = multiprocessing.get_context("spawn")  # a fresh C library state in each
    names = ("original", "ours", "ours, channels_last")
    pipes, processes = {}, []
    for name in names:
        parent, child = context.Pipe()
        process = context.Process(target=_contender, args=(child, name, config, torch.get_num_threads()), daemon=True)
        process.start()
        pipes[name], processes = parent, [*processes, process]
    try:
        for pipe in pipes.values():
            pipe.recv()  # "ready"

        def remote_step(name: str):
            try:
                pipes[name].send("step")
                pipes[name].recv()
            except (EOFError, BrokenPipeError):
                raise RuntimeError(f"train step: the {name!r} process stopped (out of memory?)") from None

        contenders = {name: (lambda name=name: remote_step(name)) for name in names}
        kernels = [measured_peak()]
        interleaved(contenders, 1)  # warm-up: optimizer state, oneDNN kernels for these shapes, memory
        times = interleaved(contenders, repeats)
        kernels.append(measured_peak())  # before and after: the better of the two
    finally:
        for pipe in pipes.values():
            with contextlib.suppress(BrokenPipeError):  # a contender that died needs no stop
                pipe.send("stop")
        for process in processes:
            process.join(timeout=60)
    for name, seconds in times.items():
        print(f"  train step, {name}: {spread(seconds)}")

    flops = step_flops(config, batch_size)
    achieved = flops / median(times["ours"])
    peak, source = peak_of(max(kernels), torch.get_num_threads())
    print(
        f"  train step: {flops / 1e9:.0f} GFLOP per step (forward + backward); ours reaches {achieved / 1e9:.1f} GFLOP/s,"
        f" {achieved / peak:.0%} of the cores' peak {peak / 1e9:.1f} GFLOP/s ({source})"
    )
    if achieved > peak:
        print(
            "  train step: the share is above 100 % because the step ran faster than every dense kernel measured"
            " here and than the CPU's reported figure: the cores ran above the reported clock (turbo), or the"
            " machine was busy while the kernels were measured"
        )
    millions = sum(p.numel() for p in build_model(config).parameters()) / 1e6
    label = f"train step {config.image_size[0]}x{config.image_size[1]} b{batch_size} {millions:.0f}M"
    nchw, nhwc = median(times["ours"]), median(times["ours, channels_last"])
    return [
        speedup_row(label, nchw, median(times["original"]), "s", TARGET_SPEEDUP, False),
        Row(f"{label}: channels_last vs NCHW", f"{nhwc:.3g} s", f"{nchw:.3g} s", f"{nchw / nhwc:.2f}x"),
        Row(
            "train step: FLOP/s vs the cores' peak",
            f"{achieved / 1e9:.1f} GFLOP/s",
            f"{peak / 1e9:.1f} GFLOP/s {'spec' if source.startswith('CPU spec') else 'measured'}",
            f"{achieved / peak:.0%}",
            f">= {TARGET_FLOP_SHARE:.0%}",
            achieved / peak >= TARGET_FLOP_SHARE,
        ),
    ]


def peak_of(measured: tuple[float, str], threads: int) -> tuple[float, str]:
    """The cores' peak FLOP/s and where it comes from: the CPU's figure when it is higher than the fastest
    kernel measured, else that kernel (a reported clock below the real one makes the CPU's figure too low)."""
    rate, kernel = measured
    found = f"fastest kernel measured: {kernel} at {rate / 1e9:.1f} GFLOP/s"
    spec = spec_peak(threads)
    if spec is None:
        return rate, f"measured, the CPU reports no vector width and clock; {found}"
    if spec[0] >= rate:
        return spec[0], f"CPU spec, {spec[1]}; {found}"
    return rate, f"measured, above the CPU spec {spec[0] / 1e9:.1f} GFLOP/s ({spec[1]}); {found}"
