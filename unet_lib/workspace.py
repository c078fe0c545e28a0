"""Where the data and checkpoints live, and making them when they are absent.

Notebooks and the demo call these so that each runs on a fresh clone: the real data is used when
it is in ``data/``, sample data in the real formats is written otherwise, and a checkpoint that is
missing is trained (quickly) instead of failing. Quick mode (``UNET_QUICK=1``) shrinks everything.
"""

from __future__ import annotations

import os
from pathlib import Path

QUICK_ENV = "UNET_QUICK"


def quick_mode() -> bool:
    """True when ``UNET_QUICK=1``: small data, small pictures, a small network, few epochs."""
    return os.environ.get(QUICK_ENV, "") == "1"


def repo_root() -> Path:
    """The repository folder (the one holding ``data/`` and ``models/``)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "unet_lib").is_dir():
            return folder
    return Path(__file__).resolve().parent.parent


def shown(path: str | Path) -> str:
    """``path`` relative to the repository when it lies inside it (what notebooks print), else as it is."""
    path = Path(path).resolve()
    return str(path.relative_to(repo_root())) if path.is_relative_to(repo_root()) else str(path)


def carvana_dir(quick: bool | None = None) -> Path:
    """``data/carvana`` if it exists (real or sample data); else sample data is written first.

    Quick mode writes a small sample (4 cars at 480x320) to ``data/quick/carvana`` instead, so it
    never takes the place of the full-size data.
    """
    from unet_lib.data.sample import write_carvana_sample

    quick = quick_mode() if quick is None else quick
    full = repo_root() / "data" / "carvana"
    if full.exists():
        return full
    if quick:
        path = repo_root() / "data" / "quick" / "carvana"
        if not path.exists():
            print(f"writing a small Carvana sample to {shown(path)}")
            write_carvana_sample(path, num_cars=4, size=(480, 320), num_test_cars=1)
        return path
    print(f"{shown(full)} is absent: writing sample data in the Kaggle format there (about a minute)")
    write_carvana_sample(full, num_cars=8)
    return full


def cityscapes_dir(quick: bool | None = None) -> Path:
    """``data/cityscapes`` if it exists; else sample data (``data/quick/cityscapes`` in quick mode)."""
    from unet_lib.data.sample import write_cityscapes_sample

    quick = quick_mode() if quick is None else quick
    full = repo_root() / "data" / "cityscapes"
    if full.exists():
        return full
    if quick:
        path = repo_root() / "data" / "quick" / "cityscapes"
        if not path.exists():
            print(f"writing a small Cityscapes sample to {shown(path)}")
            write_cityscapes_sample(path, num_images=8, size=(512, 256))
        return path
    print(f"{shown(full)} is absent: writing sample data in the Cityscapes format there")
    write_cityscapes_sample(full, num_images=24)
    return full


def latest_checkpoint(*folders: str | Path) -> Path | None:
    """The newest ``best.pt`` under the given folders (searched recursively), or None."""
    found = [p for folder in folders if Path(folder).is_dir() for p in Path(folder).rglob("best.pt")]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def carvana_checkpoint(quick: bool | None = None) -> Path:
    """The newest Carvana ``best.pt`` under ``models/`` (demo, CLI or notebook runs); if there is
    none, say so and train one now with the ``demo`` recipe (``quick`` in quick mode, a minute)."""
    from unet_lib.checkpoint import new_run_dir
    from unet_lib.config import recipe
    from unet_lib.engine import train

    quick = quick_mode() if quick is None else quick
    models = repo_root() / "models"
    found = latest_checkpoint(models / "carvana", models / "demo", models / "notebooks" / "carvana")
    if found is not None:
        return found
    config = recipe("quick" if quick else "demo", data_dir=str(carvana_dir(quick)))
    out_dir = new_run_dir(models / "notebooks" / "carvana")
    print(
        f"no Carvana checkpoint under models/: training a small one now ({config.num_epochs} epochs) -> {shown(out_dir)}"
    )
    train(config, out_dir, threads=1 if quick else None)
    return out_dir / "best.pt"
