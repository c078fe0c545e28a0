# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Street scenes: training a U-Net on Cityscapes
#
# Carvana asks one question per pixel (car or not). Cityscapes asks which of **19 classes** a pixel
# belongs to: road, sidewalk, building, ..., person, car, bicycle. The U-Net is the same; only its last
# layer changes, from 1 output channel to 19, and the loss becomes a cross-entropy over the classes.
#
# This notebook:
# 1. shows the 19 classes with their official colours and how rare some of them are,
# 2. explains why some pixels carry the label 255 and are *ignored*,
# 3. trains with live curves and saves checkpoints under `models/notebooks/cityscapes/run-NNN`,
# 4. scores the model: per-class IoU, mIoU, pixel accuracy and the confusion matrix,
# 5. draws predictions next to the ground truth in the Cityscapes colours.
#
# **Quick mode** (`UNET_QUICK=1`) trains a small network on 64x128 pictures of the sample data in
# about a minute on a CPU. **Full mode** runs the original project's recipe (`cityscapes-original`:
# 160x320, Adam at 1e-4, cross-entropy) on `data/cityscapes`, or the recommended one.

# %% tags=["parameters"]
from unet_lib import recipe
from unet_lib.workspace import cityscapes_dir, quick_mode, repo_root, shown

QUICK = quick_mode()  # UNET_QUICK=1: sample data, 64x128 pictures, a small U-Net, one CPU thread
# Recipes (unet_lib/config.py): "cityscapes-original" (the original project's: 160x320, Adam at 1e-4, constant lr),
# "cityscapes-recommended" (256x512, AdamW with a one-cycle schedule) and "cityscapes-quick" (quick mode: a small
# network on 64x128 pictures; the one-cycle schedule learns in a few short epochs, where a constant 1e-4 would not).
RECIPE = "cityscapes-quick" if QUICK else "cityscapes-original"
config = recipe(RECIPE, data_dir=str(cityscapes_dir()))
THREADS = 1 if QUICK else None  # CPU threads; one thread gives a tiny network the same run everywhere
MIOU_FLOOR = 0.10 if QUICK else None  # quick mode checks the validation mIoU against this
# On a CPU, keeping freed memory for reuse makes training steps much faster (no fresh pages to zero-fill),
# but this kernel then keeps its peak memory until it is restarted. The command line always does it.
KEEP_FREED_MEMORY = not QUICK
OUT_BASE = repo_root() / "models" / "notebooks" / "cityscapes"  # each run gets a new run-NNN folder here

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import display

from unet_lib import (
    IGNORE_INDEX,
    ConfusionMatrix,
    build_datasets,
    build_loaders,
    evaluate,
    load_original,
    make_loss,
    model_from_checkpoint,
    seed_everything,
    train,
)
from unet_lib.checkpoint import new_run_dir
from unet_lib.cityscapes_eval import evaluate_cityscapes
from unet_lib.data.cityscapes import CLASS_NAMES, NUM_CLASSES, TRAIN_CLASSES, class_frequencies
from unet_lib.predict import predict_labels, predict_logits
from unet_lib.runtime import keep_freed_memory, pick_device
from unet_lib.viz import (
    LiveHistory,
    plot_class_frequencies,
    plot_class_iou,
    plot_confusion_matrix,
    show_cityscapes_predictions,
    show_class_colors,
    show_label_map,
)

plt.rcParams["figure.dpi"] = 80  # modest pictures keep the notebook light
seed_everything(config.seed, threads=THREADS)
device = pick_device(config.device)
print(f"{shown(config.data_dir)}: {config.image_size[0]}x{config.image_size[1]} pictures, widths {config.features}")
print(f"{config.num_epochs} epochs, batch {config.batch_size}, {config.optimizer} lr {config.lr}, on {device}")

# %% [markdown]
# ## The 19 classes
#
# The label files hold 34 *labelIds*; the benchmark scores 19 of them, renumbered 0..18 as
# *trainIds*. Every other id (unlabeled, ego vehicle, parking, rail track, ...) becomes 255. The
# official colours are the ones every Cityscapes paper uses, so a learner can read any figure.

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'trainId':>7}  {'class':14s} {'labelId':>7}  {'category':12s} colour (RGB)")
for c in TRAIN_CLASSES:
    print(f"{c.train_id:>7}  {c.name:14s} {c.id:>7}  {c.category:12s} {c.color}")

# %%
show_class_colors(CLASS_NAMES)

# %% [markdown]
# ## The data
#
# `build_datasets` reads the Cityscapes layout with `torchvision.datasets.Cityscapes`, maps labelIds
# to trainIds and resizes each picture and its labels together (labels with nearest neighbour, so no
# class is invented at the edges). Black pixels in the label map are the ignored ones.

# %%
train_set, val_set = build_datasets(config)
train_loader, val_loader = build_loaders(config, train_set, val_set)
print(f"{len(train_set)} training and {len(val_set)} validation pictures")
image, labels = val_set[0]  # (3, H, W) in [0, 1], (H, W) trainIds with 255 = ignored
show_label_map(image, labels, title=f"Validation picture {val_set.ids[0]}")

# %% [markdown]
# ### How often each class appears
#
# Road, building and vegetation cover most pixels; poles, traffic lights, riders and bicycles only a
# tiny share. The scale is logarithmic: each step up is ten times more pixels. A network that ignored
# the rare classes would still get most pixels right, which is why pixel accuracy flatters and the
# *mean IoU over classes* is the score that counts.

# %%
frequencies = class_frequencies(train_set)  # (19,) share of labelled pixels, at the files' resolution
display(plot_class_frequencies(frequencies, CLASS_NAMES, title="Class frequencies in the training set"))
print("absent from the training set:", [n for n, f in zip(CLASS_NAMES, frequencies, strict=True) if f == 0] or "none")

# %% [markdown]
# ## Ignoring pixels: `ignore_index=255`
#
# Some pixels have no class we want to learn: unlabelled regions, the car's own bonnet, classes the
# benchmark leaves out, and the border that rotations and crops pad in. They all carry 255, and
# `nn.CrossEntropyLoss(ignore_index=255)` skips them: they add nothing to the loss, nothing to the
# gradient, and the mean is taken over the remaining pixels. The metrics skip them the same way.
# Without it, the network would have to predict a 20th "don't know" class, or be punished for any
# answer on pixels nobody labelled.
#
# The check below builds random logits and labels with some pixels set to 255: the loss with
# `ignore_index` equals the plain cross-entropy over the labelled pixels only.

# %%
loss_fn = make_loss(config.loss, NUM_CLASSES)  # cross-entropy with ignore_index=IGNORE_INDEX
logits = torch.randn(2, NUM_CLASSES, 4, 6)  # (B, C, H, W)
target = torch.randint(0, NUM_CLASSES, (2, 4, 6))  # (B, H, W)
target[:, 0] = IGNORE_INDEX  # the top row is "not labelled"
labelled = target != IGNORE_INDEX
by_hand = F.cross_entropy(logits.permute(0, 2, 3, 1)[labelled], target[labelled])  # (pixels, C) vs (pixels,)
print(f"with ignore_index: {loss_fn(logits, target):.6f}, over labelled pixels only: {by_hand:.6f}")
assert torch.allclose(loss_fn(logits, target), by_hand)

some = range(min(len(train_set), 100))  # the first 100 label maps are plenty for a share
ignored = np.mean([(train_set.read_labels(i) == IGNORE_INDEX).float().mean().item() for i in some])
print(f"ignored pixels in the training pictures: {ignored:.1%}")

# %% [markdown]
# ## Training
#
# `train` (the same entry as Carvana's, and the command line's) builds the model and the loss from
# `config` and runs `fit`: `train_one_epoch` and `evaluate` once per epoch, keeping `best.pt` (best
# validation mIoU) and `last.pt`, and calling us back after each epoch so the curves below redraw
# as it goes. The run folder is new every time: nothing already there is overwritten.

# %%
if KEEP_FREED_MEMORY and device.type == "cpu":
    keep_freed_memory()
out_dir = new_run_dir(OUT_BASE)
print(f"checkpoints and history go to {shown(out_dir)}")
history = train(
    config,
    out_dir,
    datasets=(train_set, val_set),
    device=device,
    threads=THREADS,
    progress=not QUICK,  # quick epochs last a second; full mode shows a bar over each epoch's batches
    on_epoch_end=LiveHistory("Cityscapes training", config.num_epochs),
)
best = max(history, key=lambda row: row["val_miou"])
print(
    f"best epoch {best['epoch']}: validation mIoU {best['val_miou']:.3f}, pixel accuracy {best['val_pixel_accuracy']:.3f}"
)

# %% [markdown]
# ## Scores of the best checkpoint
#
# We load `best.pt` back from disk, as any later user would, and `evaluate` it as training did: it
# counts every labelled validation pixel in a **confusion matrix** (`unet_lib.metrics.ConfusionMatrix`):
# row = true class, column = predicted class. Everything follows from it:
#
# - **IoU** of a class = overlap / union of its predicted and true pixels;
# - **mIoU** = mean IoU over the classes that appear (in the prediction or the ground truth);
# - **pixel accuracy** = share of labelled pixels with the right class.
#
# For scale, a "model" that answers the training set's most common class everywhere is scored too.

# %%
model, state = model_from_checkpoint(out_dir / "best.pt", num_classes=NUM_CLASSES)
model.to(device)
scores = evaluate(model, val_loader, loss_fn, device, NUM_CLASSES)
baseline, most_common = ConfusionMatrix(NUM_CLASSES), int(frequencies.argmax())
for _, masks in val_loader:
    baseline.update(torch.full_like(masks, most_common), masks)  # the same class on every pixel
baseline_scores = baseline.compute()
print(f"mIoU {scores['miou']:.3f}, pixel accuracy {scores['pixel_accuracy']:.3f}")
print(
    f"'{CLASS_NAMES[most_common]}' everywhere: mIoU {baseline_scores['miou']:.3f}, pixel accuracy {baseline_scores['pixel_accuracy']:.3f}"
)
assert abs(scores["miou"] - state["metrics"]["val_miou"]) < 1e-6  # the reloaded model scores as during training
if MIOU_FLOOR is not None:
    assert scores["miou"] > MIOU_FLOOR, (
        f"validation mIoU {scores['miou']:.3f} is below the quick-mode floor {MIOU_FLOOR}"
    )
    assert scores["miou"] > 3 * baseline_scores["miou"]

# %%
plot_class_iou(scores["iou"], CLASS_NAMES, title=f"IoU per class on the validation set ({out_dir.name})")

# %% [markdown]
# ### At the labels' own resolution
#
# The numbers above are taken at the training size. The official Cityscapes evaluation scores at the
# labels' full resolution: `evaluate_cityscapes` upsamples the logits to each label file's size before
# the argmax, counts the pixels in the same `ConfusionMatrix`, and also reports the mIoU over the 7
# categories (flat, construction, object, nature, sky, human, vehicle), an easier score.

# %%
official = evaluate_cityscapes(model, val_set, config.image_size, device)
print(
    f"full resolution: mIoU {official['miou']:.3f}, category mIoU {official['category_miou']:.3f}, pixel accuracy {official['pixel_accuracy']:.3f}"
)

# %% [markdown]
# Read the confusion matrix row by row: each row is one true class, divided by its pixel count, so the
# diagonal is the share found (recall) and the rest of the row shows what it was mistaken for.

# %%
plot_confusion_matrix(official["mat"], CLASS_NAMES, title="Confusion matrix at full resolution (each row sums to 1)")

# %% [markdown]
# ## Predictions in colour
#
# Each row: the picture, the predicted classes, the ground truth. Black in the ground truth is
# ignored; the prediction always names a class, even there.

# %%
images, masks = next(iter(val_loader))
preds = predict_labels(predict_logits(model, images.to(device))).cpu()  # (B, H, W) trainIds
show_cityscapes_predictions(images, preds, masks, class_names=CLASS_NAMES, max_samples=2)

# %% [markdown]
# ## Full mode: the original project's model
#
# With the original project's Cityscapes model in `models/sem_segmentation/` (see `models/README.md`),
# this cell scores it with the same official evaluation. It predicts the 34 labelIds directly, which
# the evaluation maps to the 19 trainIds.

# %% tags=["nbval-skip", "skip-execution"]
originals = sorted((repo_root() / "models" / "sem_segmentation").glob("*cityscapes*/*.h5"))
if originals:
    original_model = load_original(originals[-1]).to(device)
    original_scores = evaluate_cityscapes(original_model, val_set, (160, 320), device)
    print(
        f"{originals[-1].name}: mIoU {original_scores['miou']:.3f}, pixel accuracy {original_scores['pixel_accuracy']:.3f}"
    )
else:
    print("no original model under models/sem_segmentation/: see models/README.md to download it")

# %% [markdown]
# ## Takeaways
#
# - Multi-class segmentation is the same U-Net with `num_classes` output channels and a cross-entropy
#   over them; `argmax` over channels gives the class map.
# - One value, 255, marks pixels without a class; the loss (`ignore_index`), the confusion matrix and
#   the padding of augmentations all skip it.
# - Classes are very unbalanced: judge a model by mIoU and per-class IoU, not by pixel accuracy.
