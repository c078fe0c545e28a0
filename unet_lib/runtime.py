"""Where training runs: seeds and threads, the device, mixed precision, and the processes of a distributed run."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch
import torch.distributed as dist

from unet_lib.errors import InputError

PROGRESS_ENV = "UNET_PROGRESS"  # "1": progress bars everywhere, "0": none (the command line's --quiet)


def seed_everything(seed: int, threads: int | None = None, deterministic: bool = False) -> None:
    """Seed Python, NumPy and PyTorch; optionally fix the CPU thread count and pick deterministic kernels.
    CPU results are bit-identical across runs only with the same thread count (float sums are split across
    threads), so pass ``threads`` when you compare runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic  # autotuned kernels are faster but may vary


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"`` is the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device: {name!r} asked for, but no CUDA GPU is available; use --device cpu")
    return device


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 on GPUs that support it, else fp16; None (plain fp32) on the CPU or with ``amp=False``."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def show_progress(asked: bool | None = None) -> bool:
    """Whether to draw progress bars: as ``asked``, else as ``$UNET_PROGRESS`` says, else only when someone
    watches them redraw, on a terminal or in Jupyter. In a log file or CI, a bar is a stream of carriage returns."""
    if asked is not None:
        return asked
    if os.environ.get(PROGRESS_ENV) in ("0", "1"):
        return os.environ[PROGRESS_ENV] == "1"
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def is_distributed() -> bool:
    """True inside a ``torch.distributed`` process group (``torchrun``)."""
    return dist.is_available() and dist.is_initialized()


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all processes of a distributed run (a copy); ``tensor`` itself outside one."""
    if is_distributed():
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


def is_main_process() -> bool:
    """True outside distributed training, and on rank 0 inside it."""
    return not is_distributed() or dist.get_rank() == 0


def init_distributed(device: str = "auto") -> torch.device | None:
    """Join the process group ``torchrun`` set up (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), if there is one:
    GPUs talk through NCCL, one per process; CPU processes (``device="cpu"``, or no GPU) through gloo. Returns
    this process's device when it joined (call ``dist.destroy_process_group()`` when done), else None."""
    if is_distributed() or "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    nccl = torch.cuda.is_available() and device != "cpu"
    if nccl:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if nccl else "gloo")
    return torch.device("cuda", local_rank) if nccl else torch.device("cpu")
