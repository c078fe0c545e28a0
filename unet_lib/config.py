"""Training configuration: one frozen dataclass, and named recipes built from it.
Change a field with ``dataclasses.replace(config, lr=3e-4)``; every default has a comment."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

# The allowed values of each choice, named once here; the module that acts on a choice imports its name.
DatasetName = Literal["carvana", "cityscapes", "folder"]  # folder: your own pictures and masks (data/folder.py)
BlockKind = Literal["double", "residual"]  # conv-BN-ReLU twice (the original), or with a shortcut (model.py)
UpsampleKind = Literal["transpose", "bilinear"]  # ConvTranspose2d (the original), or bilinear + 1x1 conv
LossName = Literal["bce", "bce_dice", "ce"]  # BCE (the original), BCE + soft Dice, cross-entropy (losses.py)
OptimizerName = Literal["adam", "adamw"]  # Adam (the original), or AdamW (decoupled weight decay)
SchedulerName = Literal["none", "onecycle"]  # constant lr (the original), or warm-up then cosine decay
AugmentKind = Literal["none", "flip", "original", "default"]  # see data/transforms.py
AnnotationMode = Literal["fine", "coarse"]  # Cityscapes' gtFine or gtCoarse label files
ClassWeighting = Literal["none", "median-frequency"]  # the loss's class weights (data/check.py: loss_weights)
CacheMode = Literal["disk", "memory", "none"]  # decoded pictures: one shared file, a copy per worker, or none
# Where and how a run is carried out, not what is trained: free to change on resume.
RUNTIME_FIELDS = ("num_workers", "cache", "device", "threads", "progress", "amp", "channels_last")


class ConfigError(ValueError):
    """A config field holds a value it cannot take; the message names the field and what it expects."""


@dataclass(frozen=True)
class TrainConfig:
    dataset: DatasetName = "carvana"  # "carvana" (binary car masks), "cityscapes" (19 street classes) or "folder"
    data_dir: str = "data/carvana"  # dataset folder, see README for the layouts read
    class_names: tuple[str, ...] = ()  # folder: one name per class, filled from the data by train
    image_size: tuple[int, int] = (160, 240)  # (H, W) the network sees; divisible by 16
    crop: tuple[int, int] | None = None  # (H, W): train on random crops of each picture at its own size; None: resize
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
    images_dir: str = "images"  # folder data: the training pictures' folder, relative to data_dir (--images)
    masks_dir: str = "masks"  # folder data: their masks, paired by name: x.png with x.png, x_mask.png or x_L.png
    val_images_dir: str = "val/images"  # folder data: validation pictures (absent: a val_fraction share is held out)
    val_masks_dir: str = "val/masks"  # folder data: their masks
    ignore_index: int | None = None  # folder data: the masks' void value, read as 255 (ignored by loss and metrics)
    class_weights: ClassWeighting = "none"  # "median-frequency": weigh the loss by check-data's class weights
    loss_weights: tuple[float, ...] = ()  # filled by train from the data when class_weights is set
    val_fraction: float = 0.2  # carvana: share of cars held out when the data has no val/ folder
    limit: int | None = None  # use only the first N training and validation images (quick runs)
    cache: CacheMode = "disk"  # "disk": a file in ~/.cache/unet_lib, shared by workers and runs; "memory": per worker
    num_workers: int = 0  # DataLoader worker processes; 0 loads in the training process
    device: str = "auto"  # "auto" (cuda if present, else cpu), "cpu", "cuda", "cuda:1", ...
    threads: int | None = None  # CPU threads for PyTorch (None: its default); bit-identical runs need equal counts
    progress: bool | None = None  # progress bars; None: on a terminal or in Jupyter, one line per epoch otherwise
    amp: bool = True  # bf16 autocast where native (CPUs with bf16 instructions, GPUs; fp16 on older GPUs); else fp32
    channels_last: bool | None = None  # NHWC memory layout; None: with autocast, whose kernels are fastest in it
    threshold: float = 0.5  # carvana: a pixel is "car" when its probability exceeds this
    seed: int = 0  # seeds weights, shuffling and augmentation: same seed, same run

    def __post_init__(self):
        if isinstance(self.cache, bool):  # configs saved before the disk cache: True meant "memory"
            object.__setattr__(self, "cache", "memory" if self.cache else "none")
        for field, kind in get_type_hints(TrainConfig).items():
            if get_origin(kind) is Literal and getattr(self, field) not in get_args(kind):
                raise ConfigError(f"{field}: expected one of {get_args(kind)}, got {getattr(self, field)!r}")
        for name in ("batch_size", "num_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit: expected a positive number of images or None, got {self.limit}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads: expected a positive number of CPU threads or None, got {self.threads}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers: expected 0 or more DataLoader processes, got {self.num_workers}")
        if self.lr <= 0:
            raise ConfigError(f"lr: expected a positive number, got {self.lr}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction: expected a share strictly between 0 and 1, got {self.val_fraction}")
        if not 0 < self.threshold < 1:  # 0 or 1 would mark every pixel or none
            raise ConfigError(f"threshold: expected a probability strictly between 0 and 1, got {self.threshold}")
        if self.ignore_index is not None and not 0 <= self.ignore_index < 255:
            raise ConfigError(
                f"ignore_index: expected a mask value 0..254 (255 is always ignored), got {self.ignore_index}"
            )
        if self.class_names and len(self.class_names) < 2:
            raise ConfigError(f"class_names: expected 2 or more names, got {list(self.class_names)}")
        step = 2 ** len(self.features)
        for name in ("image_size", "crop"):
            h, w = getattr(self, name) or (step, step)  # no crop: nothing to check
            if h % step or w % step:
                raise ConfigError(
                    f"{name}: {h}x{w} is not divisible by {step} (the U-Net halves it {len(self.features)} times);"
                    f" try {max(step, round(h / step) * step)}x{max(step, round(w / step) * step)}"
                )

    @property
    def resize_to(self) -> tuple[int, int] | None:
        """The ``(H, W)`` pictures are resized to as they are read: ``image_size``, or None with a ``crop`` (each
        picture at its own size; the network sees crops of it in training, tiles of the crop's size after)."""
        return None if self.crop else self.image_size

    def runtime_fields(self) -> dict[str, Any]:
        """The fields that say where and how a run is carried out, not what is trained: free to change on resume."""
        return {name: getattr(self, name) for name in RUNTIME_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so checkpoints load with ``weights_only=True``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known})


_ORIGINAL = dict(optimizer="adam", lr=1e-4, weight_decay=0.0, scheduler="none", loss="bce", augment="original")
_SMALL = (16, 32, 64, 128)  # the quick recipes' encoder widths: about 2 M parameters
_CITYSCAPES = dict(dataset="cityscapes", data_dir="data/cityscapes", loss="ce")
_FOLDER = dict(dataset="folder", data_dir="data/folder")

RECIPES: dict[str, dict[str, Any]] = {
    # The original project's Carvana runs (Adam 1e-4, BCE, constant lr, flips + rotations).
    "original-160x240": dict(_ORIGINAL, image_size=(160, 240), batch_size=16, num_epochs=50),
    "original-320x480": dict(_ORIGINAL, image_size=(320, 480), batch_size=8, num_epochs=50),
    # What this project recommends: AdamW with a one-cycle schedule, BCE + Dice, mild augmentation.
    "recommended": dict(image_size=(320, 480), batch_size=8, lr=1e-3, num_epochs=20),
    # A small network on small pictures: trains on a laptop CPU in a few minutes. Flips only:
    # with 30 short epochs, shifts and rotations slow it down more than they help.
    "demo": dict(image_size=(96, 144), features=_SMALL, batch_size=8, lr=2e-3, num_epochs=30, augment="flip"),
    # Quick mode (UNET_QUICK=1, CI, the committed notebook outputs): the demo's network on 64x96 pictures; batch 4
    # gives enough steps in 5 epochs. 2 of the 6 sample cars held out: a choice made on one is checked on the other.
    "quick": dict(
        image_size=(64, 96), features=_SMALL, batch_size=4, lr=2e-3, num_epochs=5, augment="flip", val_fraction=0.34
    ),
    "cityscapes-original": dict(_ORIGINAL, **_CITYSCAPES, image_size=(160, 320), batch_size=16),
    "cityscapes-recommended": dict(_CITYSCAPES, image_size=(256, 512), batch_size=8, lr=1e-3),
    # Quick mode on Cityscapes: AdamW with a one-cycle schedule learns in a few short epochs; a constant 1e-4 would not.
    "cityscapes-quick": dict(_CITYSCAPES, image_size=(64, 128), features=_SMALL, batch_size=2, lr=3e-3, num_epochs=30),
    # Your own data (train folder --data DIR). The classes come from the data, and so do the output
    # channels and the loss: BCE + Dice for two classes, cross-entropy for more (data/folder.py).
    "folder": dict(_FOLDER, image_size=(256, 256), batch_size=8, lr=1e-3),
    "folder-quick": dict(
        _FOLDER, image_size=(64, 64), features=_SMALL, batch_size=4, lr=2e-3, num_epochs=10, augment="flip"
    ),
}


def recipe(name: str, **overrides: Any) -> TrainConfig:
    """A named recipe from ``RECIPES``, with any field overridden."""
    if name not in RECIPES:
        raise ConfigError(f"recipe: expected one of {sorted(RECIPES)}, got {name!r}")
    return TrainConfig(**{**RECIPES[name], **overrides})
