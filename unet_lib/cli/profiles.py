"""Which profile a notebook runs on this machine (quick or full), and how long its training will take.

Without a GPU a full run (a 31 M-parameter U-Net at 320x480 for 20 epochs) takes hours even on the
sample data, so a machine without one gets the quick profile unless ``UNET_QUICK=0`` asks otherwise.
"""

from __future__ import annotations

import ctypes
import os
import platform
import time
from dataclasses import dataclass

import torch

from unet_lib.errors import InputError
from unet_lib.training import format_duration

QUICK_ENV = "UNET_QUICK"
SMALL_STEP_PIXELS = 2**18  # a CPU times a whole batch up to this many pixels (quick profiles), else one picture


def notebook_profile() -> tuple[bool, str]:
    """Quick mode or not, and why.

    ``UNET_QUICK=1`` or ``0`` decides; unset, a machine with a CUDA GPU runs the full profile and
    one without runs the quick one.

    Returns:
        ``(quick, reason)``, the reason as a short sentence for the notebook to print.
    """
    value = os.environ.get(QUICK_ENV, "").strip()
    if value in ("0", "1"):
        return value == "1", f"{QUICK_ENV}={value} is set"
    if value:
        raise InputError(f"{QUICK_ENV}: expected 0, 1 or unset, got {value!r}")
    if torch.cuda.is_available():
        return False, f"a CUDA GPU is here ({torch.cuda.get_device_name(0)}); UNET_QUICK=1 picks the quick profile"
    return True, "no CUDA GPU here, and a full run would take hours on the CPU; UNET_QUICK=0 runs it anyway"


@dataclass(frozen=True)
class StepTime:
    """One timed training step, and what it predicts for a whole run."""

    seconds: float  # one forward + backward + optimizer step of one batch (data loading not counted)
    batch_size: int
    timed_batch: int  # pictures in the step actually timed (1 on a CPU, scaled to batch_size: time grows linearly)
    image_size: tuple[int, int]
    device: str

    def run_seconds(self, num_train_images: int, num_epochs: int, num_val_images: int = 0) -> float:
        """Expected training time: every epoch's steps, plus validation (a forward pass, about a third of a step)."""
        steps = max(1, num_train_images // self.batch_size)
        val_batches = -(-num_val_images // self.batch_size)
        return num_epochs * (steps + val_batches / 3) * self.seconds


def time_training_step(config, device: str | torch.device = "cpu", repeats: int = 1) -> StepTime:
    """Time one training step of ``config``'s model on random pictures of its size.

    On a GPU, and for small batches, the step holds a whole batch; a large batch on a CPU, where the
    time grows in proportion to the pictures, is timed on one picture and scaled (a full-size CPU
    step takes most of a minute).
    The first step (memory allocation, kernel choice) is not counted; the best of ``repeats`` is.
    Nothing of the notebook's run changes: the model is built and thrown away here, and the global
    random state is restored afterwards.

    Args:
        config: A ``TrainConfig``.
        device: Where to time it.
        repeats: Timed steps after the warm-up one.
    """
    from unet_lib.data import num_outputs
    from unet_lib.losses import make_loss
    from unet_lib.runtime import Precision
    from unet_lib.training import build_model, make_optimizer, train_step

    device = torch.device(device)
    rng_state = torch.get_rng_state()
    model = build_model(config).to(device).train()
    loss_fn = make_loss(config.loss, num_outputs(config))
    optimizer = make_optimizer(model, config)  # the one training uses (fused Adam or AdamW)
    pixels = config.batch_size * config.image_size[0] * config.image_size[1]
    batch = config.batch_size if device.type == "cuda" or pixels <= SMALL_STEP_PIXELS else 1
    images = torch.rand(batch, 3, *config.image_size, device=device)  # (B, 3, H, W)
    masks = torch.randint(0, max(2, num_outputs(config)), (batch, *config.image_size), device=device)  # (B, H, W)
    precision = Precision.choose(device, config.amp, config.channels_last)  # as training runs it: bf16 where native
    model = precision.prepare(model)
    best = float("inf")
    for step in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        train_step(model, images, masks, loss_fn, optimizer, precision)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step:
            best = min(best, time.perf_counter() - start)
    torch.set_rng_state(rng_state)
    return StepTime(best * config.batch_size / batch, config.batch_size, batch, tuple(config.image_size), str(device))


def describe_profile(
    name: str, config, reason: str, step: StepTime, runs: list[tuple[str, int, int]], quick: bool
) -> str:
    """What a notebook's parameters cell prints: the profile, why, and the training time to expect.

    Args:
        name: The recipe's name.
        config: Its ``TrainConfig``.
        reason: Why this profile (from ``notebook_profile``).
        step: ``time_training_step(config)``.
        runs: ``(data, training images, validation images)`` to estimate, e.g. this notebook's data
            and the real dataset.
        quick: Whether this is the quick profile.
    """
    h, w = step.image_size
    scaled = f" (timed on 1 picture, times {step.batch_size})" if step.timed_batch < step.batch_size else ""
    lines = [
        f"profile {name!r}, the {'quick' if quick else 'full'} one: {reason}",
        f"one training step, batch {step.batch_size} at {h}x{w}: {step.seconds:.2f} s on {step.device}{scaled}",
    ]
    for data, num_train, num_val in runs:
        seconds = step.run_seconds(num_train, config.num_epochs, num_val)
        lines.append(
            f"  {config.num_epochs} epochs of this profile on {data}: {num_train:,} training + {num_val:,} validation pictures,"
            f" about {format_duration(seconds)}"
        )
    lines.append("  (reading the pictures not counted: the first epoch also decodes every file)")
    return "\n".join(lines)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt() parameter numbers, from glibc's <malloc.h>


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the system at once (CPU training).

    PyTorch takes each activation from ``malloc``. glibc serves blocks over a few MB with a fresh
    ``mmap`` that the kernel zero-fills page by page on first touch, and unmaps on ``free``: a
    U-Net training step then spends a quarter to a third of its time in page faults (4 million per
    step at 160x240, batch 16). With mmap off and trimming off, freed blocks are reused. The price:
    the process keeps its peak memory until it ends, as PyTorch's CUDA allocator does.

    Returns:
        True when set (Linux with glibc); False elsewhere, where nothing changes.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the C library this process already uses
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
