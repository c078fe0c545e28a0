"""Figure (GPU only): a training step at 320x480, batch 8, ours against the original fp32 loop.

Ours runs under bf16 autocast (fp16 with a gradient scaler where bf16 is missing) with
channels_last, optionally compiled; both report their peak GPU memory. Without CUDA the rows
are skipped, and say so.
"""

from __future__ import annotations

import copy

import torch

from benchmarks.measure import Row, interleaved, median, speedup_row, spread
from benchmarks.train_step import original_step
from unet_lib.config import recipe
from unet_lib.losses import make_loss
from unet_lib.runtime import Precision
from unet_lib.training import build_model, make_optimizer, train_one_epoch

TARGET_SPEEDUP = 2.0  # bf16 + channels_last (+ compile) against the original fp32 loop


def _synchronized(step):
    def run():
        step()
        torch.cuda.synchronize()

    return run


def _peak_memory(step) -> int:
    """Bytes of GPU memory at the peak of one step (its model, gradients and optimizer state included)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def run(repeats: int, compile_model: bool = False) -> list[Row]:
    """Seconds per step and peak memory of the original fp32 loop and of ours, on the first CUDA GPU."""
    if not torch.cuda.is_available():
        print("  cuda: no CUDA GPU on this machine; the CUDA rows were skipped")
        return [Row("cuda train step 320x480 b8", "skipped: no GPU")]
    device = torch.device("cuda")
    config = recipe("original-320x480")
    precision = Precision.choose(device)  # bf16 (fp16 with a scaler where there is none) + channels_last
    amp_dtype = precision.dtype
    torch.manual_seed(0)
    base = build_model(config)
    images = torch.rand(config.batch_size, 3, *config.image_size, device=device)  # (8, 3, 320, 480)
    masks = (torch.rand(config.batch_size, *config.image_size, device=device) > 0.5).long()  # (8, 320, 480)
    targets = masks[:, None].float()  # (8, 1, 320, 480)
    loss_fn = make_loss(config.loss, 1)

    def original():
        model = copy.deepcopy(base).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        return lambda: original_step(model, optimizer, images, targets)

    def ours():
        model = copy.deepcopy(base).to(device).to(memory_format=torch.channels_last)
        optimizer = make_optimizer(model, config)
        net = torch.compile(model) if compile_model else model
        batch = [(images, masks)]
        return lambda: train_one_epoch(net, batch, loss_fn, optimizer, precision=precision)

    name = f"{amp_dtype}".removeprefix("torch.") + " + channels_last" + (" + compile" if compile_model else "")
    peaks = {}
    for label, make in (("original", original), ("ours", ours)):  # one at a time: only its own memory counts
        step = make()
        step()  # warm-up (and compilation)
        peaks[label] = _peak_memory(step)
        del step
        torch.cuda.empty_cache()
    contenders = {"original": _synchronized(original()), "ours": _synchronized(ours())}
    interleaved(contenders, 2)  # warm-up
    times = interleaved(contenders, repeats)
    for label, seconds in times.items():
        print(f"  cuda step, {label}: {spread(seconds)}, peak memory {peaks[label] / 2**30:.2f} GiB")
    return [
        speedup_row(f"cuda step 320x480 b8, {name}", median(times["ours"]), median(times["original"]), "s",
                    TARGET_SPEEDUP, False),
        Row("cuda step: peak memory", f"{peaks['ours'] / 2**30:.2f} GiB", f"{peaks['original'] / 2**30:.2f} GiB",
            f"{peaks['original'] / peaks['ours']:.2f}x"),
    ]  # fmt: skip
