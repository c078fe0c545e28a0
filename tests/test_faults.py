"""Faults: SIGKILL in the middle of training, then --resume, ends exactly where an uninterrupted run does.

Where the kill lands comes from a fixed seed, printed; ``UNET_FAULT_SEED=N`` tries another one.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import make_carvana_tree

from unet_lib.checkpoint import load_checkpoint

TRAIN = ["-m", "unet_lib", "train", "carvana", "--recipe", "demo", "--size", "32x48", "--features", "4,8"]
EPOCHS = 10  # kills land in epochs 1 to 4: a slow, loaded machine still has epochs left to interrupt
TRAIN += ["--epochs", str(EPOCHS), "--batch-size", "4", "--threads", "1", "--quiet"]
SEED = 0  # where the kill lands; UNET_FAULT_SEED overrides it


def train(data, out, *extra):
    return subprocess.Popen(
        [sys.executable, *TRAIN, "--data", str(data), "--out", str(out), *extra], stderr=subprocess.PIPE, text=True
    )


def every_checkpoint_loads(out, where: str = ""):
    """What is on disk under the real names is always a complete checkpoint; returns last.pt's epoch (0 if none)."""
    epoch = 0
    for name in ("last.pt", "best.pt"):
        path = out / name
        if not path.exists():
            continue
        state = load_checkpoint(path)  # raises if the file were partial or corrupt
        assert {"model", "optimizer", "epoch"} <= set(state), f"{where}: {path} lacks keys ({sorted(state)})"
        epoch = state["epoch"] if name == "last.pt" else epoch
    return epoch


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    data = tmp_path / "data"
    make_carvana_tree(data, cars=5, views=6, size=(96, 64))
    straight = train(data, tmp_path / "straight")
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    seed = int(os.environ.get("UNET_FAULT_SEED", SEED))
    rng = random.Random(seed)
    epoch_seconds = min(row["seconds"] for row in load_checkpoint(tmp_path / "straight" / "last.pt")["history"])
    # The delay is a share of an epoch, so the same seed kills at the same stage on a faster or slower machine.
    kill_epoch, kill_share = rng.randint(1, 4), rng.uniform(0.0, 0.8)
    kill_delay = kill_share * epoch_seconds
    where = f"fault seed {seed} (UNET_FAULT_SEED): kill {kill_delay:.2f} s after epoch {kill_epoch}'s checkpoint"
    print(where)
    out = tmp_path / "killed"
    for attempt in range(3):  # a machine too loaded to kill in time gets another try, killing at once
        run = train(data, out)
        # Wait for that epoch's checkpoint, checking what is on disk all along, then kill a little later.
        while every_checkpoint_loads(out, where) < kill_epoch:
            assert run.poll() is None, f"{where}: training ended early: {run.stderr.read()}"
            time.sleep(0.02)
        time.sleep(kill_delay if attempt == 0 else 0.0)
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            run.wait(timeout=60)
            break
        print(f"{where}: training finished before the kill (attempt {attempt + 1}); again, killing at once")
        shutil.rmtree(out)
    else:
        pytest.fail(f"{where}: training finished before the kill, three times")
    every_checkpoint_loads(out, where)
    epoch_at_kill = load_checkpoint(out / "last.pt")["epoch"]
    where += f"; last.pt held epoch {epoch_at_kill} at the kill"

    resumed = train(data, out, "--resume")
    assert resumed.wait(timeout=300) == 0, f"{where}: {resumed.stderr.read()}"
    expected, got = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(out / "last.pt")
    assert got["epoch"] == EPOCHS and 1 <= epoch_at_kill < EPOCHS, f"{where}; resumed to epoch {got['epoch']}"
    for key, value in expected["model"].items():
        assert torch.equal(got["model"][key], value), f"{where}: {key} differs from the uninterrupted run"
    assert got["metrics"]["val_dice"] == expected["metrics"]["val_dice"], where
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp")), f"{where}: temporary files left behind"
