"""Training configuration: one frozen dataclass, and named recipes built from it.

Change a field with ``dataclasses.replace(config, lr=3e-4)``; every default has a comment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from unet_lib.errors import InputError


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "carvana"  # "carvana" (binary car masks) or "cityscapes" (19 street classes)
    data_dir: str = "data/carvana"  # dataset folder, see README for the layouts read
    image_size: tuple[int, int] = (160, 240)  # (H, W) the network sees; divisible by 16
    features: tuple[int, ...] = (64, 128, 256, 512)  # encoder widths; these are the original's 31 M parameters
    block: str = "double"  # "double" (conv-BN-ReLU x2, the original) or "residual"
    upsample: str = "transpose"  # "transpose" (ConvTranspose2d, the original) or "bilinear"
    loss: str = "bce_dice"  # "bce" (the original), "bce_dice", or "ce" (cross-entropy, for cityscapes)
    optimizer: str = "adamw"  # "adam" (the original) or "adamw" (decoupled weight decay)
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 1e-4  # only with adamw
    scheduler: str = "onecycle"  # "none" (the original: constant lr) or "onecycle" (warm-up, then cosine decay)
    batch_size: int = 8
    num_epochs: int = 20
    augment: str = "default"  # "none", "flip", "original" (flips + 35 degree rotations) or "default", see transforms.py
    mode: str = "fine"  # cityscapes annotations: "fine" (gtFine) or "coarse" (gtCoarse)
    val_fraction: float = 0.2  # carvana: share of cars held out when the data has no val/ folder
    limit: int | None = None  # use only the first N training and validation images (quick runs)
    cache: bool = True  # keep decoded, resized pictures in memory after the first epoch
    num_workers: int = 0  # DataLoader worker processes; 0 loads in the training process
    device: str = "auto"  # "auto" (cuda if present, else cpu), "cpu", "cuda", "cuda:1", ...
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16); ignored on CPU
    channels_last: bool = False  # NHWC memory layout: faster convolutions with AMP on recent GPUs
    threshold: float = 0.5  # carvana: a pixel is "car" when its probability exceeds this
    seed: int = 0  # seeds weights, shuffling and augmentation: same seed, same run

    def __post_init__(self):
        for name in ("batch_size", "num_epochs"):
            if getattr(self, name) < 1:
                raise InputError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.lr <= 0:
            raise InputError(f"lr: expected a positive number, got {self.lr}")
        h, w = self.image_size
        step = 2 ** len(self.features)
        if h % step or w % step:
            raise InputError(
                f"image_size: {h}x{w} is not divisible by {step} (the U-Net halves it {len(self.features)} times);"
                f" try {max(step, round(h / step) * step)}x{max(step, round(w / step) * step)}"
            )
        choices = {
            "dataset": ("carvana", "cityscapes"),
            "block": ("double", "residual"),
            "upsample": ("transpose", "bilinear"),
            "loss": ("bce", "bce_dice", "ce"),
            "optimizer": ("adam", "adamw"),
            "scheduler": ("none", "onecycle"),
            "augment": ("none", "flip", "original", "default"),
            "mode": ("fine", "coarse"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")

    @property
    def num_classes(self) -> int:
        """Output channels: 1 (a car logit) for carvana, 19 trainIds for cityscapes."""
        return 1 if self.dataset == "carvana" else 19

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
    # Cityscapes: the original (160x320, cross-entropy) and the recommended recipe.
    "cityscapes-original": dict(
        _ORIGINAL, dataset="cityscapes", data_dir="data/cityscapes", loss="ce", image_size=(160, 320), batch_size=16
    ),
    "cityscapes-recommended": dict(
        dataset="cityscapes", data_dir="data/cityscapes", loss="ce", image_size=(256, 512), batch_size=8, lr=1e-3
    ),
}


def recipe(name: str, **overrides: Any) -> TrainConfig:
    """A named recipe from ``RECIPES``, with any field overridden."""
    if name not in RECIPES:
        raise InputError(f"recipe: expected one of {sorted(RECIPES)}, got {name!r}")
    return TrainConfig(**{**RECIPES[name], **overrides})
