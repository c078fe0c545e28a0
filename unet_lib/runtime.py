"""Where training runs: seeds and threads, the device, its precision (bf16 where native), and the processes of a
distributed run."""

from __future__ import annotations

import functools
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

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


# What a CPU reports when it multiplies bf16 natively: x86's AVX-512 BF16 and AMX, Arm's BF16 extension. Without
# them oneDNN emulates bf16 through fp32, and a bf16 convolution is 10-25x slower than the fp32 one (measured).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# oneDNN's instruction sets without bf16 arithmetic: ONEDNN_MAX_CPU_ISA set to one of them keeps oneDNN from bf16.
ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (``/proc/cpuinfo``: x86 ``flags``, Arm ``Features``); elsewhere
    what PyTorch's own CPU check finds of :data:`BF16_FLAGS` (x86 only)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return set(value.split())
    checks = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    return {flag for flag, check in checks.items() if getattr(torch.cpu, check, lambda: False)()}


@functools.cache
def cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively, checked once (:func:`bf16_support` on this machine)."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or ""
    kernels = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return bf16_support(cpu_flags(), isa, kernels)


def bf16_support(flags: set[str], isa: str = "", kernels: bool = True) -> tuple[bool, str]:
    """Whether a CPU computes bf16 natively, and why.

    Args:
        flags: Its feature flags (:func:`cpu_flags`).
        isa: ``$ONEDNN_MAX_CPU_ISA``, the instruction sets oneDNN may use ("": all).
        kernels: Whether this PyTorch's oneDNN has bf16 kernels for it.

    Returns:
        ``(True, "avx512_bf16")``, or False and the reason, e.g. ``"no avx512_bf16, amx_bf16 or Arm bf16: bf16
        would be emulated, slower than fp32"``.
    """
    found = [flag for flag in BF16_FLAGS if flag in flags]
    if not found:
        return False, f"no {', '.join(BF16_FLAGS[:2])} or Arm {BF16_FLAGS[2]}: bf16 would be emulated, slower than fp32"
    if isa.upper() in ISAS_WITHOUT_BF16:
        return False, f"ONEDNN_MAX_CPU_ISA={isa} hides {found[0]}: bf16 would be emulated, slower than fp32"
    if not kernels:
        return False, f"{found[0]}, but this PyTorch has no oneDNN bf16 kernels for it"
    return True, "+".join(found)


@dataclass
class Precision:
    """How a model runs: the autocast dtype, gradient scaling and the memory layout, and why (:meth:`choose`).
    ``str(precision)`` is the line a run starts with, e.g. ``cpu: bf16 autocast + channels_last (avx512_bf16)``."""

    dtype: torch.dtype | None = None  # autocast in this dtype; None: fp32
    scaler: torch.amp.GradScaler | None = None  # fp16 only: small gradients would round to zero without it
    channels_last: bool = False  # NHWC: the model and images laid out channel-innermost
    device: str = "cpu"
    reason: str = ""

    @classmethod
    def choose(cls, device: torch.device, amp: bool = True, channels_last: bool | None = None) -> Precision:
        """bf16 autocast where the device computes it natively: a CPU with bf16 instructions (:func:`cpu_bf16`), a
        CUDA GPU that supports it (else fp16, with a gradient scaler); fp32 elsewhere, or with ``amp=False``.

        Args:
            device: Where the model runs.
            amp: Mixed precision where it is native; False: exact fp32.
            channels_last: The NHWC layout; None: with autocast (its bf16 and fp16 kernels are fastest in NHWC).

        Returns:
            The choice. Weights, losses, metrics and BatchNorm statistics stay fp32 whatever it is: autocast
            runs only the convolutions (and matrix products) in the lower precision.
        """
        dtype, reason = None, "amp off"
        if amp and device.type == "cuda":
            native = torch.cuda.is_bf16_supported()
            dtype = torch.bfloat16 if native else torch.float16
            reason = f"{torch.cuda.get_device_name(device)}{'' if native else ' has no bf16'}"
        elif amp and device.type == "cpu":
            native, reason = cpu_bf16()
            dtype = torch.bfloat16 if native else None
        elif amp:
            reason = f"no autocast on {device.type}"
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        layout = dtype is not None if channels_last is None else channels_last
        return cls(dtype, scaler, layout, device.type, reason)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in this precision's memory layout: converted to channels_last, or as it is."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def __str__(self) -> str:
        name = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[self.dtype]
        scaled = " with gradient scaling" if self.scaler is not None else ""
        layout = " + channels_last" if self.channels_last else ""
        return (
            f"{self.device}: {name}{scaled}{layout} ({self.reason})"
            if self.reason
            else f"{self.device}: {name}{layout}"
        )


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
