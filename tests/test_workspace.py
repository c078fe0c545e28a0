"""Workspace helpers: quick mode, the repository root, existing data is used and never replaced."""

import os
import time
from pathlib import Path

import pytest
import torch

from unet_lib import InputError, recipe
from unet_lib.cli import profiles, workspace
from unet_lib.data.carvana import CarvanaDataset


def fake_repo(tmp_path):
    (tmp_path / "unet_lib").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "notebooks").mkdir()
    return tmp_path


def test_quick_mode_follows_the_environment_then_the_machine(monkeypatch):
    monkeypatch.setenv("UNET_QUICK", "1")
    assert workspace.quick_mode()
    monkeypatch.setenv("UNET_QUICK", "0")
    assert not workspace.quick_mode()  # forced full mode, even without a GPU
    monkeypatch.setenv("UNET_QUICK", "yes")
    with pytest.raises(InputError, match="UNET_QUICK: expected 0, 1 or unset, got 'yes'"):
        workspace.quick_mode()
    monkeypatch.delenv("UNET_QUICK")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    quick, reason = profiles.notebook_profile()
    assert quick and "no CUDA GPU" in reason
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU")
    quick, reason = profiles.notebook_profile()
    assert not quick and "Test GPU" in reason


def test_data_sizes_count_an_existing_tree_and_describe_an_absent_one(tmp_path, monkeypatch):
    root = fake_repo(tmp_path)
    monkeypatch.chdir(root)
    absent = ("sample data to be written to data/quick/carvana", 64, 32)  # 4 + 2 cars
    assert workspace.data_sizes("carvana", quick=True) == absent
    path = workspace.carvana_dir(quick=True)
    ids = [p.stem for p in (path / "train").glob("*.jpg")]
    share = recipe("quick").val_fraction  # the quick recipe's share of the cars
    train, val = CarvanaDataset(path, "train", val_fraction=share), CarvanaDataset(path, "val", val_fraction=share)
    assert workspace.data_sizes("carvana", quick=True) == ("data/quick/carvana", len(train), len(val))
    assert (len(train), len(val)) == absent[1:]  # what was said before the sample was written
    assert len(train) + len(val) == len(ids)
    assert workspace.data_sizes("cityscapes", quick=False) == ("sample data to be written to data/cityscapes", 24, 24)
    assert not (root / "data" / "cityscapes").exists()  # describing writes nothing


def test_step_timing_predicts_a_run_from_its_steps():
    config = recipe("quick")
    step = profiles.time_training_step(config)
    assert step.seconds > 0 and step.batch_size == config.batch_size == step.timed_batch  # a small step: whole batch
    assert step.run_seconds(40, 5) == pytest.approx(5 * 10 * step.seconds)
    assert step.run_seconds(40, 5, num_val_images=12) == pytest.approx(5 * (10 + 3 / 3) * step.seconds)
    big = profiles.time_training_step(recipe("quick", image_size=(256, 384)))
    assert big.timed_batch == 1  # 4 x 256 x 384 pixels: timed on one picture and scaled by the batch
    text = profiles.describe_profile("quick", config, "a test", step, [("data/x", 40, 12)], quick=True)
    assert text.splitlines()[0] == "profile 'quick', the quick one: a test"
    assert "5 epochs of this profile on data/x: 40 training + 12 validation pictures, about" in text
    durations = [profiles.format_duration(s) for s in (0.43, 9.4, 42, 300, 7200, 86400 * 3)]
    assert durations == ["0.4 s", "9.4 s", "42 s", "5.0 min", "2.0 h", "3.0 days"]


def test_repo_root_is_found_from_a_notebook_folder(tmp_path, monkeypatch):
    root = fake_repo(tmp_path)
    monkeypatch.chdir(root / "notebooks")
    assert workspace.repo_root() == root.resolve()


def test_existing_data_is_used_as_it_is(tmp_path, monkeypatch):
    root = fake_repo(tmp_path)
    (root / "data" / "carvana" / "train").mkdir(parents=True)
    (root / "data" / "cityscapes").mkdir(parents=True)
    monkeypatch.chdir(root)
    assert workspace.carvana_dir(quick=True) == root.resolve() / "data" / "carvana"
    assert workspace.cityscapes_dir(quick=False) == root.resolve() / "data" / "cityscapes"
    assert os.listdir(root / "data" / "carvana") == ["train"]  # nothing written into the user's folder


def test_quick_sample_goes_to_its_own_folder(tmp_path, monkeypatch):
    root = fake_repo(tmp_path)
    monkeypatch.chdir(root)
    path = workspace.carvana_dir(quick=True)
    assert path == root.resolve() / "data" / "quick" / "carvana"
    assert len(list((path / "train").glob("*.jpg"))) == 6 * 16
    assert not (root / "data" / "carvana").exists()


def test_latest_checkpoint_is_the_newest(tmp_path):
    old, new = tmp_path / "a" / "run-001" / "best.pt", tmp_path / "b" / "run-007" / "best.pt"
    for path in (old, new):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    os.utime(old, (time.time() - 100, time.time() - 100))
    assert workspace.latest_checkpoint(tmp_path / "a", tmp_path / "b", tmp_path / "missing") == new
    assert workspace.latest_checkpoint(tmp_path / "missing") is None


def test_paths_are_shown_relative_to_the_repository(tmp_path, monkeypatch, capsys):
    root = fake_repo(tmp_path)
    monkeypatch.chdir(root / "notebooks")  # where a notebook runs
    assert workspace.shown(root / "models" / "run-001" / "best.pt") == os.path.join("models", "run-001", "best.pt")
    assert workspace.shown("../data/quick") == os.path.join("data", "quick")
    outside = tmp_path.parent / "elsewhere.pt"
    assert workspace.shown(outside) == str(outside.resolve())
    workspace.carvana_dir(quick=True)
    assert capsys.readouterr().out == f"writing a small Carvana sample to {os.path.join('data', 'quick', 'carvana')}\n"


def test_the_notebooks_share_train_carvanas_checkpoint_before_newer_ones(tmp_path, monkeypatch):
    root = fake_repo(tmp_path)
    monkeypatch.chdir(root)
    notebook_run = root / "models" / "notebooks" / "carvana" / "run-001" / "best.pt"
    demo_run = root / "models" / "demo" / "run-003" / "best.pt"
    for path in (notebook_run, demo_run):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    os.utime(notebook_run, (time.time() - 100, time.time() - 100))  # the demo ran after train_carvana
    assert workspace.carvana_checkpoint(quick=True) == notebook_run.resolve()
    notebook_run.unlink()
    assert workspace.carvana_checkpoint(quick=True) == demo_run.resolve()


def test_repo_root_outside_the_repository_is_the_package_s_repository(tmp_path, monkeypatch):
    # A notebook copied elsewhere (or a script run from /tmp) still finds data/ and models/ beside unet_lib/.
    monkeypatch.chdir(tmp_path)
    root = workspace.repo_root()
    assert (root / "unet_lib" / "cli" / "workspace.py").resolve() == Path(workspace.__file__).resolve()
    assert (root / "pyproject.toml").is_file()


@pytest.mark.parametrize(("share", "held_out"), [(0.2, 64), (0.34, 108)])
def test_real_sizes_split_the_real_cars_as_the_config_does(share, held_out):
    words, train, val = workspace.real_sizes(recipe("quick", val_fraction=share))
    assert (train, val) == ((318 - held_out) * 16, held_out * 16) and f"{held_out} cars held out" in words
    assert workspace.real_sizes(recipe("cityscapes-quick"))[1:] == (2975, 500)
