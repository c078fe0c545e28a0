"""unet_lib: U-Net semantic segmentation on Carvana, Cityscapes and your own data, built to be read.

The names below are the core, what a learner reads to understand U-Net segmentation: the model, the
data, the losses and metrics, one training loop, one evaluation loop, and activation capture. The
tools around it import the core and are imported by name: ``unet_lib.cli`` (the command line, export,
prediction files, sample data, the picture cache), ``unet_lib.inspect`` (Grad-CAM, receptive fields,
the layer summary) and ``unet_lib.viz`` (figures and widgets). ``docs/architecture.md`` draws the map.
"""

from unet_lib.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from unet_lib.config import RECIPES, ConfigError, TrainConfig, recipe
from unet_lib.data import CarvanaDataset, CityscapesDataset, FolderDataset, build_datasets, build_loaders
from unet_lib.errors import InputError
from unet_lib.evaluation import Scores, Tiled, evaluate, predict, predict_labels, predict_logits, tiled_logits
from unet_lib.inspect.hooks import capture, layer_names
from unet_lib.losses import BCEDiceLoss, make_loss
from unet_lib.metrics import IGNORE_INDEX, BinaryCounts, ConfusionMatrix, dice_per_image
from unet_lib.model import UNet, count_parameters
from unet_lib.runtime import Precision, pick_device, seed_everything
from unet_lib.training import build_model, fit, train, train_one_epoch, train_step

__all__ = [
    "IGNORE_INDEX",
    "RECIPES",
    "BCEDiceLoss",
    "BinaryCounts",
    "CarvanaDataset",
    "CityscapesDataset",
    "ConfigError",
    "ConfusionMatrix",
    "FolderDataset",
    "InputError",
    "Precision",
    "Scores",
    "Tiled",
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
    "make_loss",
    "model_from_checkpoint",
    "pick_device",
    "predict",
    "predict_labels",
    "predict_logits",
    "recipe",
    "save_checkpoint",
    "seed_everything",
    "tiled_logits",
    "train",
    "train_one_epoch",
    "train_step",
]
