"""Where the data and checkpoints live, and making them when they are absent.

Notebooks and the demo call these so that each runs on a fresh clone: the real data is used when
it is in ``data/``, sample data in the real formats is written otherwise, and a checkpoint that is
missing is trained (quickly) instead of failing. Quick mode shrinks everything.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from unet_lib.cli.profiles import notebook_profile

SAMPLE_CARS = {True: 6, False: 8}  # quick mode? -> Carvana sample cars (16 photos each) written when data is absent
SAMPLE_CITYSCAPES_IMAGES = {True: 8, False: 24}  # quick mode? -> Cityscapes sample pictures per split
# (dataset, quick mode?) -> the (training, validation) pictures of that sample: Carvana's 16 views a car, 2 cars
# held out (the quick recipe's third of 6, 20 % of 8); Cityscapes' pictures per split.
SAMPLE_SIZES = {("carvana", True): (4 * 16, 2 * 16), ("carvana", False): (6 * 16, 2 * 16)}
SAMPLE_SIZES |= {("cityscapes", quick): (n, n) for quick, n in SAMPLE_CITYSCAPES_IMAGES.items()}
# The real datasets (cited: Kaggle's Carvana training set, Cityscapes' gtFine train/val), as (train, val) images.
# The real datasets (cited): Kaggle's Carvana training set, split by car as the config holds them out (16 photos a car),
# and Cityscapes' gtFine train and val pictures, split as published.
REAL_CARS = {"carvana": 318}
REAL_PICTURES = {"cityscapes": (2975, 500)}


def quick_mode() -> bool:
    """Quick mode (small data, small pictures, a small network, few epochs): ``UNET_QUICK=1``, or
    ``UNET_QUICK`` unset on a machine without a CUDA GPU (see ``unet_lib.cli.profiles.notebook_profile``)."""
    return notebook_profile()[0]


def repo_root() -> Path:
    """The repository folder (the one holding ``data/`` and ``models/``)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "unet_lib").is_dir():
            return folder
    return Path(__file__).resolve().parents[2]  # unet_lib/cli/workspace.py -> the repository


def shown(path: str | Path) -> str:
    """``path`` relative to the repository when it lies inside it (what notebooks print), else as it is."""
    path = Path(path).resolve()
    return str(path.relative_to(repo_root())) if path.is_relative_to(repo_root()) else str(path)


# dataset -> (its name in a sentence, the writer in unet_lib.cli.sample, its arguments in quick and in full mode,
# how the full sample is announced).
SAMPLES = {
    "carvana": (
        "Carvana",
        "write_carvana_sample",
        {
            True: dict(num_cars=SAMPLE_CARS[True], size=(480, 320), num_test_cars=1),
            False: dict(num_cars=SAMPLE_CARS[False]),
        },
        "in the Kaggle format there (about a minute)",
    ),
    "cityscapes": (
        "Cityscapes",
        "write_cityscapes_sample",
        {
            quick: dict(num_images=n) | ({"size": (512, 256)} if quick else {})
            for quick, n in SAMPLE_CITYSCAPES_IMAGES.items()
        },
        "in the Cityscapes format there",
    ),
}


def sample_dir(dataset: str, quick: bool | None = None) -> Path:
    """``data/<dataset>`` if it exists (real or sample data); else sample data in the real format is written first.

    Quick mode writes a small sample (Carvana: 4 cars at 480x320) to ``data/quick/<dataset>`` instead, so it
    never takes the place of the full-size data.
    """
    from unet_lib.cli import sample

    title, writer, arguments, how = SAMPLES[dataset]
    quick = quick_mode() if quick is None else quick
    full = repo_root() / "data" / dataset
    if full.exists():
        return full
    path = repo_root() / "data" / "quick" / dataset if quick else full
    if path.exists():
        return path
    print(
        f"writing a small {title} sample to {shown(path)}"
        if quick
        else f"{shown(full)} is absent: writing sample data {how}"
    )
    getattr(sample, writer)(path, **arguments[quick])
    return path


def carvana_dir(quick: bool | None = None) -> Path:
    """``data/carvana``, or sample data (see :func:`sample_dir`)."""
    return sample_dir("carvana", quick)


def cityscapes_dir(quick: bool | None = None) -> Path:
    """``data/cityscapes``, or sample data (see :func:`sample_dir`)."""
    return sample_dir("cityscapes", quick)


def latest_checkpoint(*folders: str | Path) -> Path | None:
    """The newest ``best.pt`` under the given folders (searched recursively), or None."""
    found = [p for folder in folders if Path(folder).is_dir() for p in Path(folder).rglob("best.pt")]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def carvana_checkpoint(quick: bool | None = None) -> Path:
    """The Carvana ``best.pt`` the notebooks share: the newest one ``train_carvana`` wrote
    (``models/notebooks/carvana``), else the newest of the command line's and the demo's runs; if
    there is none, say so and train one now with the ``demo`` recipe (``quick`` in quick mode, a minute)."""
    from unet_lib.checkpoint import new_run_dir
    from unet_lib.config import recipe
    from unet_lib.training import train

    quick = quick_mode() if quick is None else quick
    models = repo_root() / "models"
    found = latest_checkpoint(models / "notebooks" / "carvana") or latest_checkpoint(
        models / "carvana", models / "demo"
    )
    if found is not None:
        return found
    config = recipe("quick" if quick else "demo", data_dir=str(carvana_dir(quick)))
    out_dir = new_run_dir(models / "notebooks" / "carvana")
    print(
        f"no Carvana checkpoint under models/: training a small one now ({config.num_epochs} epochs) -> {shown(out_dir)}"
    )
    train(dataclasses.replace(config, threads=1 if quick else None), out_dir)
    return out_dir / "best.pt"


def real_sizes(config) -> tuple[str, int, int]:
    """The real dataset a config names, in words, and its (training, validation) pictures as the config splits them
    (Carvana: ``config.val_fraction`` of the cars held out, rounded to whole cars, as ``split_by_car`` does)."""
    from unet_lib.data import DATASETS

    if config.dataset not in REAL_CARS:
        return f"the real {DATASETS[config.dataset].title} fine annotations (cited)", *REAL_PICTURES[config.dataset]
    cars = REAL_CARS[config.dataset]
    held_out = max(1, round(cars * config.val_fraction))
    words = f"the real {DATASETS[config.dataset].title} training set (cited: {cars} cars, {cars * 16:,} photos; {held_out} cars held out)"
    return words, (cars - held_out) * 16, held_out * 16


def data_sizes(dataset: str, quick: bool | None = None) -> tuple[str, int, int]:
    """``(folder, training images, validation images)`` of the data a notebook will read; writes nothing.

    A folder that exists is counted by the datasets themselves (Carvana split by car); an absent one is
    described by the sample that ``carvana_dir`` / ``cityscapes_dir`` would write.
    """
    from unet_lib.config import TrainConfig, recipe
    from unet_lib.data import build_datasets

    quick = quick_mode() if quick is None else quick
    full = repo_root() / "data" / dataset
    folder = full if full.exists() else repo_root() / "data" / "quick" / dataset if quick else full
    if folder.exists():
        share = recipe("quick").val_fraction if quick else TrainConfig.val_fraction  # the cars the notebook holds out
        config = TrainConfig(dataset=dataset, data_dir=str(folder), augment="none", val_fraction=share)
        train_set, val_set = build_datasets(config)
        return shown(folder), len(train_set), len(val_set)
    return f"sample data to be written to {shown(folder)}", *SAMPLE_SIZES[dataset, quick]
