"""unet_lib: U-Net semantic segmentation on Carvana and Cityscapes, built to be read."""

from unet_lib.errors import InputError
from unet_lib.model import UNet, count_parameters

__all__ = ["InputError", "UNet", "count_parameters"]
