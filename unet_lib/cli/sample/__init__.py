"""Procedural sample data written in the exact on-disk formats of Kaggle Carvana and Cityscapes.

Cars are small 3-D solids on a turntable, photographed from 16 angles in a grey studio; street
scenes are polygons drawn back to front, as the Cityscapes tools render their annotations.
"""

from unet_lib.cli.sample.carvana import CARVANA_SIZE, FULL_SIZE_CARS, NUM_VIEWS, write_carvana_sample
from unet_lib.cli.sample.cityscapes import FULL_SIZE_IMAGES, write_cityscapes_sample

__all__ = [
    "CARVANA_SIZE",
    "FULL_SIZE_CARS",
    "FULL_SIZE_IMAGES",
    "NUM_VIEWS",
    "write_carvana_sample",
    "write_cityscapes_sample",
]
