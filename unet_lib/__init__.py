"""unet_lib: U-Net semantic segmentation on Carvana, Cityscapes and your own data, built to be read.

The names below are the public API; figures live in ``unet_lib.viz`` and the widget explorer in
``unet_lib.widgets`` (they import matplotlib and ipywidgets).
"""

from unet_lib.activations import capture, layer_names
from unet_lib.checkpoint import load_checkpoint, load_original, model_from_checkpoint, save_checkpoint
from unet_lib.config import RECIPES, TrainConfig, recipe
from unet_lib.data import CarvanaDataset, CityscapesDataset, FolderDataset, build_datasets, build_loaders
from unet_lib.engine import build_model, evaluate, fit, train, train_one_epoch
from unet_lib.errors import InputError
from unet_lib.losses import BCEDiceLoss, make_loss
from unet_lib.metrics import IGNORE_INDEX, BinaryCounts, ConfusionMatrix, dice_per_image
from unet_lib.model import UNet, count_parameters
from unet_lib.predict import predict_labels, predict_logits
from unet_lib.rle import rle_decode, rle_encode
from unet_lib.runtime import pick_device, seed_everything

__all__ = [
    "IGNORE_INDEX",
    "RECIPES",
    "BCEDiceLoss",
    "BinaryCounts",
    "CarvanaDataset",
    "CityscapesDataset",
    "ConfusionMatrix",
    "FolderDataset",
    "InputError",
    "TrainConfig",
    "UNet",
    "build_datasets",
    "build_loaders",
    "build_model",
    "capture",
    "count_parameters",
    "dice_per_image",
    "evaluate",
    "fit",
    "layer_names",
    "load_checkpoint",
    "load_original",
    "make_loss",
    "model_from_checkpoint",
    "pick_device",
    "predict_labels",
    "predict_logits",
    "recipe",
    "rle_decode",
    "rle_encode",
    "save_checkpoint",
    "seed_everything",
    "train",
    "train_one_epoch",
]
