"""Figures: pictures, masks, predictions, training curves, scores and the inside of the network.

One palette and one overlay (``colors``) colour every mask; every ``show_*``/``plot_*`` function
returns a Figure that pyplot has let go of, which a notebook shows once and ``fig.savefig`` saves.
"""

from unet_lib.viz.colors import PaletteKind, colorize, outline, overlay, palette
from unet_lib.viz.common import to_display  # the figure helpers stay in viz.common
from unet_lib.viz.gallery import RowLabels, show_before_after, show_gallery
from unet_lib.viz.history import LiveHistory, plot_history, plot_lr_find
from unet_lib.viz.images import (
    ERROR_COLORS,
    error_map,
    show_cityscapes_predictions,
    show_class_colors,
    show_error_maps,
    show_label_map,
    show_predictions,
    show_samples,
)
from unet_lib.viz.interpret import (
    show_activation_rows,
    show_heatmaps,
    show_kernels,
    show_mask_panels,
    show_receptive_fields,
)
from unet_lib.viz.layers import activation_grid, activation_image, plot_activation, show_filters, show_layer_figure
from unet_lib.viz.photo import show_photo_prediction
from unet_lib.viz.scores import (
    plot_class_frequencies,
    plot_class_iou,
    plot_confusion_matrix,
    plot_histograms,
    plot_threshold_sweep,
)

__all__ = [
    "ERROR_COLORS",
    "LiveHistory",
    "PaletteKind",
    "RowLabels",
    "activation_grid",
    "activation_image",
    "colorize",
    "error_map",
    "outline",
    "overlay",
    "palette",
    "plot_activation",
    "plot_class_frequencies",
    "plot_class_iou",
    "plot_confusion_matrix",
    "plot_histograms",
    "plot_history",
    "plot_lr_find",
    "plot_threshold_sweep",
    "show_activation_rows",
    "show_before_after",
    "show_cityscapes_predictions",
    "show_class_colors",
    "show_error_maps",
    "show_filters",
    "show_gallery",
    "show_heatmaps",
    "show_kernels",
    "show_label_map",
    "show_layer_figure",
    "show_mask_panels",
    "show_photo_prediction",
    "show_predictions",
    "show_receptive_fields",
    "show_samples",
    "to_display",
]
