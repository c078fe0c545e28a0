"""Distributed training on the CPU (gloo, 2 processes) against a single process doing the same work.

Evaluation summed over ranks must count each image once; a DistributedDataParallel step on half
a batch per rank must give the whole batch's gradients; ``torchrun -m unet_lib train`` must write
its checkpoints from rank 0 only and resume where it stopped.
"""

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import make_carvana_tree, strict_json
from torch.nn.parallel import DistributedDataParallel

from unet_lib.checkpoint import load_checkpoint, save_checkpoint
from unet_lib.config import TrainConfig, recipe
from unet_lib.data import build_datasets, build_loaders
from unet_lib.evaluation import Scores, evaluate
from unet_lib.losses import make_loss
from unet_lib.training import build_model

WORLD_SIZE = 2
BATCH = 4  # images in the whole batch of the gradient check; each rank takes half


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_config(data) -> TrainConfig:
    # Half of the cars held out: 9 validation images, split 5 / 4 between the two ranks; no random
    # augmentation, so that every process reads the same pictures.
    return recipe(
        "demo", data_dir=str(data), image_size=(32, 48), features=(4, 8), batch_size=2, val_fraction=0.5, augment="none"
    )


def seeded_model(config: TrainConfig) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(config)


def gradient_batch(config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of the training images and their masks."""
    train_set, _ = build_datasets(config)
    images, masks = zip(*(train_set[i] for i in range(BATCH)), strict=True)
    return torch.stack(images), torch.stack(masks)  # (B, 3, H, W), (B, H, W)


def rank_worker(rank: int, data, port: int, result_dir) -> None:
    """One of two processes: evaluate on its shard, then one DDP backward pass on its half of the batch."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        config = small_config(data)
        loss_fn = make_loss(config.loss, 1)
        model = seeded_model(config)
        train_loader, val_loader = build_loaders(config, *build_datasets(config))  # val sharded by rank
        metrics = evaluate(model, val_loader, [Scores(1)], loss_fn)

        images, masks = gradient_batch(config)
        half = slice(rank * BATCH // WORLD_SIZE, (rank + 1) * BATCH // WORLD_SIZE)
        # BatchNorm in eval mode normalises with its running statistics, the same on every rank:
        # in training mode each rank would use the statistics of its own half (SyncBatchNorm needs a GPU).
        model.eval()
        ddp = DistributedDataParallel(model)  # keep a reference: its hooks average the gradients in backward()
        loss_fn(ddp(images[half]), masks[half]).backward()
        local = seeded_model(config).eval()  # the same half without DDP: what a rank sees before averaging
        loss_fn(local(images[half]), masks[half]).backward()
        result = {
            "metrics": metrics,
            "val_images": len(val_loader.dataset),
            "grads": {name: p.grad.clone() for name, p in model.named_parameters()},
            "local_grads": {name: p.grad.clone() for name, p in local.named_parameters()},
        }
        torch.save(result, result_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run ``rank_worker`` in two spawned processes; returns (data folder, results by rank)."""
    root = tmp_path_factory.mktemp("ranks")
    make_carvana_tree(root / "data", cars=6, views=3, size=(96, 64))
    mp.spawn(rank_worker, args=(root / "data", free_port(), root), nprocs=WORLD_SIZE, join=True)
    return root / "data", [torch.load(root / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the ranks: the same kernels, so the same floats
    yield
    torch.set_num_threads(threads)


def test_distributed_evaluation_matches_one_process(two_ranks, one_thread):
    data, results = two_ranks
    config = small_config(data)
    loss_fn = make_loss(config.loss, 1)
    train_set, val_set = build_datasets(config)
    val_loader = build_loaders(config, train_set, val_set)[1]
    expected = evaluate(seeded_model(config), val_loader, [Scores(1)], loss_fn)

    assert [r["val_images"] for r in results] == [5, 4] and len(val_set) == 9  # every image in one shard
    for metrics in results:
        # Scores from the summed confusion matrix are ratios of integer pixel counts: equal to the last bit.
        for key in ("pixel_accuracy", "precision", "recall", "iou"):
            assert metrics["metrics"][key] == expected[key], key
        # Dice and loss are sums of per-image floats, added in another order across ranks.
        assert metrics["metrics"]["dice"] == pytest.approx(expected["dice"], rel=1e-12)
        assert metrics["metrics"]["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert 0 < expected["precision"] < 1 and 0 < expected["recall"] <= 1  # a real mix of right and wrong pixels


def test_ddp_step_on_half_batches_gives_the_whole_batch_gradient(two_ranks, one_thread):
    data, results = two_ranks
    config = small_config(data)
    model = seeded_model(config).eval()
    images, masks = gradient_batch(config)
    make_loss(config.loss, 1)(model(images), masks).backward()

    for name, p in model.named_parameters():
        expected = p.grad
        assert expected.abs().sum() > 0, f"{name} got no gradient"
        for r in results:
            assert torch.allclose(r["grads"][name], expected, rtol=1e-4, atol=1e-7), name
    # The check has teeth: one rank's own half-batch gradient is not the whole batch's.
    differs = [
        not torch.allclose(results[0]["local_grads"][name], p.grad, rtol=1e-4, atol=1e-7)
        for name, p in model.named_parameters()
    ]
    assert sum(differs) > len(differs) // 2


RECORDER = '''
"""The unet_lib command line, logging each checkpoint write with the rank that made it."""
import os
import sys
from pathlib import Path

import unet_lib.training as engine
from unet_lib.cli import main

save = engine.save_checkpoint


def logged_save(state, path):
    with open(os.environ["WRITE_LOG"], "a") as log:
        log.write(f"{os.environ['RANK']} {state['epoch']} {Path(path).name}\\n")
    return save(state, path)


engine.save_checkpoint = logged_save
sys.exit(main())
'''

TRAIN = ["train", "carvana", "--recipe", "original-160x240", "--size", "32x48", "--features", "4,8"]
TRAIN += ["--batch-size", "2", "--workers", "0", "--device", "cpu", "--threads", "1", "--quiet"]


def torchrun(program: list[str], *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(WORLD_SIZE)]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(free_port()), *program, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_torchrun_train_writes_from_rank_0_and_resumes(tmp_path):
    data = tmp_path / "data"
    make_carvana_tree(data, cars=5, views=4, size=(96, 64))
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    log = tmp_path / "writes.txt"
    env = dict(os.environ, WRITE_LOG=str(log))
    common = [*TRAIN, "--data", str(data)]

    first = torchrun([str(recorder)], *common, "--epochs", "2", "--out", str(tmp_path / "run"), env=env)
    assert first.stdout.count("training on cpu") == 1  # printed by rank 0 only
    writes = log.read_text().split("\n")[:-1]
    assert {w.split()[0] for w in writes} == {"0"}  # every write from rank 0
    assert [w for w in writes if w.endswith("last.pt")] == ["0 1 last.pt", "0 2 last.pt"]  # once per epoch
    history = strict_json((tmp_path / "run" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]

    # At a constant learning rate a 2-epoch run is the first 2 epochs of a 3-epoch run: with the
    # stored epoch count raised, the run above is a 3-epoch run stopped after epoch 2.
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    save_checkpoint({**state, "config": {**state["config"], "num_epochs": 3}}, tmp_path / "run" / "last.pt")
    log.unlink()
    torchrun([str(recorder)], *common, "--resume", "--out", str(tmp_path / "run"), env=env)
    assert log.read_text().split("\n")[:-1][-1] == "0 3 last.pt"  # only epoch 3 was trained, by rank 0

    torchrun(["-m", "unet_lib"], *common, "--epochs", "3", "--out", str(tmp_path / "straight"))
    resumed, straight = (
        load_checkpoint(tmp_path / "run" / "last.pt"),
        load_checkpoint(tmp_path / "straight" / "last.pt"),
    )
    assert resumed["epoch"] == straight["epoch"] == 3
    for key, value in straight["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    assert [row["val_dice"] for row in resumed["history"]] == [row["val_dice"] for row in straight["history"]]
