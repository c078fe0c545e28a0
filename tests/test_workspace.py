"""Workspace helpers: quick mode, the repository root, existing data is used and never replaced."""

import os
import time

from unet_lib import workspace


def fake_repo(tmp_path):
    (tmp_path / "unet_lib").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "notebooks").mkdir()
    return tmp_path


def test_quick_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv("UNET_QUICK", "1")
    assert workspace.quick_mode()
    monkeypatch.setenv("UNET_QUICK", "0")
    assert not workspace.quick_mode()
    monkeypatch.delenv("UNET_QUICK")
    assert not workspace.quick_mode()


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
    assert len(list((path / "train").glob("*.jpg"))) == 4 * 16
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
