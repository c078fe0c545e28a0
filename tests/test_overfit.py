"""Overfitting one batch: a tiny model learns it and says so; an optimizer that cannot move says so too."""

import pytest
import torch
from folder_trees import listing, make_folder_tree

from unet_lib.cli import main
from unet_lib.losses import make_loss
from unet_lib.model import UNet
from unet_lib.training import overfit_batch, overfit_message


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread: much faster for these tiny tensors, and steady on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def learnable_batch(num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random pictures whose masks follow from their colours (the class is the brightest channel)."""
    images = torch.rand(4, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    masks = images[:, 0] > 0.5 if num_classes == 1 else images.argmax(1)
    return images, masks.long()


@pytest.mark.parametrize("num_classes, loss", [(1, "bce_dice"), (3, "ce")])
def test_a_tiny_model_learns_one_batch(num_classes, loss):
    torch.manual_seed(0)
    model = UNet(3, num_classes, features=(4, 8))
    loss_fn = make_loss(loss, num_classes)
    batch = learnable_batch(num_classes)
    final, steps = overfit_batch(model, batch, loss_fn, torch.optim.Adam(model.parameters(), lr=1e-2))
    assert final < 0.05 and 0 < steps < 300
    assert loss_fn(model(batch[0]), batch[1]).item() == pytest.approx(final)  # the loss of the weights it left
    assert (
        overfit_message(final, steps)
        == f"overfit-batch: loss {final:.3f} after {steps} steps: the model can learn this batch"
    )


def test_a_batch_that_is_not_learnt_is_reported_as_such():
    torch.manual_seed(0)
    model = UNet(3, 1, features=(4, 8))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-9)  # cannot move the weights
    final, steps = overfit_batch(model, learnable_batch(1), make_loss("bce", 1), optimizer, max_steps=20)
    assert steps == 20 and final > 0.05
    message = overfit_message(final, steps)
    assert message.startswith(f"overfit-batch: loss still {final:.3f} after 20 steps") and "check the masks" in message
    assert "lower the learning rate" in overfit_message(float("nan"), 3)


def test_train_overfit_batch_from_the_command_line(tmp_path, capsys, monkeypatch):
    make_folder_tree(tmp_path / "data", count=6)
    monkeypatch.chdir(tmp_path)
    before = listing(tmp_path)
    args = ["train", "folder", "--data", "data", "--size", "32x48", "--features", "4,8", "--batch-size", "4"]
    capsys.readouterr()
    assert main([*args, "--lr", "1e-2", "--overfit-batch", "--quiet", "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("overfit-batch: loss ") and line.endswith("steps: the model can learn this batch")
    assert listing(tmp_path) == before  # no run folder, nothing written
    assert main([*args, "--overfit-batch", "--resume", "--out", "x"]) == 2
