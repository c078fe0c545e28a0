"""Datasets in the real on-disk formats, joint transforms, and sample-data generators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from unet_lib.data.cache import prepare_cache
from unet_lib.data.carvana import CarvanaDataset, split_by_car
from unet_lib.data.cityscapes import CLASS_COLORS, CLASS_NAMES, NUM_CLASSES, CityscapesDataset
from unet_lib.data.folder import FolderClasses, FolderDataset, folder_classes

if TYPE_CHECKING:  # the config names the datasets below; importing it at run time would be circular
    from unet_lib.config import TrainConfig

DatasetName = Literal["carvana", "cityscapes", "folder"]  # folder: your own pictures and masks (data/folder.py)
# 1: one car logit; 19 Cityscapes trainIds; folder: from the data (TrainConfig.class_names)
OUTPUT_CHANNELS = {"carvana": 1, "cityscapes": NUM_CLASSES, "folder": None}

__all__ = [
    "CLASS_COLORS",
    "CLASS_NAMES",
    "CarvanaDataset",
    "CityscapesDataset",
    "DatasetName",
    "FolderDataset",
    "OUTPUT_CHANNELS",
    "build_datasets",
    "build_loaders",
    "class_names_for",
    "split_by_car",
]


def class_names_for(config: TrainConfig) -> list[str]:
    """Names of the classes: ``["background", "car"]``, the 19 Cityscapes classes, or a folder's."""
    if config.dataset == "folder":
        return list(config.class_names)
    return ["background", "car"] if config.dataset == "carvana" else list(CLASS_NAMES)


class FirstItems(Subset):
    """The first ``count`` items of a dataset (``config.limit``), answering as the dataset does.

    ``ids`` is cut to match; every other attribute (``read_mask``, ``image_path``, ``transform``, ...)
    is the dataset's own, and item ``i`` here is item ``i`` there, so methods taking an index agree.
    """

    def __init__(self, dataset: Dataset, count: int):
        super().__init__(dataset, range(min(count, len(dataset))))
        self.ids = list(dataset.ids)[: len(self.indices)]

    def __getattr__(self, name: str):
        if name in ("dataset", "indices") or name.startswith("__"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)


def build_datasets(config: TrainConfig, classes: FolderClasses | None = None) -> tuple[Dataset, Dataset]:
    """The training (augmented) and validation datasets a config describes.

    For folder data, ``classes`` spares reading every mask again when they are known (from ``check-data``).
    """
    if config.dataset == "folder":
        classes = classes or folder_classes(config.data_dir, progress=True)
        common = dict(size=config.image_size, val_fraction=config.val_fraction, cache=config.cache, classes=classes)
        train = FolderDataset(config.data_dir, "train", augment=config.augment, **common)
        val = FolderDataset(config.data_dir, "val", augment=False, **common)
    elif config.dataset == "carvana":
        common = dict(size=config.image_size, val_fraction=config.val_fraction, cache=config.cache)
        train = CarvanaDataset(config.data_dir, "train", augment=config.augment, **common)
        val = CarvanaDataset(config.data_dir, "val", augment=False, **common)
    else:
        common = dict(mode=config.mode, size=config.image_size, cache=config.cache)
        train = CityscapesDataset(config.data_dir, "train", augment=config.augment, **common)
        val = CityscapesDataset(config.data_dir, "val", augment=False, **common)
    if config.limit is not None:
        train, val = FirstItems(train, config.limit), FirstItems(val, config.limit)
    return train, val


def build_loaders(config: TrainConfig, train: Dataset, val: Dataset) -> tuple[DataLoader, DataLoader]:
    """DataLoaders for training (shuffled, last partial batch dropped) and validation.

    Inside ``torch.distributed`` training each process gets its own shard: a DistributedSampler
    for training, and every ``world_size``-th validation image, so summed metrics count each
    image exactly once. With ``cache="disk"`` the cache file is made here, before the workers start;
    they fill it during the first epoch and read it afterwards.
    """
    distributed = dist.is_available() and dist.is_initialized()
    workers = dict(num_workers=config.num_workers, persistent_workers=config.num_workers > 0)
    pin = torch.cuda.is_available() and config.device != "cpu"
    sampler = DistributedSampler(train, shuffle=True, seed=config.seed) if distributed else None
    if distributed:
        val = Subset(val, range(dist.get_rank(), len(val), dist.get_world_size()))
    for dataset in (train, val):
        prepare_cache(dataset)  # once, here: the workers inherit the open file
    # drop_last keeps BatchNorm away from a batch of one; with fewer images than a batch, keep them all.
    drop_last = len(train) >= config.batch_size * (dist.get_world_size() if distributed else 1)
    train_loader = DataLoader(
        train,
        config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=drop_last,
        pin_memory=pin,
        **workers,
    )
    val_loader = DataLoader(val, config.batch_size, shuffle=False, pin_memory=pin, **workers)
    return train_loader, val_loader
