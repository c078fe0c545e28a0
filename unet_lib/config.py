"""Training configuration: one frozen dataclass, and named recipes built from it.

Change a field with ``dataclasses.replace(config, lr=3e-4)``; every default has a comment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

from unet_lib.data import OUTPUT_CHANNELS, DatasetName
from unet_lib.data.cache import CacheMode, cache_mode
from unet_lib.data.cityscapes import AnnotationMode
from unet_lib.data.transforms import AugmentKind
from unet_lib.errors import InputError
from unet_lib.losses import LossName
from unet_lib.metrics import check_threshold
from unet_lib.model import BlockKind, UpsampleKind
from unet_lib.optim import OptimizerName, SchedulerName


@dataclass(frozen=True)
class TrainConfig:
    # The allowed values of each Literal field are defined once, by the module that uses them.
    dataset: DatasetName = "carvana"  # "carvana" (binary car masks), "cityscapes" (19 street classes) or "folder"
    data_dir: str = "data/carvana"  # dataset folder, see README for the layouts read
    class_names: tuple[str, ...] = ()  # folder: one name per class, filled from the data by train
    image_size: tuple[int, int] = (160, 240)  # (H, W) the network sees; divisible by 16
    features: tuple[int, ...] = (64, 128, 256, 512)  # encoder widths; these are the original's 31 M parameters
    block: BlockKind = "double"  # "double" (conv-BN-ReLU x2, the original) or "residual"
    upsample: UpsampleKind = "transpose"  # "transpose" (ConvTranspose2d, the original) or "bilinear"
    loss: LossName = "bce_dice"  # "bce" (the original), "bce_dice", or "ce" (cross-entropy, for cityscapes)
    optimizer: OptimizerName = "adamw"  # "adam" (the original) or "adamw" (decoupled weight decay)
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 1e-4  # only with adamw
    scheduler: SchedulerName = "onecycle"  # "none" (the original: constant lr) or "onecycle" (warm-up, then decay)
    batch_size: int = 8
    num_epochs: int = 20
    augment: AugmentKind = "default"  # "none", "flip", "original" (flips + 35 degree turns), "default" (transforms.py)
    mode: AnnotationMode = "fine"  # cityscapes annotations: "fine" (gtFine) or "coarse" (gtCoarse)
    val_fraction: float = 0.2  # carvana: share of cars held out when the data has no val/ folder
    limit: int | None = None  # use only the first N training and validation images (quick runs)
    # "disk": decoded, resized pictures written once to one file in ~/.cache/unet_lib that every worker and
    # later run shares; "memory": each worker keeps its own copy (grows to workers x the data); "none"
    cache: CacheMode = "disk"
    num_workers: int = 0  # DataLoader worker processes; 0 loads in the training process
    device: str = "auto"  # "auto" (cuda if present, else cpu), "cpu", "cuda", "cuda:1", ...
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16); ignored on CPU
    channels_last: bool = False  # NHWC memory layout: faster convolutions with AMP on recent GPUs
    threshold: float = 0.5  # carvana: a pixel is "car" when its probability exceeds this
    seed: int = 0  # seeds weights, shuffling and augmentation: same seed, same run

    def __post_init__(self):
        if isinstance(self.cache, bool):  # configs saved before the disk cache: True meant "memory"
            object.__setattr__(self, "cache", cache_mode(self.cache))
        for field, kind in get_type_hints(TrainConfig).items():
            if get_origin(kind) is Literal and getattr(self, field) not in get_args(kind):
                raise InputError(f"{field}: expected one of {get_args(kind)}, got {getattr(self, field)!r}")
        for name in ("batch_size", "num_epochs"):
            if getattr(self, name) < 1:
                raise InputError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit: expected a positive number of images or None, got {self.limit}")
        if self.num_workers < 0:
            raise InputError(f"num_workers: expected 0 or more DataLoader processes, got {self.num_workers}")
        if self.lr <= 0:
            raise InputError(f"lr: expected a positive number, got {self.lr}")
        if not 0 < self.val_fraction < 1:
            raise InputError(f"val_fraction: expected a share strictly between 0 and 1, got {self.val_fraction}")
        check_threshold(self.threshold)
        if self.class_names and (self.dataset != "folder" or len(self.class_names) < 2):
            raise InputError(
                f"class_names: expected 2 or more names, for dataset 'folder' only; got {list(self.class_names)}"
                f" for {self.dataset!r} (carvana and cityscapes name their own classes)"
            )
        h, w = self.image_size
        step = 2 ** len(self.features)
        if h % step or w % step:
            raise InputError(
                f"image_size: {h}x{w} is not divisible by {step} (the U-Net halves it {len(self.features)} times);"
                f" try {max(step, round(h / step) * step)}x{max(step, round(w / step) * step)}"
            )

    @property
    def num_classes(self) -> int:
        """Output channels: 1 (a car logit) for carvana, 19 trainIds for cityscapes; folder: 1 for 2 classes."""
        if self.dataset != "folder":
            return OUTPUT_CHANNELS[self.dataset]
        if not self.class_names:
            raise InputError("class_names: empty; for folder data train fills them in from the data (data/folder.py)")
        return 1 if len(self.class_names) == 2 else len(self.class_names)

    @property
    def best_metric(self) -> str:
        """The validation metric that picks the best checkpoint: Dice for carvana, mIoU for cityscapes."""
        return "val_dice" if self.num_classes == 1 else "val_miou"

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so checkpoints load with ``weights_only=True``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known})


_ORIGINAL = dict(optimizer="adam", lr=1e-4, weight_decay=0.0, scheduler="none", loss="bce", augment="original")

RECIPES: dict[str, dict[str, Any]] = {
    # The original project's Carvana runs (Adam 1e-4, BCE, constant lr, flips + rotations).
    "original-160x240": dict(_ORIGINAL, image_size=(160, 240), batch_size=16, num_epochs=50),
    "original-320x480": dict(_ORIGINAL, image_size=(320, 480), batch_size=8, num_epochs=50),
    # What this project recommends: AdamW with a one-cycle schedule, BCE + Dice, mild augmentation.
    "recommended": dict(image_size=(320, 480), batch_size=8, lr=1e-3, num_epochs=20),
    # A small network on small pictures: trains on a laptop CPU in a few minutes. Flips only:
    # with 30 short epochs, shifts and rotations slow it down more than they help.
    "demo": dict(
        image_size=(96, 144), features=(16, 32, 64, 128), batch_size=8, lr=2e-3, num_epochs=30, augment="flip"
    ),
    # Quick mode (UNET_QUICK=1, CI and the committed notebook outputs): the demo's network on 64x96
    # pictures; batch 4 gives enough steps in 5 epochs (batch 8 was unreliable).
    "quick": dict(image_size=(64, 96), features=(16, 32, 64, 128), batch_size=4, lr=2e-3, num_epochs=5, augment="flip"),
    # Cityscapes: the original (160x320, cross-entropy) and the recommended recipe.
    "cityscapes-original": dict(
        _ORIGINAL, dataset="cityscapes", data_dir="data/cityscapes", loss="ce", image_size=(160, 320), batch_size=16
    ),
    "cityscapes-recommended": dict(
        dataset="cityscapes", data_dir="data/cityscapes", loss="ce", image_size=(256, 512), batch_size=8, lr=1e-3
    ),
    # Quick mode on Cityscapes: a small network on 64x128 pictures. AdamW with a one-cycle schedule
    # learns in a few short epochs, where the original's constant 1e-4 would not.
    "cityscapes-quick": dict(
        dataset="cityscapes",
        data_dir="data/cityscapes",
        loss="ce",
        image_size=(64, 128),
        features=(16, 32, 64, 128),
        batch_size=2,
        lr=3e-3,
        num_epochs=30,
    ),
    # Your own data (train folder --data DIR). The classes come from the data, and so do the output
    # channels and the loss: BCE + Dice for two classes, cross-entropy for more (data/folder.py).
    "folder": dict(dataset="folder", data_dir="data/folder", image_size=(256, 256), batch_size=8, lr=1e-3),
    "folder-quick": dict(
        dataset="folder",
        data_dir="data/folder",
        image_size=(64, 64),
        features=(16, 32, 64, 128),
        batch_size=4,
        lr=2e-3,
        num_epochs=10,
        augment="flip",
    ),
}


def recipe(name: str, **overrides: Any) -> TrainConfig:
    """A named recipe from ``RECIPES``, with any field overridden."""
    if name not in RECIPES:
        raise InputError(f"recipe: expected one of {sorted(RECIPES)}, got {name!r}")
    return TrainConfig(**{**RECIPES[name], **overrides})
