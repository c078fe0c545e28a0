"""The training engine: a short run learns, resume is bit-exact, NaN stops cleanly, nothing is overwritten."""

import dataclasses

import pytest
import torch
from conftest import make_carvana_tree, strict_json

from unet_lib import InputError
from unet_lib.checkpoint import load_checkpoint
from unet_lib.config import ConfigError, TrainConfig, recipe
from unet_lib.data import build_datasets, build_loaders
from unet_lib.evaluation import predict_labels
from unet_lib.losses import make_loss
from unet_lib.runtime import seed_everything
from unet_lib.training import TrainingDiverged, build_model, fit


@pytest.fixture
def config(tmp_path):
    make_carvana_tree(tmp_path / "data", cars=5, views=4)
    return TrainConfig(
        data_dir=str(tmp_path / "data"), image_size=(32, 48), features=(4, 8), batch_size=4, num_epochs=3, lr=1e-2
    )


def run(config, out_dir, **kwargs):
    seed_everything(config.seed, threads=1)
    loaders = build_loaders(config, *build_datasets(config))
    model = build_model(config)
    history = fit(model, loaders, make_loss(config.loss, 1), config, out_dir, **kwargs)
    return model, history


def test_fit_writes_checkpoints_and_history(config, tmp_path):
    model, history = run(config, tmp_path / "run")
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_dice", "val_pixel_accuracy", "lr"} <= set(history[0])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["epoch"] == 3 and TrainConfig.from_dict(last["config"]) == config
    assert set(last) >= {"model", "optimizer", "scheduler", "epoch", "config", "metrics", "class_names"}
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["metrics"]["val_dice"] == max(row["val_dice"] for row in history)
    assert strict_json((tmp_path / "run" / "history.json").read_text())[-1]["epoch"] == 3


def test_resume_is_bit_exact(config, tmp_path):
    straight, _ = run(config, tmp_path / "straight")

    class Crash(Exception):
        pass

    def crash_after_two(history):
        if len(history) == 2:
            raise Crash

    with pytest.raises(Crash):
        run(config, tmp_path / "resumed", on_epoch_end=crash_after_two)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 2
    resumed, history = run(config, tmp_path / "resumed", if_exists="resume")
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_existing_run_is_not_overwritten(config, tmp_path):
    run(dataclasses.replace(config, num_epochs=1), tmp_path / "run")
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(InputError, match="--resume to continue it, --overwrite to replace it"):
        run(dataclasses.replace(config, num_epochs=1), tmp_path / "run")
    assert (tmp_path / "run" / "last.pt").read_bytes() == before
    with pytest.raises(InputError, match="other settings \\(lr\\)"):
        run(dataclasses.replace(config, num_epochs=1, lr=0.5), tmp_path / "run", if_exists="resume")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(config, tmp_path):
    loss = make_loss("bce_dice", 1)
    calls = {"n": 0}

    def poisoned(logits, masks):
        calls["n"] += 1
        value = loss(logits, masks)
        return value * float("nan") if calls["n"] > 6 else value  # epoch 1 is 3 steps + 1 val batch

    seed_everything(0, threads=1)
    loaders = build_loaders(config, *build_datasets(config))
    with pytest.raises(TrainingDiverged, match="loss is nan at epoch 2"):
        fit(build_model(config), loaders, poisoned, config, tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


def test_predict_labels_thresholds_binary_and_argmaxes_classes():
    logits = torch.tensor([[[[-1.0, 0.1, 3.0]]]])  # (1, 1, 1, 3)
    assert predict_labels(logits).tolist() == [[[0, 1, 1]]]
    assert predict_labels(logits, threshold=0.9).tolist() == [[[0, 0, 1]]]
    multi = torch.tensor([[[[0.0, 2.0]], [[1.0, 0.0]], [[0.5, 3.0]]]])  # (1, 3, 1, 2)
    assert predict_labels(multi).tolist() == [[[1, 2]]]


def test_config_checks_its_fields():
    with pytest.raises(ConfigError, match="not divisible by 16"):
        TrainConfig(image_size=(161, 240))
    with pytest.raises(ConfigError, match="loss: expected one of"):
        TrainConfig(loss="focal")
    with pytest.raises(ConfigError, match="recipe: expected one of"):
        recipe("fast")
    assert recipe("original-320x480").optimizer == "adam"
    assert TrainConfig.from_dict(recipe("demo").to_dict()) == recipe("demo")
