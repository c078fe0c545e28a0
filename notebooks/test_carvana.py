# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Testing a Carvana U-Net: scores, failures, thresholds and test-time augmentation
#
# Training ends with one number, the validation Dice. This notebook takes a trained model apart:
#
# 1. load a checkpoint: one of this project's `best.pt` files, or a `.h5` file of the original project;
# 2. score it on validation cars it never saw: pixel accuracy, Dice, precision and recall;
# 3. the spread of the per-image Dice, and the worst photos with maps of their errors;
# 4. the probability threshold: how the scores move with it, and the best one;
# 5. test-time augmentation (averaging with the mirrored photo), on and off;
# 6. predictions on test photos (no masks there) and on augmented training photos, as the original did.
#
# In quick mode (`UNET_QUICK=1`) everything runs on the small sample data; without a checkpoint a
# small one is trained first (a minute or two on the CPU).

# %% tags=["parameters"]
from unet_lib.workspace import quick_mode

QUICK = quick_mode()  # UNET_QUICK=1: small sample data (and a small checkpoint trained now if there is none)
# CHECKPOINT: None for the newest Carvana best.pt under models/ (trained now if there is none); or a path relative
# to the repository, e.g. "models/notebooks/carvana/run-001/best.pt", or the original project's Carvana model
# "models/sem_segmentation/1703926149/model_1703926149.h5".
CHECKPOINT = None
ORIGINAL_SIZE = (320, 480)  # (H, W) for an original .h5 file, which does not store it: 320x480 for 1703926149
DATA_DIR = None  # None: the folder the checkpoint was trained on if it is here, else data/carvana (or sample data)
THRESHOLD = 0.5  # a pixel is "car" when the predicted probability exceeds this
BATCH_SIZE = 8
NUM_WORST = 4  # worst photos shown with their error maps
NUM_SHOW = 6  # photos in the test and augmentation galleries
THREADS = 1 if QUICK else None  # CPU threads; on a small shared CPU one thread is faster than two that wait

# %%
import os
from pathlib import Path

import torch
from IPython.display import display
from matplotlib import pyplot as plt
from torch.utils.data import DataLoader

from unet_lib import (
    CarvanaDataset,
    InputError,
    count_parameters,
    dice_per_image,
    load_original,
    make_loss,
    model_from_checkpoint,
    seed_everything,
)
from unet_lib.carvana_eval import DEFAULT_THRESHOLDS, evaluate_carvana, sweep_thresholds
from unet_lib.checkpoint import checkpoint_config
from unet_lib.predict import predict_items
from unet_lib.runtime import pick_device
from unet_lib.viz import plot_histograms, plot_threshold_sweep, show_error_maps, show_predictions
from unet_lib.workspace import carvana_checkpoint, carvana_dir, repo_root

plt.rcParams["figure.dpi"] = 80  # modest pictures keep the notebook file small
seed_everything(0, threads=THREADS)

# %% [markdown]
# ## 1. Loading a checkpoint
#
# **This project's checkpoints** (`best.pt`, `last.pt`) are plain dicts: the weights under `model`,
# the network's shape under `arch` (widths, blocks), the training settings under `config` (among them
# the picture size and the data folder), the metrics of the epoch, and more. `model_from_checkpoint`
# rebuilds the U-Net from `arch` and loads the weights with `weights_only=True`, which refuses files
# that would run code when loaded.
#
# **The original project's files** (`model_<time>.h5`) are not HDF5 despite the name: they were
# written with `torch.save(model.state_dict(), ...)`, so they hold the weights and nothing else. Their
# key names are the ones this project's `UNet` uses (`downs.0.conv.0.weight`, ..., `bottleneck...`,
# `upconvs.0.weight`, `ups.0...`, `final_conv.weight`), so `load_original` reads the widths off the
# weights' shapes and loads them as they are. What the file does not say must be given: the picture
# size it was trained at (`ORIGINAL_SIZE`). Its pictures went in as RGB scaled to [0, 1], as here (its
# `Normalize(mean=0, std=1)` changed nothing).

# %%
checkpoint = carvana_checkpoint() if CHECKPOINT is None else Path(repo_root(), CHECKPOINT)
if checkpoint.suffix == ".h5":
    model = load_original(checkpoint)
    state = {"arch": model.arch}  # a bare state_dict: no settings, no metrics
else:
    model, state = model_from_checkpoint(checkpoint)
if model.arch["num_classes"] != 1:
    raise InputError(f"{checkpoint}: predicts {model.arch['num_classes']} classes; expected a one-class Carvana model")
config = checkpoint_config(state, checkpoint)  # for an .h5 file: the original's settings (BCE loss)
image_size = tuple(config.image_size) if "config" in state else tuple(ORIGINAL_SIZE)
print(f"checkpoint: {os.path.relpath(checkpoint, repo_root())}")
print(
    f"widths {model.arch['features']}, {count_parameters(model):,} parameters, pictures of {image_size[0]}x{image_size[1]}"
)
if "metrics" in state:
    print(f"saved after epoch {state['epoch']} with validation Dice {state['metrics']['val_dice']:.4f}")

# %% [markdown]
# The weights of the first block, as stored in either kind of file: a 3x3 convolution (no bias,
# since BatchNorm follows), BatchNorm's scale, shift and running statistics, then the same again.

# %%
weights = model.state_dict()
print(f"{len(weights)} tensors; those of downs.0 and final_conv:")
for name, tensor in weights.items():
    if name.startswith(("downs.0.", "final_conv.")):
        print(f"  {name:36s} {tuple(tensor.shape)}")

# %% [markdown]
# ## 2. Scores on held-out cars
#
# The validation photos are cars the checkpoint was not trained on, when the data and the split are
# the ones it was trained with: the split is made by car, with the same seed, from the same folder.
# (For an original `.h5` model the split it was trained with is unknown: its scores here may include
# cars it has seen.)
#
# `evaluate_carvana` scores in one pass at the network's picture size, at the photos' own size (as
# Kaggle does) and with test-time augmentation (section 5); every score comes from the same pixel
# counts (`unet_lib.metrics.BinaryCounts`).

# %%
trained_on = Path(repo_root(), config.data_dir) if "config" in state else None
if DATA_DIR:
    data_dir = Path(DATA_DIR)
elif trained_on is not None and trained_on.is_dir():
    data_dir = trained_on
else:
    data_dir = carvana_dir()
val_fraction = config.val_fraction
val_set = CarvanaDataset(data_dir, "val", size=image_size, val_fraction=val_fraction, cache=True)  # read twice
val_loader = DataLoader(val_set, BATCH_SIZE)
device = pick_device("auto")
model = model.to(device).eval()
loss_fn = make_loss(config.loss, 1)  # the training loss (the original's: BCE)
metrics = evaluate_carvana(model, val_set, device, THRESHOLD, loss_fn, batch_size=BATCH_SIZE)
print(f"data: {os.path.relpath(data_dir, repo_root())}, {len(val_set)} validation photos, threshold {THRESHOLD}")
for name in ("dice", "pixel_accuracy", "precision", "recall", "iou", "loss"):
    print(f"  {name:15s} {metrics[name]:.4f}")

same_run = trained_on is not None and data_dir == trained_on and config.limit is None and "metrics" in state
if same_run and THRESHOLD == config.threshold:
    # The same photos, weights and rule as the last validation of training: the same score, up to float noise.
    assert abs(metrics["dice"] - state["metrics"]["val_dice"]) < 1e-3, (metrics["dice"], state["metrics"])

# %% [markdown]
# ## 3. Photo by photo
#
# The Dice above is a mean over photos. One pass over the validation photos counts, for each photo
# and for each of 19 thresholds (0.05 to 0.95), its true and false positives and negatives
# (`sweep_thresholds`). It counts with the same `BinaryCounts` as the evaluation above, so at the
# chosen threshold it gives exactly the same scores.

# %%
sweep = sweep_thresholds(model, val_loader, device, sorted({*DEFAULT_THRESHOLDS, THRESHOLD}))
at_threshold = sweep.scores(THRESHOLD)
assert at_threshold["dice"] == metrics["dice"], (at_threshold, metrics)
dice = sweep.dice()[sweep.index(THRESHOLD)]  # (N,) one Dice per photo
display(plot_histograms({"validation photos": dice}, "Dice of the photo", f"Per-image Dice at threshold {THRESHOLD}"))
print(f"per-image Dice: min {dice.min():.4f}, median {dice.median():.4f}, max {dice.max():.4f}")

# %% [markdown]
# The worst photos, with an **error map**: white pixels are car and found (true positives), red ones
# are called car but are background (false positives), blue ones are car but were missed (false
# negatives). Errors along the outline are unavoidable at a small picture size; whole missing parts
# (a roof, a wheel) or blobs on the floor are real mistakes.

# %%
worst = sweep.worst(NUM_WORST, THRESHOLD)
for index in worst:
    print(f"{val_set.ids[index]}  Dice {dice[index]:.4f}")
images, probs, masks = predict_items(model, val_set, worst)
show_error_maps(images, (probs > THRESHOLD).float(), masks, max_samples=NUM_WORST, title="The worst validation photos")

# %% [markdown]
# ## 4. The threshold
#
# A higher threshold calls fewer pixels car: precision goes up, recall goes down, and Dice, which
# balances the two, peaks somewhere between. The best threshold below is picked on the very photos
# it is scored on, which flatters it; to use it honestly, pick it on one set of cars and report the
# score on another.

# %%
best_threshold, best_dice = sweep.best_threshold()
display(plot_threshold_sweep(sweep.thresholds, sweep.curves(), best=(best_threshold, best_dice)))
print(f"Dice {at_threshold['dice']:.4f} at threshold {THRESHOLD}; best {best_dice:.4f} at {best_threshold:.2f}")

# %% [markdown]
# ## 5. Test-time augmentation (TTA)
#
# A car mirrored left to right is still a car. TTA predicts the photo and its mirror image, mirrors the
# second prediction back and averages the two logits: errors that are not symmetric partly cancel.
# It costs a second forward pass. `evaluate_carvana` (section 2) scored both ways, at the network's
# picture size and, as Kaggle does, at the photo's own size (the logits are upsampled before the
# threshold).

# %%
print(f"{'mean Dice':28s} {'without TTA':>12s} {'with TTA':>10s}")
print(f"{f'at {image_size[0]}x{image_size[1]}':28s} {metrics['dice']:12.4f} {metrics['dice_tta']:10.4f}")
print(f"{'at full size (Kaggle)':28s} {metrics['dice_full_res']:12.4f} {metrics['dice_full_res_tta']:10.4f}")

# %% [markdown]
# ## 6. Photos without masks, and augmented training photos
#
# The test photos come without masks (Kaggle kept them to score submissions), so all we can do is
# look: the predicted car is painted red over the photo.

# %%
if (data_dir / "test").is_dir():
    test_set = CarvanaDataset(data_dir, "test", size=image_size)
    picks = torch.linspace(0, len(test_set) - 1, min(NUM_SHOW, len(test_set))).round().long().tolist()
    images, probs, _ = predict_items(model, test_set, picks)
    display(
        show_predictions(images, (probs > THRESHOLD).float(), overlay=True, title="Test photos: predicted car in red")
    )
else:
    print(f"{data_dir / 'test'}: no test photos here")

# %% [markdown]
# The original project also looked at training photos through its augmentation: random flips and
# turns of up to 35 degrees (`augment="original"`). A network trained with milder augmentation
# (this project's default: turns of up to 5 degrees) has rarely seen a car standing at a steep
# angle, and a black corner brought in by the turn; the scores below show how well it copes.

# %%
torch.manual_seed(0)  # the augmentation is random: the same photos on every run
train_set = CarvanaDataset(data_dir, "train", size=image_size, augment="original", val_fraction=val_fraction)
picks = torch.linspace(0, len(train_set) - 1, min(NUM_SHOW, len(train_set))).round().long().tolist()
images, probs, masks = predict_items(model, train_set, picks)
print("Dice of each photo:", [round(d, 3) for d in dice_per_image(probs > THRESHOLD, masks).tolist()])
show_predictions(
    images, probs, masks, max_samples=NUM_SHOW, title="Augmented training photos. Top: prediction, bottom: reference"
)
