"""Figure: one CPU training step at the original configuration (31 M parameter ``UNet()``, 160x240, batch 16).

The original loop, re-typed (``model(x)``, ``BCEWithLogitsLoss``, Adam step), against the project's
``train_one_epoch`` as the CLI trains on a CPU (the precision ``--amp`` chooses, fused AdamW update, freed memory
kept for reuse), and where that is bf16, also in fp32 (``--no-amp``); plus the step's FLOPs, counted by
``FlopCounterMode``, as a share of the cores' peak in the precision that ran: the fastest dense kernel measured
here in that precision, or the CPU's own figure where it is higher.

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
        precision = Precision.choose(torch.device("cpu"), amp=name == "ours")  # "ours, fp32": --no-amp
        model = precision.prepare(model)
        optimizer, loss_fn = make_optimizer(model, config), make_loss(config.loss, 1)
        batch = [(images, masks)]

        def step():
            train_one_epoch(model, batch, loss_fn, optimizer, precision=precision)

    conn.send("ready")
    while conn.recv() == "step":
        step()
        conn.send("done")


def run(batch_size: int, repeats: int, features: tuple[int, ...] | None = None) -> list[Row]:
    """Seconds per step of the original loop and of ours (and ours in fp32 where ours is bf16), interleaved.

    Args:
        batch_size: 16 is the original configuration.
        repeats: Timed steps per contender, after one warm-up step each.
        features: Encoder widths; None for the original ``(64, 128, 256, 512)``.
    """
    config = recipe("original-160x240", batch_size=batch_size)
    if features is not None:
        config = dataclasses.replace(config, features=tuple(features))
    context = multiprocessing.get_context("spawn")  # a fresh C library state in each
    chosen = Precision.choose(torch.device("cpu"))
    names = ("original", "ours", "ours, fp32") if chosen.dtype is not None else ("original", "ours")
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
        dtypes = {"ours": chosen.dtype or torch.float32, "ours, fp32": torch.float32}
        kernels = {dtype: [measured_peak(dtype=dtype)] for dtype in set(dtypes.values())}
        interleaved(contenders, 1)  # warm-up: optimizer state, oneDNN kernels for these shapes, memory
        times = interleaved(contenders, repeats)
        for dtype, found in kernels.items():
            found.append(measured_peak(dtype=dtype))  # before and after: the better of the two
    finally:
        for pipe in pipes.values():
            with contextlib.suppress(BrokenPipeError):  # a contender that died needs no stop
                pipe.send("stop")
        for process in processes:
            process.join(timeout=60)
    for name, seconds in times.items():
        print(f"  train step, {name}: {spread(seconds)}")

    flops = step_flops(config, batch_size)
    print(f"  train step: {flops / 1e9:.0f} GFLOP per step (forward + backward); ours runs {chosen}")
    millions = sum(p.numel() for p in build_model(config).parameters()) / 1e6
    label = f"train step {config.image_size[0]}x{config.image_size[1]} b{batch_size} {millions:.0f}M"
    ours, original = median(times["ours"]), median(times["original"])
    rows = [speedup_row(label, ours, original, "s", TARGET_SPEEDUP, False)]
    if "ours, fp32" in times:
        fp32 = median(times["ours, fp32"])
        rows.append(
            Row(f"{label}: ours in fp32 (--no-amp)", f"{fp32:.3g} s", f"{original:.3g} s", f"{original / fp32:.2f}x")
        )
    for name in names[1:]:
        dtype = dtypes[name]
        rows.append(flop_share_row(name, flops / median(times[name]), max(kernels[dtype]), dtype, name == "ours"))
    return rows


def flop_share_row(name: str, achieved: float, kernel: tuple[float, str], dtype: torch.dtype, judged: bool) -> Row:
    """The share of the cores' peak in ``dtype`` a step reached, printed with where the peak comes from."""
    peak, source = peak_of(kernel, torch.get_num_threads(), dtype)
    kind = "bf16" if dtype == torch.bfloat16 else "fp32"
    print(
        f"  train step, {name}: {achieved / 1e9:.1f} GFLOP/s, {achieved / peak:.0%} of the cores' {kind} peak"
        f" {peak / 1e9:.1f} GFLOP/s ({source})"
    )
    if achieved > peak:
        print(
            "  train step: the share is above 100 % because the step ran faster than every dense kernel measured"
            " here and than the CPU's reported figure: the cores ran above the reported clock (turbo), or the"
            " machine was busy while the kernels were measured"
        )
    return Row(
        f"train step, {name}: FLOP/s vs the cores' {kind} peak",
        f"{achieved / 1e9:.1f} GFLOP/s",
        f"{peak / 1e9:.1f} GFLOP/s {'spec' if source.startswith('CPU spec') else 'measured'}",
        f"{achieved / peak:.0%}",
        f">= {TARGET_FLOP_SHARE:.0%}" if judged else "-",
        achieved / peak >= TARGET_FLOP_SHARE if judged else None,
    )


def peak_of(measured: tuple[float, str], threads: int, dtype: torch.dtype = torch.float32) -> tuple[float, str]:
    """The cores' peak FLOP/s and where it comes from: the CPU's figure when it is higher than the fastest
    kernel measured, else that kernel (a reported clock below the real one makes the CPU's figure too low)."""
    rate, kernel = measured
    found = f"fastest kernel measured: {kernel} at {rate / 1e9:.1f} GFLOP/s"
    spec = spec_peak(threads, dtype)
    if spec is None:
        return rate, f"measured, the CPU reports no vector width and clock; {found}"
    if spec[0] >= rate:
        return spec[0], f"CPU spec, {spec[1]}; {found}"
    return rate, f"measured, above the CPU spec {spec[0] / 1e9:.1f} GFLOP/s ({spec[1]}); {found}"
