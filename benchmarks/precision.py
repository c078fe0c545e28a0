"""Figure: the precision ``--amp`` chooses on this CPU against exact fp32, side by side in one process.

A training step (``train_step``: forward, loss, backward, fused AdamW) and an inference batch (``predict_logits``)
of the same U-Net on the same batch, in fp32, bf16 autocast, and bf16 autocast + channels_last. Where the CPU has
no native bf16 (``runtime.cpu_bf16``; hide it with ``ONEDNN_MAX_CPU_ISA=AVX2``), ``--amp`` chooses fp32: the figure
then times that choice against ``--no-amp``, which must be no slower, and skips bf16 (emulated: 10-25x slower).
"""

from __future__ import annotations

import copy
import multiprocessing

import torch

from benchmarks.measure import Row, interleaved, median, spread
from unet_lib.cli.profiles import keep_freed_memory
from unet_lib.config import recipe
from unet_lib.evaluation import predict_logits
from unet_lib.losses import make_loss
from unet_lib.model import UNet
from unet_lib.runtime import Precision, cpu_bf16
from unet_lib.training import make_optimizer, train_step

TARGET_STEP = 1.8  # bf16 + channels_last training step against fp32 (the goal on a CPU with native bf16)
TARGET_INFERENCE = 2.3
TARGET_SAME = 0.95  # without native bf16: the chosen precision (fp32) against --no-amp, within the noise


def contenders(features: tuple[int, ...], size: tuple[int, int], batch: int, precisions: dict[str, Precision]):
    """A training step and an inference batch for each precision, on copies of one model and one batch."""
    torch.manual_seed(0)
    base = UNet(3, 1, features)
    images = torch.rand(batch, 3, *size)  # (B, 3, H, W)
    masks = (images[:, 0] > 0.5).long()  # (B, H, W)
    loss_fn, config = make_loss("bce_dice", 1), recipe("demo")
    steps, inferences = {}, {}
    for name, precision in precisions.items():
        model = precision.prepare(copy.deepcopy(base))
        optimizer = make_optimizer(model, config)
        steps[name] = lambda m=model, o=optimizer, p=precision: train_step(m, images, masks, loss_fn, o, p)
        inferences[name] = lambda m=model, p=precision: predict_logits(m, images, amp_dtype=p.dtype)
    return steps, inferences


def run(repeats: int, features: tuple[int, ...] = (16, 32, 64, 128), size=(176, 240), batch: int = 8) -> list[Row]:
    """Seconds per training step and per inference batch, each precision against fp32, measured in a process of
    its own that keeps freed memory for reuse as the command line does on a CPU (it cannot be undone)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(measure, (repeats, features, size, batch, torch.get_num_threads()))


def measure(repeats: int, features: tuple[int, ...], size, batch: int, threads: int) -> list[Row]:
    """:func:`run`'s measurement, in the process it runs in."""
    torch.set_num_threads(threads)
    keep_freed_memory()
    native, why = cpu_bf16()
    chosen = Precision.choose(torch.device("cpu"))
    print(f"  precision: --amp chooses {chosen}", flush=True)
    fp32 = Precision.choose(torch.device("cpu"), amp=False)
    if native:
        precisions = {
            "fp32": fp32,
            "bf16": Precision(torch.bfloat16, None, False, "cpu", why),
            "bf16 + channels_last": chosen,
        }
    else:
        precisions = {"fp32": fp32, "chosen": chosen}
    widths = "..".join(str(f) for f in (features[0], features[-1]))
    label = f"{widths} wide, {size[0]}x{size[1]}, batch {batch}"
    rows = []
    for kind, fns in zip(("train step", "inference"), contenders(features, size, batch, precisions), strict=True):
        interleaved(fns, 1)  # warm-up: kernels chosen for these shapes, memory found
        times = interleaved(fns, repeats)
        for name, seconds in times.items():
            print(f"  precision, {kind} {label}, {name}: {spread(seconds)}", flush=True)
        base = median(times["fp32"])
        for name in list(times)[1:]:
            ratio = base / median(times[name])
            target = TARGET_SAME if not native else TARGET_STEP if kind == "train step" else TARGET_INFERENCE
            judged = name == list(times)[-1]  # the choice --amp makes
            rows.append(
                Row(
                    f"{kind} {label}: {name} vs fp32",
                    f"{median(times[name]):.3g} s",
                    f"{base:.3g} s",
                    f"{ratio:.2f}x",
                    f">= {target:g}x" if judged else "-",
                    ratio >= target if judged else None,
                )
            )
    return rows
