"""Precision: bf16 autocast where the CPU computes it natively, fp32 elsewhere and with --no-amp; a bf16 step
close to the fp32 one, with fp32 weights, gradients and BatchNorm statistics; fp32 checkpoints; and the time a run
will take, told after its first steps."""

import copy
import dataclasses
import os
import subprocess
import sys

import pytest
import torch
from folder_trees import make_folder_tree
from torch import nn

from unet_lib import runtime
from unet_lib.config import recipe
from unet_lib.losses import make_loss
from unet_lib.model import UNet
from unet_lib.runtime import Precision, bf16_support
from unet_lib.training import Stopwatch, format_duration, train, train_step

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
NATIVE = (True, "avx512_bf16")  # what cpu_bf16 says on a CPU with AVX-512 BF16
# One step's loss, bf16 against fp32 on the same batch: bf16 keeps 8 bits of mantissa (about 0.4 % per value),
# but the loss sums many of them in fp32; measured 0.007 % on this batch.
STEP_LOSS_RTOL = 1e-2


def test_bf16_only_where_the_cpu_computes_it():
    assert bf16_support({"fpu", "avx512f", "avx512_bf16"}) == (True, "avx512_bf16")
    assert bf16_support({"amx_bf16", "avx512_bf16"}) == (True, "avx512_bf16+amx_bf16")
    assert bf16_support({"fp", "asimd", "bf16"}) == (True, "bf16")  # an Arm CPU's Features line
    assert bf16_support({"avx2", "fma", "avx512f"}) == (
        False,
        "no avx512_bf16, amx_bf16 or Arm bf16: bf16 would be emulated, slower than fp32",
    )
    assert bf16_support({"avx512_bf16"}, isa="AVX2") == (
        False,
        "ONEDNN_MAX_CPU_ISA=AVX2 hides avx512_bf16: bf16 would be emulated, slower than fp32",
    )
    assert bf16_support({"avx512_bf16"}, isa="avx512_core_bf16")[0]  # an instruction set with bf16 hides nothing
    assert bf16_support({"avx512_bf16"}, kernels=False) == (
        False,
        "avx512_bf16, but this PyTorch has no oneDNN bf16 kernels for it",
    )


def test_the_choice_and_the_line_a_run_starts_with(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16", lambda: NATIVE)
    chosen = Precision.choose(CPU)
    assert (chosen.dtype, chosen.scaler, chosen.channels_last) == (torch.bfloat16, None, True)
    assert str(chosen) == "cpu: bf16 autocast + channels_last (avx512_bf16)"
    assert str(Precision.choose(CPU, channels_last=False)) == "cpu: bf16 autocast (avx512_bf16)"
    off = Precision.choose(CPU, amp=False)  # --no-amp
    assert (off.dtype, off.channels_last, str(off)) == (None, False, "cpu: fp32 (amp off)")
    assert Precision.choose(CPU, amp=False, channels_last=True).channels_last  # given: kept
    monkeypatch.setattr(runtime, "cpu_bf16", lambda: (False, "no avx512_bf16"))
    emulated = Precision.choose(CPU)
    assert (emulated.dtype, emulated.channels_last, str(emulated)) == (None, False, "cpu: fp32 (no avx512_bf16)")


def test_this_cpu_is_judged_by_its_flags_and_a_hidden_instruction_set_gives_fp32():
    """In fresh processes: the choice follows this CPU's own flags; with ``ONEDNN_MAX_CPU_ISA=AVX2`` oneDNN may
    not use bf16 instructions, so fp32 is chosen on any CPU."""
    code = "import torch; from unet_lib.runtime import Precision; print(Precision.choose(torch.device('cpu')))"
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}

    def chosen(**more) -> str:
        done = subprocess.run([sys.executable, "-c", code], env={**env, **more}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    flags = runtime.cpu_flags()
    native = any(flag in flags for flag in runtime.BF16_FLAGS) and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert chosen().startswith("cpu: bf16 autocast + channels_last (" if native else "cpu: fp32 (")
    assert chosen(ONEDNN_MAX_CPU_ISA="AVX2").startswith("cpu: fp32 (")


def test_a_bf16_step_is_close_to_the_fp32_step_and_keeps_everything_it_stores_in_fp32():
    torch.manual_seed(0)
    model = UNet(3, 1, (8, 16, 32))
    images = torch.rand(4, 3, 32, 48, generator=torch.Generator().manual_seed(1))  # (4, 3, 32, 48)
    masks = (images[:, 0] > 0.5).long()  # (4, 32, 48)
    done = {}
    for name, precision in (("fp32", Precision()), ("bf16", Precision(torch.bfloat16, None, True))):
        net = copy.deepcopy(model)  # the same weights; bf16 forced: correct on any CPU, only slower without it
        net = net.to(memory_format=torch.channels_last) if precision.channels_last else net
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
        done[name] = train_step(net, images, masks, make_loss("bce_dice", 1), optimizer, precision), net
    (loss32, net32), (loss16, net16) = done["fp32"], done["bf16"]
    assert loss16.dtype == torch.float32  # the loss is computed on fp32 logits
    assert loss16.item() == pytest.approx(loss32.item(), rel=STEP_LOSS_RTOL)
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in net16.parameters())
    for (name, stored32), stored16 in zip(net32.state_dict().items(), net16.state_dict().values(), strict=True):
        assert stored16.dtype == stored32.dtype, name  # fp32 weights and running statistics, int64 counters
    norms = [(a, b) for a, b in zip(net32.modules(), net16.modules(), strict=True) if isinstance(a, nn.BatchNorm2d)]
    for bn32, bn16 in norms:  # statistics of bf16 activations, kept in fp32: close to the fp32 run's
        torch.testing.assert_close(bn16.running_mean, bn32.running_mean, rtol=0.05, atol=2e-3)
        torch.testing.assert_close(bn16.running_var, bn32.running_var, rtol=0.05, atol=2e-3)


def test_a_bf16_run_says_so_and_writes_fp32_checkpoints(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runtime, "cpu_bf16", lambda: NATIVE)  # forced: the same code path on any CPU
    make_folder_tree(tmp_path / "data", count=10)
    config = recipe("folder-quick", data_dir=str(tmp_path / "data"), image_size=(32, 48), features=(4, 8))
    train(dataclasses.replace(config, num_epochs=1, threads=1), tmp_path / "run")
    lines = capsys.readouterr().out.splitlines()
    assert f"training on cpu -> {tmp_path / 'run'}" in lines
    assert lines[lines.index(f"training on cpu -> {tmp_path / 'run'}") + 1] == str(Precision.choose(CPU))
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    floats = [t for t in state["model"].values() if t.is_floating_point()]
    floats += [t for s in state["optimizer"]["state"].values() for t in s.values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float32 for t in floats)


def test_the_stopwatch_yields_every_batch_and_tells_the_run_once(capsys):
    config = recipe("demo", device="cpu")
    assert list(Stopwatch(list(range(10)), config, 2, 30)) == list(range(10))
    told = [line for line in capsys.readouterr().out.splitlines() if line.startswith("time: ")]
    assert len(told) == 1


def test_the_run_length_and_on_a_long_cpu_run_the_recipe_that_fits():
    config = recipe("recommended", device="cpu")  # the 31 M U-Net at 320x480
    line = Stopwatch(range(508), config, 127, 20).estimate(10.0)  # Kaggle's 4,064 photos, batch 8
    epoch = 10.0 * (508 + 127 / 3)  # a validation batch: a third of a step (a forward pass)
    demo = recipe("demo")

    def work_per_picture(c):  # the 3x3 convolutions: width squared per pixel, a quarter of the pixels a level down
        return c.image_size[0] * c.image_size[1] * sum(f * f / 4**level for level, f in enumerate(c.features))

    small = epoch * demo.num_epochs * work_per_picture(demo) / work_per_picture(config)
    assert line == (
        f"time: 10.00 s a step: about {format_duration(epoch)} an epoch, {format_duration(20 * epoch)} for 20 epochs;"
        f" on a CPU, --recipe demo ((16, 32, 64, 128) wide at 96x144, 30 epochs) would take about"
        f" {format_duration(small)}"
    )
    short = Stopwatch(range(6), recipe("demo", device="cpu"), 2, 30).estimate(0.1)  # minutes: no pointer
    assert short == "time: 0.10 s a step: about 0.7 s an epoch, 20 s for 30 epochs"
