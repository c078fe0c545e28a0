"""The datasets, in their real on-disk formats, and ``DATASETS``: the one table of what differs between them
(each class says its classes, layout, checks and how a config builds it; nothing outside asks "which dataset?")."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from unet_lib.config import TrainConfig
from unet_lib.data.carvana import CarvanaDataset, split_by_car
from unet_lib.data.cityscapes import CityscapesDataset
from unet_lib.data.folder import FolderDataset, suggest_layout
from unet_lib.data.pairs import DEFAULT_LAYOUT, Layout
from unet_lib.errors import InputError
from unet_lib.runtime import is_distributed

# In the order detect_dataset tries their layouts: a folder tree may hold val/, which alone looks like Carvana.
DATASETS: dict[str, type[Dataset]] = {cls.name: cls for cls in (FolderDataset, CityscapesDataset, CarvanaDataset)}

__all__ = [
    "DATASETS",
    "CarvanaDataset",
    "CityscapesDataset",
    "FolderDataset",
    "best_metric",
    "build_datasets",
    "build_loaders",
    "class_names",
    "configure",
    "detect_dataset",
    "num_outputs",
    "split_by_car",
]


def class_names(config: TrainConfig) -> list[str]:
    """Names of the classes: ``["background", "car"]``, the 19 Cityscapes classes, or a folder's."""
    names = DATASETS[config.dataset].class_names or config.class_names
    if not names:
        raise InputError(
            f"{config.data_dir}: its class names come from the data: build the datasets and pass the config through"
            " unet_lib.data.configure(config, train_set) first (train does)"
        )
    return list(names)


def num_outputs(config: TrainConfig) -> int:
    """The U-Net's output channels: 1 (a logit) for two classes, else one per class."""
    count = len(class_names(config))
    return 1 if count == 2 else count


def best_metric(config: TrainConfig) -> str:
    """The validation score that picks the best checkpoint: Dice for two classes, mIoU for more."""
    return "val_dice" if num_outputs(config) == 1 else "val_miou"


def detect_dataset(root: str | Path, layout: Layout = DEFAULT_LAYOUT) -> str:
    """The name of the dataset whose layout a folder has (``layout``: where a folder tree keeps its pictures); a
    short error showing the layouts when none fits."""
    root = Path(root)
    for name, cls in DATASETS.items():
        if cls.looks_like(root, layout):
            return name
    flags = suggest_layout(root)
    hint = (
        f"this tree looks like folder data: pass {flags}"
        if flags
        else ("for other folder names pass --images DIR --masks DIR [--val-images DIR --val-masks DIR]")
    )
    raise InputError(
        f"{root}: not a layout this reads: a folder tree (images/, masks/), a Carvana tree (train/, train_masks/) or"
        f" a Cityscapes tree (leftImg8bit/, gtFine/); {hint}"
    )


def configure(config: TrainConfig, train_set: Dataset) -> TrainConfig:
    """``config`` completed by the data: a folder's class names, and a loss that fits their number."""
    while isinstance(train_set, Subset):
        train_set = train_set.dataset
    return DATASETS[config.dataset].configure(config, train_set)


class FirstItems(Subset):
    """The first ``count`` items of a dataset (``config.limit``): item ``i`` is the dataset's, and so is every
    attribute but ``ids`` (cut to match), so ``read_mask(i)``, ``image_path(i)``, ... answer as the dataset does."""

    def __init__(self, dataset: Dataset, count: int):
        super().__init__(dataset, range(min(count, len(dataset))))
        self.ids = list(dataset.ids)[: len(self.indices)]

    def __getattr__(self, name: str):
        if name in ("dataset", "indices") or name.startswith("__"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)


def build_datasets(config: TrainConfig, known=None) -> tuple[Dataset, Dataset]:
    """The training (augmented, cropped with a ``crop``) and validation datasets a config describes (``known``: a
    folder's classes, if found)."""
    cls = DATASETS[config.dataset]
    train = cls.from_config(config, "train", config.augment, known)
    val = cls.from_config(config, "val", "none", known)
    train.crop = config.crop  # with a crop, from_config reads the pictures at their own size
    if config.limit is not None:
        train, val = FirstItems(train, config.limit), FirstItems(val, config.limit)
    return train, val


def build_loaders(config: TrainConfig, train: Dataset, val: Dataset) -> tuple[DataLoader, DataLoader]:
    """DataLoaders for training (shuffled, last partial batch dropped) and validation. Under ``torch.distributed``
    each process gets a shard (a DistributedSampler; every ``world_size``-th validation image): each image once."""
    distributed = is_distributed()
    pin = torch.cuda.is_available() and config.device != "cpu"
    workers = dict(num_workers=config.num_workers, persistent_workers=config.num_workers > 0)
    loader = partial(DataLoader, batch_size=config.batch_size, pin_memory=pin, **workers)
    sampler = DistributedSampler(train, shuffle=True, seed=config.seed) if distributed else None
    if distributed:
        val = Subset(val, range(dist.get_rank(), len(val), dist.get_world_size()))
    # drop_last keeps BatchNorm away from a batch of one; with fewer images than a batch, keep them all.
    drop_last = len(train) >= config.batch_size * (dist.get_world_size() if distributed else 1)
    val_batch = 1 if config.crop else config.batch_size  # with a crop, whole pictures of any size: one at a time
    train_loader = loader(train, shuffle=sampler is None, sampler=sampler, drop_last=drop_last)
    return train_loader, loader(val, shuffle=False, batch_size=val_batch)
