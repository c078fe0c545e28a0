"""Runtime helpers: freed memory is reused instead of page-faulted in again, the fused optimizer
steps like the per-tensor one, and devices are named clearly."""

import copy
import platform
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from unet_lib.config import TrainConfig
from unet_lib.errors import InputError
from unet_lib.runtime import pick_device
from unet_lib.training import make_optimizer

# Allocates and frees a 256 MB tensor five times and prints the page faults of the last four rounds;
# then lets glibc keep freed memory and does the same again. One process for both: each costs 3 s to start.
FAULTS = textwrap.dedent(
    """
    import resource, torch
    from unet_lib.cli.profiles import keep_freed_memory

    def faults():
        torch.ones(64 * 2**20)  # the first round maps the memory in either case
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(4):
            torch.ones(64 * 2**20)  # 256 MB, written, then freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    default = faults()
    print(default, keep_freed_memory(), faults())
    """
)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt and page-fault counts: Linux with glibc only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    pages = 4 * 256 * 2**20 // 4096  # what four fresh 256 MB blocks cost in 4 KB pages
    out = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, check=True).stdout
    default, flag, kept = out.split()
    assert int(default) > 0.9 * pages  # glibc maps every large block afresh, and the kernel zero-fills it
    assert flag == "True"
    assert int(kept) < 0.3 * pages  # freed blocks are handed out again, already mapped (glibc may grow once more)


def test_fused_optimizer_steps_like_the_per_tensor_loop():
    # No batch norm here: its near-zero gradients would amplify rounding differences through Adam's 1/sqrt(v).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1))
    reference = copy.deepcopy(model)
    images, targets = torch.rand(2, 3, 16, 24), torch.rand(2, 1, 16, 24)
    for name in ("adam", "adamw"):
        config = TrainConfig(optimizer=name, lr=1e-2)
        optimizer = make_optimizer(model, config)
        assert optimizer.defaults["fused"] is True
        plain = type(optimizer)(reference.parameters(), lr=config.lr, weight_decay=optimizer.defaults["weight_decay"])
        for net, opt in ((model, optimizer), (reference, plain)):
            for _ in range(5):
                opt.zero_grad()
                nn.functional.mse_loss(net(images), targets).backward()
                opt.step()
        for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_pick_device_on_a_machine_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == pick_device() == pick_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(InputError) as raised:
            pick_device(name)
        assert str(raised.value) == f"device: {name!r} asked for, but no CUDA GPU is available; use --device cpu"
    with pytest.raises(InputError) as raised:
        pick_device("gpu please")
    assert str(raised.value) == "device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu please'"


def test_pick_device_on_a_machine_with_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # nothing is put on the device here
    assert pick_device("auto") == pick_device() == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert pick_device("cpu") == torch.device("cpu")  # asked for by name: the CPU, GPU or not
    with pytest.raises(InputError, match="expected 'auto', 'cpu', 'cuda' or 'cuda:N', got 'cuda:x'"):
        pick_device("cuda:x")
