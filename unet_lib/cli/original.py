"""The original project's ``.h5`` files: the model, and the settings it was trained with.

The original saved ``torch.save(model.state_dict())`` under a ``.h5`` name: weights only. Its Carvana
model has 1 class, its Cityscapes model 34 (the labelIds); the widths are read off the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unet_lib.checkpoint import model_from_checkpoint
from unet_lib.config import TrainConfig
from unet_lib.data.cityscapes import NUM_CLASSES, NUM_LABEL_IDS
from unet_lib.errors import InputError
from unet_lib.model import UNet


def load_original(path: str | Path) -> UNet:
    """Load a model saved by the original project (``torch.save(model.state_dict())`` in a ``.h5`` file).

    Its Carvana model has 1 class, its Cityscapes model 34 (the labelIds); the class count and the
    widths are read off the weights.
    """
    model, _ = model_from_checkpoint(path)
    return model


def checkpoint_config(state: dict[str, Any], path: str | Path = "checkpoint") -> TrainConfig:
    """The config stored in a checkpoint, or one inferred for an original project ``.h5`` file.

    The original files store weights only: their picture size is the original's best run's
    (320x480 for Carvana, 160x320 for Cityscapes), and its Cityscapes model predicts the 34
    labelIds directly (not the 19 trainIds).
    """
    if "config" in state:
        return TrainConfig.from_dict(state["config"])
    arch = state["arch"]
    features = tuple(arch["features"])
    if arch["num_classes"] == 1:
        return TrainConfig(dataset="carvana", image_size=(320, 480), loss="bce", features=features)
    if arch["num_classes"] in (NUM_CLASSES, NUM_LABEL_IDS):
        return TrainConfig(
            dataset="cityscapes", data_dir="data/cityscapes", image_size=(160, 320), loss="ce", features=features
        )
    raise InputError(
        f"{path}: a {arch['num_classes']}-class model; expected 1 (carvana), {NUM_CLASSES} (cityscapes trainIds)"
        f" or {NUM_LABEL_IDS} (cityscapes labelIds)"
    )
