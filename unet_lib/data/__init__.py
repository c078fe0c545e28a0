"""Datasets in the real on-disk formats, joint transforms, and sample-data generators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from unet_lib.data.carvana import CarvanaDataset, split_by_car
from unet_lib.data.cityscapes import CLASS_COLORS, CLASS_NAMES, NUM_CLASSES, CityscapesDataset

if TYPE_CHECKING:  # the config names the datasets below; importing it at run time would be circular
    from unet_lib.config import TrainConfig

DatasetName = Literal["carvana", "cityscapes"]
OUTPUT_CHANNELS = {"carvana": 1, "cityscapes": NUM_CLASSES}  # 1: one car logit; 19 Cityscapes trainIds

__all__ = [
    "CLASS_COLORS",
    "CLASS_NAMES",
    "CarvanaDataset",
    "CityscapesDataset",
    "DatasetName",
    "OUTPUT_CHANNELS",
    "build_datasets",
    "build_loaders",
    "class_names_for",
    "split_by_car",
]


def class_names_for(config: TrainConfig) -> list[str]:
    """Names of the output classes: ``["background", "car"]`` or the 19 Cityscapes classes."""
    return ["background", "car"] if config.dataset == "carvana" else list(CLASS_NAMES)


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """The training (augmented) and validation datasets a config describes."""
    if config.dataset == "carvana":
        common = dict(size=config.image_size, val_fraction=config.val_fraction, cache=config.cache)
        train = CarvanaDataset(config.data_dir, "train", augment=config.augment, **common)
        val = CarvanaDataset(config.data_dir, "val", augment=False, **common)
    else:
        common = dict(mode=config.mode, size=config.image_size, cache=config.cache)
        train = CityscapesDataset(config.data_dir, "train", augment=config.augment, **common)
        val = CityscapesDataset(config.data_dir, "val", augment=False, **common)
    if config.limit is not None:
        train = Subset(train, range(min(config.limit, len(train))))
        val = Subset(val, range(min(config.limit, len(val))))
    return train, val


def build_loaders(config: TrainConfig, train: Dataset, val: Dataset) -> tuple[DataLoader, DataLoader]:
    """DataLoaders for training (shuffled, last partial batch dropped) and validation.

    Inside ``torch.distributed`` training each process gets its own shard: a DistributedSampler
    for training, and every ``world_size``-th validation image, so summed metrics count each
    image exactly once.
    """
    distributed = dist.is_available() and dist.is_initialized()
    workers = dict(num_workers=config.num_workers, persistent_workers=config.num_workers > 0)
    pin = torch.cuda.is_available() and config.device != "cpu"
    sampler = DistributedSampler(train, shuffle=True, seed=config.seed) if distributed else None
    if distributed:
        val = Subset(val, range(dist.get_rank(), len(val), dist.get_world_size()))
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
