# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Inside a U-Net: why it segments well
#
# A trained U-Net turns a photo into a mask. This notebook opens it up and looks at *why* that
# works, with PyTorch's hooks doing the looking:
#
# 1. **Hooks**: forward hooks read a layer's output, forward pre-hooks change its input, backward
#    hooks read gradients; `capture` and torchvision's feature extractor do the bookkeeping.
# 2. **The whole U** for one photo: every block's output, from the encoder down to the bottleneck and
#    back up the decoder.
# 3. **The original project's views**: the layers and filters its test script drew, and the same
#    filters before and after training.
# 4. **Skip connections**: the Dice without each of them.
# 5. **Grad-CAM**: which parts of the photo make the network say "car", layer by layer, also where
#    it is wrong; computed by hand first, then with the library.
# 6. **BatchNorm**: why the same picture gives another output in train mode than in eval mode.
# 7. **Receptive fields**: how much of the photo one output pixel can see, in theory and in fact.
# 8. An interactive **explorer** of every layer, channel and filter, with static copies of its views.
#
# Each idea is written out in a few lines of PyTorch and checked against the library's function.
# Six **exercises** ask you to predict a result before the cell that shows it, or to write a step
# yourself: fill in `answer = ...` and run the cell; a collapsed solution cell follows each.
#
# It uses the Carvana checkpoint that `train_carvana` wrote (the newest run under
# `models/notebooks/carvana`); run alone, it takes the newest one from the command line or the demo,
# or trains a small one first. Without a GPU it runs the quick profile (sample data); `UNET_QUICK=0`
# or `1` forces either.
#
# **Precision.** The committed outputs come from a model trained in bf16, the 16-bit number format a
# CPU with `avx512_bf16` computes twice as fast as 32-bit fp32 (see `train_carvana`); the scores here
# are computed in fp32. Trained in fp32, as a CPU without those instructions does, the same quick run
# ends with a validation Dice 0.0012 lower (cited, measured on the same machine), but numbers other than
# the final Dice can move more: the Dice without each skip (section 4) by several hundredths, and the
# photo with the most false positives (section 5) can be another one. Read the numbers this notebook
# prints, not those of another run.

# %% tags=["parameters"]
from unet_lib.cli.profiles import notebook_profile

QUICK, WHY = notebook_profile()  # UNET_QUICK=1 or 0 decides; unset, quick without a GPU (sample data)
CHECKPOINT = None  # a best.pt (relative to the repository or absolute), or None for train_carvana's newest
NUM_SAMPLES = 4  # validation pictures in the explorer and the galleries
SAMPLE = 0  # the validation picture studied in sections 2 to 7, one of the first NUM_SAMPLES
CHANNELS = (0,)  # the channels drawn beside each layer's mean in "the whole U", e.g. (0, 1, 2)
CAM_LAYERS = ("downs.1", "bottleneck", "ups.1")  # layers whose Grad-CAM is drawn
SHAPE_INPUT = (1, 3, 160, 240)  # (B, C, H, W) of the dummy input in the shape table: the original's picture size

# %%
import copy
import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from exercises.inspect_layers import (
    check_exercise_1,
    check_exercise_2,
    check_exercise_3,
    check_exercise_4,
    check_exercise_5,
    check_exercise_6,
)
from IPython.display import display
from torch.utils.data import DataLoader
from torchvision.models.feature_extraction import create_feature_extractor

from unet_lib import Scores, build_datasets, build_model, capture, evaluate, layer_names, model_from_checkpoint
from unet_lib.cli.original import checkpoint_config
from unet_lib.cli.workspace import carvana_checkpoint, carvana_dir, repo_root, shown
from unet_lib.data.carvana import car_of
from unet_lib.evaluation import predict_labels
from unet_lib.inspect.interpret import effective_receptive_field, erf_size, grad_cam, receptive_fields, without_skips
from unet_lib.metrics import dice_per_image
from unet_lib.model import UNet, count_parameters, pad_to
from unet_lib.runtime import seed_everything
from unet_lib.viz import (
    show_activation_rows,
    show_heatmaps,
    show_kernels,
    show_mask_panels,
    show_receptive_fields,
)
from unet_lib.viz.interpret import show_outlined_predictions
from unet_lib.viz.widgets import LayerExplorer

plt.rcParams["figure.dpi"] = 100  # readable at 100 % zoom on GitHub
print(f"{'quick' if QUICK else 'full'} profile: {WHY}")

# %% [markdown]
# ## The model and a few validation pictures
#
# `model_from_checkpoint` rebuilds the U-Net from the widths stored in the checkpoint and loads its
# weights; the training settings come back as a `TrainConfig`, so the pictures are resized exactly
# as during training. The validation cars are ones the network never trained on. A `CHECKPOINT`
# written relative to the repository (`models/...`) is found from the repository's root, wherever
# the kernel runs.
#
# Training started from random weights drawn right after `seed_everything(config.seed)`, so the
# same call rebuilds the network **as it was before training**: section 3 compares the two.

# %%
checkpoint_path = Path(repo_root(), CHECKPOINT) if CHECKPOINT else carvana_checkpoint()  # an absolute path stays
model, state = model_from_checkpoint(checkpoint_path, num_classes=1)
config = dataclasses.replace(checkpoint_config(state, checkpoint_path), data_dir=str(carvana_dir()))
_, val_set = build_datasets(config)
assert 0 <= SAMPLE < NUM_SAMPLES <= len(val_set), "SAMPLE must be one of the NUM_SAMPLES pictures loaded"
ids = val_set.ids[:NUM_SAMPLES]  # the photo ids: car id and view number
images = torch.stack([val_set[i][0] for i in range(NUM_SAMPLES)])  # (N, 3, H, W) in [0, 1]
masks = torch.stack([val_set[i][1] for i in range(NUM_SAMPLES)])  # (N, H, W) in {0, 1}
seed_everything(config.seed)
initial = build_model(config).eval()  # the same random start as the training run
print(f"checkpoint: {shown(checkpoint_path)} (epoch {state.get('epoch', '?')})")
print(
    f"widths {state['arch']['features']}, {count_parameters(model):,} parameters, trained on {shown(config.data_dir)}"
)
print(f"validation Dice stored in the checkpoint: {state['metrics'].get('val_dice', float('nan')):.4f}")
print(
    f"{len(val_set)} validation pictures of {config.image_size[0]}x{config.image_size[1]}; images {tuple(images.shape)}"
)
print(f"the validation photos show {len({car_of(i) for i in val_set.ids})} held-out cars")
print(f"the {NUM_SAMPLES} loaded: {', '.join(ids)}; photo {SAMPLE} ({ids[SAMPLE]}) is studied below")

# %% [markdown]
# ## 1. Hooks
#
# A **forward hook** is a function PyTorch calls right after a module's `forward`, with the module,
# its inputs and its output. Registering one returns a *handle*; `handle.remove()` takes it off
# again. Here is the bare mechanism on the first down block:

# %%
seen = {}
handle = model.downs[0].register_forward_hook(lambda module, args, output: seen.update(downs0=output.detach()))
with torch.inference_mode():
    model(images[:1])
handle.remove()  # forget this and every later forward keeps calling the hook
print("downs.0 output:", tuple(seen["downs0"].shape), "| hooks left on downs.0:", len(model.downs[0]._forward_hooks))

# %% [markdown]
# **Why captured outputs are cloned.** Each block is conv, BatchNorm, ReLU, conv, BatchNorm, ReLU,
# and its ReLUs work *in place* (`nn.ReLU(inplace=True)`): they overwrite the BatchNorm's output to
# save memory. A hook that keeps the BatchNorm's output without copying it sees it change under its
# feet once the ReLU runs:

# %%
kept = {}
bn = model.downs[0].conv[1]  # the first BatchNorm of downs.0, followed by an in-place ReLU
handles = [
    bn.register_forward_hook(lambda m, args, out: kept.update(same=out.detach())),  # shares memory
    bn.register_forward_hook(lambda m, args, out: kept.update(copy=out.detach().clone())),
]
with torch.inference_mode():
    model(images[:1])
for h in handles:
    h.remove()
print(
    f"negative values kept without a copy: {(kept['same'] < 0).sum().item():,}, with a copy: {(kept['copy'] < 0).sum().item():,}"
)
assert (kept["same"] >= 0).all() and (kept["copy"] < 0).any()  # the ReLU wrote its zeros into the uncopied one

# %% [markdown]
# `unet_lib.inspect.hooks.capture` does this for several layers at once, with copies. It is a *context
# manager*: the hooks exist only inside the `with` block and are removed when it ends, even when the
# forward pass raises. With `capture_inputs=True` it also registers **forward pre-hooks**, which
# PyTorch calls *before* `forward` with the module's inputs: `ups.0` receives twice the channels of
# `upconvs.0`'s output, because the skip connection is concatenated in front of it.
#
# One module can be called more than once per forward: `pool` is a single `MaxPool2d` used after
# every down block, so its hook fires four times and `capture` keeps the last call.

# %%
print(layer_names(model))
with torch.inference_mode(), capture(model, ["upconvs.0", "ups.0", "pool"], capture_inputs=True) as acts:
    model(images[:1])
print("upconvs.0 output:", tuple(acts["upconvs.0"].shape), "| ups.0 input:", tuple(acts.inputs["ups.0"].shape))
print("pool: last call's input", tuple(acts.inputs["pool"].shape), "-> output", tuple(acts["pool"].shape))
assert acts.inputs["ups.0"].shape[1] == 2 * acts["upconvs.0"].shape[1]
assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())  # all removed

# %% [markdown]
# torchvision offers another way: `create_feature_extractor` traces the model with `torch.fx` and
# returns a new module whose output is a dict of the requested nodes. No hooks, but a second model;
# for a layer called once both give the same tensor.

# %%
extractor = create_feature_extractor(model, return_nodes={"bottleneck": "bottleneck"})
with torch.inference_mode(), capture(model, "bottleneck") as acts:
    model(images[:1])
    traced = extractor(images[:1])["bottleneck"]
print("bottleneck from capture:", tuple(acts["bottleneck"].shape), "| from the feature extractor:", tuple(traced.shape))
assert torch.equal(acts["bottleneck"], traced)

# %% [markdown]
# Two more kinds of hook do real work later on: **forward pre-hooks** that *replace* an input
# (`interpret.without_skips`, section 4) and gradients read during the backward pass (Grad-CAM,
# section 5). A **full backward hook** is called with the gradients of the loss with respect to the
# module's output (`grad_output`) and input (`grad_input`):

# %%
grads = {}
handle = model.bottleneck.register_full_backward_hook(lambda m, gin, gout: grads.update(out=gout[0].detach()))
# The photo needs no gradient: the layers before the bottleneck have weights that do, so the
# backward pass runs through the bottleneck and calls the hook (grad_input holds its input's gradient).
model(images[:1]).sum().backward()  # the score: the sum of the car logits over the picture
handle.remove()
model.zero_grad(set_to_none=True)
print("gradient of the score with respect to the bottleneck's output:", tuple(grads["out"].shape))

# %% [markdown]
# ## The U shape, block by block
#
# The shapes do not depend on the weights, so this table uses a fresh U-Net with the original
# project's widths (64, 128, 256, 512) on a 160x240 picture. Read it top to bottom: each down block
# keeps H and W and the pooling after it halves them while the next block doubles the channels;
# the bottleneck is the smallest and widest; each `upconvs` doubles H and W again and the `ups` block
# after it merges the skip connection; `final_conv` maps 64 channels to one logit per pixel.

# %%
# NBVAL_CHECK_OUTPUT
original = UNet(3, 1, features=(64, 128, 256, 512)).eval()
with torch.inference_mode(), capture(original, layer_names(original)) as shapes:
    original(torch.zeros(SHAPE_INPUT))
print(f"original U-Net: {count_parameters(original):,} parameters, input {SHAPE_INPUT}")
for name in layer_names(original):
    print(f"  {name:12s} -> {tuple(shapes[name].shape)}")

# %% [markdown]
# **Exercise 1: predict two shapes.** The table above is the original's network on a 160x240 picture.
# This notebook's checkpoint has the widths printed at the top (`model.arch["features"]`) and reads
# pictures of the size printed there. Without running the model, write the output shapes
# `(B, C, H, W)` of `bottleneck` and of `ups.1` for one such picture, as a dict.
# Expected: the bottleneck has twice the last width at 1/16 of H and W; `ups.1` has the second-to-last
# width at 1/4 of H and W. Section 2 below prints every block's shape for this checkpoint, so you can
# compare there afterwards.

# %%
print("widths", model.arch["features"], "| picture", tuple(images.shape[-2:]))
answer = ...  # e.g. {"bottleneck": (1, C, H, W), "ups.1": (1, C, H, W)}
check_exercise_1(answer, model, tuple(images.shape[-2:]))

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 1.
widths_ex, (h_ex, w_ex) = model.arch["features"], images.shape[-2:]
depth_ex = len(widths_ex)
answer = {
    "bottleneck": (1, 2 * widths_ex[-1], h_ex // 2**depth_ex, w_ex // 2**depth_ex),  # pooled depth times
    "ups.1": (1, widths_ex[-2], h_ex // 2 ** (depth_ex - 2), w_ex // 2 ** (depth_ex - 2)),  # two upconvs back up
}
assert check_exercise_1(answer, model, tuple(images.shape[-2:]))

# %% [markdown]
# ## 2. The whole U for one photo
#
# Each row is one block's output for the validation photo `SAMPLE`: the mean over its channels,
# then `CHANNELS`, each with its own colour bar. The panels are drawn at the block's own resolution
# (the size is in each title), so the encoder's coarsening shows as ever bigger pixels and the
# decoder's return to full resolution as ever finer ones.

# %%
blocks = [f"downs.{i}" for i in range(len(model.downs))] + ["bottleneck"] + [f"ups.{i}" for i in range(len(model.ups))]
with torch.inference_mode(), capture(model, blocks) as acts:
    logits = model(images)  # (N, 1, H, W)
preds = predict_labels(logits, config.threshold)  # (N, H, W) in {0, 1}
whole_u = {name: acts[name][SAMPLE] for name in blocks}
print("block       size      | mean activation on the car / on the background: all channels, then CHANNELS")
for name, act in whole_u.items():
    car_here = F.interpolate(masks[SAMPLE][None, None].float(), size=act.shape[1:], mode="area")[0, 0] > 0.5
    ratios = [act.mean(0)] + [act[c] for c in CHANNELS]  # (h, w) maps
    ratios = [m[car_here].mean().item() / max(m[~car_here].mean().item(), 1e-6) for m in ratios]
    print(
        f"{name:10s} {act.shape[0]:4d} x {act.shape[1]:3d}x{act.shape[2]:<3d} | "
        + "  ".join(
            f"{label} {r:5.2f}" for label, r in zip(["mean"] + [f"ch {c}" for c in CHANNELS], ratios, strict=True)
        )
    )
show_activation_rows(whole_u, CHANNELS, title=f"Each block's output, photo {ids[SAMPLE]}", tile=1.6)

# %% [markdown]
# How to read the figure: the first encoder blocks still look like the photo (edges, the dark
# windows and tyres, the floor), each channel a filtered copy of it. Deeper down the maps get coarse
# and abstract: the bottleneck's few pixels say roughly *where* the car is, not what its outline
# looks like. The decoder then draws the car's shape again at ever finer resolution, with the help
# of the skips. A ratio above 1 in the printed table means the map is brighter on the car than on the
# background, below 1 the reverse. Not every channel says "car": a decoder channel with a ratio below 1
# lights up the *background* (a negative of the car), which is just as useful to the final 1x1
# convolution, which weighs the channels and may subtract one of them.
#
# What all this computes: the photos loaded, each with the prediction painted red over it and the
# reference outline in yellow, named by photo id with its Dice. A miss shows as yellow line without
# red inside it, a false alarm as red beyond the line.

# %%
photo_dice = dice_per_image(preds, masks)  # (N,)
show_outlined_predictions(
    images,
    preds,
    masks,
    names=[f"{name}\nDice {d:.3f}" for name, d in zip(ids, photo_dice.tolist(), strict=True)],
    title="The validation photos loaded: prediction (red), reference (yellow outline)",
    tile=1.9,
)

# %% [markdown]
# ## 3. The original project's views
#
# The original project's test script (`test_semantic_segmentation_carvana.py` in
# [ash3327/ImageSegmentation-UNet](https://github.com/ash3327/ImageSegmentation-UNet)) hooked
# `downs[1]`, `bottleneck` and `ups[1]` and drew channels 0, 1 and 2 of each for one validation
# picture, one image per channel with a colour bar. Channel 0 of those blocks is in the whole-U
# figure above; set `CHANNELS = (0, 1, 2)` for all three, or pick any channel in the explorer
# (section 8).

# %% [markdown]
# It also drew one filter of the second 3x3 convolution of `downs[1]` and of `ups[1]`
# (`conv[3]`, output channel 2): its kernels on the first 9 input channels. Below, the same filter
# **at initialisation and after training**; each before/after pair shares one colour scale (red
# positive, blue negative, white 0), so a darker colour after training means a larger weight. The
# printed numbers say how far training moved each layer's weights.

# %%
views, moved = {}, {}
for layer in ("downs.1.conv.3", "ups.1.conv.3"):
    before, after = initial.get_submodule(layer).weight.detach(), model.get_submodule(layer).weight.detach()
    moved[layer] = ((after - before).norm() / before.norm()).item()
    same_sign = ((after > 0) == (before > 0)).float().mean().item()
    print(
        f"{layer}: weights {tuple(after.shape)}, moved by {moved[layer]:.1%} of their initial size in training; "
        f"{same_sign:.0%} of the weights kept their sign"
    )
    views[f"{layer}[2]\nat init"], views[f"{layer}[2]\ntrained"] = before[2], after[2]
print(f"the layer that moved more: {max(moved, key=moved.get)}")
show_kernels(
    views,
    max_inputs=9,
    rows_per_scale=2,
    title="Filter 2 of each layer's second 3x3 convolution, first 9 inputs: one colour scale per before/after pair",
)

# %% [markdown]
# How to read it: "moved by" is the size of the change (the norm of trained minus initial weights)
# relative to the size of the initial weights. A share well below 100 % with most weights keeping
# their sign means that training did not replace the random filters: it nudged them, and each
# trained kernel still resembles its random start (compare each pair). This is usual for a short
# training run: the network only needs to push the random filters part of the way to separate car
# from background. The layer that moved more (printed) is the one whose filters training had to
# reshape more; in the figure its pairs differ more visibly.

# %% [markdown]
# ## 4. Skip connections
#
# Each decoder block receives two inputs: the upsampled coarse map and, through the skip
# connection, the encoder's output at the same resolution. `interpret.without_skips(model, levels)`
# registers forward pre-hooks that replace the skip part of the decoder's input by zeros (level 0 is
# `downs.0`'s output, the finest). Scoring the validation cars with each skip removed shows which
# levels the network relies on. The figure below shows one photo with all skips, without the finest
# one (level 0) and without the one whose loss costs the most Dice.

# %%
val_loader = DataLoader(val_set, config.batch_size)
depth = len(model.downs)
print(f"{depth} skip levels; the validation set: {len(val_set)} photos")

# %% [markdown]
# **Exercise 2: which skip matters most?** Before the next cells score it: which skip level's loss
# costs the most Dice, 0 (`downs.0`'s full-resolution map) to 3 (the coarsest)? Think about what
# each carries: fine edges at level 0, the car's parts at the middle levels. Write the level as an
# int. Expected: the check scores every level itself (with a forward written out, not the library)
# and prints the Dice without each; the cell after it prints the same ranking.

# %%
answer = ...  # a level, 0 .. depth - 1
check_exercise_2(answer, model, val_loader, config.threshold)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 2.
dice_ex = {}
for level_ex in range(depth):
    with without_skips(model, [level_ex]):
        dice_ex[level_ex] = evaluate(model, val_loader, [Scores(1, [config.threshold])], progress=False)["dice"]
answer = min(dice_ex, key=dice_ex.get)  # the level whose loss leaves the lowest Dice
assert check_exercise_2(answer, model, val_loader, config.threshold)

# %%
ablations = {"all skips": ()} | {f"without level {level}": (level,) for level in range(depth)}
ablations["without any skip"] = tuple(range(depth))
dice = {}
for name, levels in ablations.items():
    with without_skips(model, levels):
        dice[name] = evaluate(model, val_loader, [Scores(1, [config.threshold])], progress=False)["dice"]
    print(f"{name:18s} Dice {dice[name]:.4f}  ({dice[name] - dice['all skips']:+.4f})")
assert not any(m._forward_pre_hooks for m in model.modules())  # the pre-hooks are gone again
stored = state["metrics"].get("val_dice", float("nan"))
print(
    f"stored in the checkpoint {stored:.4f}, scored again here {dice['all skips']:.4f}: {dice['all skips'] - stored:+.4f}"
)
called_car = {}
with torch.inference_mode():
    for name, levels in (("all skips", ()), ("without any skip", tuple(range(depth)))):
        with without_skips(model, levels):
            called = [predict_labels(model(x), config.threshold).float().mean() for x, _ in val_loader]
        called_car[name] = torch.stack(called).mean().item()
car_share = torch.stack([m.float().mean() for _, m in val_loader]).mean().item()
print(
    f"share of pixels called car: {called_car['all skips']:.1%} with all skips, {called_car['without any skip']:.1%} without any skip"
)
print(f"(the car covers {car_share:.1%} of the pixels in the references)")

# %%
most = min(range(depth), key=lambda level: dice[f"without level {level}"])  # the costliest skip to lose
print(f"the skip whose loss costs the most Dice here: level {most}")
shown_levels = {"all skips": []} | {f"without level {level}": [level] for level in sorted({0, most})}
panels = {}
with torch.inference_mode():
    for name, levels in shown_levels.items():
        with without_skips(model, levels):
            pred = predict_labels(model(images[SAMPLE : SAMPLE + 1]))  # (1, H, W)
        panels[f"{name} (Dice {dice_per_image(pred, masks[SAMPLE : SAMPLE + 1]).item():.3f})"] = pred[0]
show_mask_panels(images[SAMPLE], panels | {"reference": masks[SAMPLE]}, title=f"Validation photo {ids[SAMPLE]}")

# %% [markdown]
# How to read the scores. The first line with all skips is the same validation set scored again:
# the checkpoint stored its Dice during training, when the training loop scored under bf16
# autocast (the precision it trained in), while this notebook scores in fp32; a few pixels close to
# the threshold then land on the other side, so the two can differ in the last printed digit or so.
#
# Removing one skip: the printed differences are the cost of each level. On a validation set of
# a few dozen photos of a couple of cars, a difference of a few thousandths either way is noise:
# a skip whose removal leaves the Dice the same or even a little *higher* carries little the
# decoder needs here, and the sign of such a small change can flip in another run. The levels whose
# removal costs several hundredths are the ones the decoder relies on.
#
# Removing every skip is another matter: the decoder then gets nothing but the bottleneck's
# upsampled maps, a situation it never saw in training, where the skips always carried half of
# each decoder block's input. The printed share of pixels called car shows what it does then; where
# that share is 0 %, it calls every pixel background, and a Dice of exactly 0 follows (no pixel is
# right on the car). The network has not learnt to segment from the bottleneck alone.

# %% [markdown]
# **What `without_skips` does, written out.** Here is the U-Net's `forward` (as in `unet_lib/model.py`)
# with one change: the skip of one level is replaced by zeros before the decoder concatenates it. The
# decoder block still gets its `2f` input channels, but the first `f` of them carry nothing. The
# library does the same with a forward pre-hook on that decoder block, without touching `forward`;
# both give the same logits:


# %%
def forward_without_skip(model, x, level):
    """UNet.forward with the skip of ``level`` zeroed."""
    skips = []
    for down in model.downs:
        x = down(x)  # (B, f, h, w)
        skips.append(torch.zeros_like(x) if len(skips) == level else x)  # the cut skip: zeros of the same shape
        x = model.pool(x)  # (B, f, h/2, w/2)
    x = model.bottleneck(x)
    for upconv, up, skip in zip(model.upconvs, model.ups, reversed(skips), strict=True):
        x = pad_to(upconv(x), skip)  # (B, f, h, w)
        x = torch.cat([skip, x], dim=1)  # (B, 2f, h, w): the skip first
        x = up(x)
    return model.final_conv(x)  # (B, 1, H, W)


with torch.inference_mode():
    for level in range(depth):
        by_hand = forward_without_skip(model, images, level)
        with without_skips(model, [level]):
            torch.testing.assert_close(by_hand, model(images))
        print(f"level {level}: the written-out forward and without_skips agree")

# %% [markdown]
# ## 5. Grad-CAM: what makes the network say "car"
#
# Grad-CAM (Selvaraju et al., 2017) weighs a layer's channels by how much the score depends on
# them: the score here is the sum of the car logits over the picture (or over a region), each
# channel's weight is the spatial mean of the score's gradient with respect to it, and the map is
# the ReLU of the weighted sum of the channels, at the layer's own resolution. Bright means "this
# place, seen by this layer, raises the car score". The model has one output channel, channel 0:
# the car logit.
#
# **Exercise 3: Grad-CAM from a gradient.** Given a layer's activation `acts_ex` and the gradient of
# the score with respect to it, `grads_ex` (both `(B, C, h, w)`, made up here), compute the Grad-CAM
# map `(B, h, w)`: one weight per channel (the mean of its gradient over h and w), the weighted sum
# of the channels, then the ReLU. Expected: a `(1, 3, 5)` map of non-negative numbers; the check
# compares it with an `einsum` of the definition.

# %%
generator = torch.Generator().manual_seed(0)
acts_ex = torch.rand(1, 4, 3, 5, generator=generator)  # (B, C, h, w): after a ReLU, so >= 0
grads_ex = torch.randn(1, 4, 3, 5, generator=generator)  # dscore/dacts, same shape
answer = ...  # the map (1, 3, 5)
check_exercise_3(answer, acts_ex, grads_ex)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 3.
weights_ex = grads_ex.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1): one weight per channel
answer = F.relu((weights_ex * acts_ex).sum(dim=1))  # (1, h, w)
assert check_exercise_3(answer, acts_ex, grads_ex)

# %% [markdown]
# **Grad-CAM by hand.** A forward hook keeps the layer's output `A`; `torch.autograd.grad` gives the
# gradient of the score (the car logit summed over every pixel) with respect to that kept tensor,
# without touching the parameters' `.grad`. Then the three steps of the exercise. The library's
# `interpret.grad_cam` does exactly this (it returns the map at the layer's resolution, not
# normalised; the figures upsample it bilinearly onto the photo), so the two must agree:

# %%
layer = "ups.1"
kept = {}
handle = model.get_submodule(layer).register_forward_hook(lambda module, args, output: kept.update(A=output))
logits_one = model(images[SAMPLE : SAMPLE + 1])  # eval mode, gradients on: (1, 1, H, W)
handle.remove()
score = logits_one[:, 0].sum()  # the car logit (output channel 0) summed over the picture
(grad_A,) = torch.autograd.grad(score, kept["A"])  # (1, C, h, w)
channel_weights = grad_A.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
cam_by_hand = F.relu((channel_weights * kept["A"]).sum(dim=1)).detach()  # (1, h, w)
torch.testing.assert_close(cam_by_hand, grad_cam(model, images[SAMPLE : SAMPLE + 1], layer))
print(f"{layer}: A {tuple(kept['A'].shape)}, {channel_weights.numel()} channel weights, map {tuple(cam_by_hand.shape)}")
positive = channel_weights > 0
print(f"channels with a positive weight: {positive.sum().item()} of {channel_weights.numel()}")
print("the map by hand equals interpret.grad_cam's")

# %% [markdown]
# A positive weight means that more of this channel raises the car score, a negative one that it
# lowers it. Only part of the channels get a positive weight (printed): the others are mostly the
# "background" channels seen in section 2, bright where there is no car, and they *subtract* from the
# sum. That is why the ReLU comes last: where the negative channels win, the place is evidence
# against the car and the map shows 0 there.

# %% [markdown]
# The library's maps for three layers, from coarse to fine:

# %%
cams = {layer: grad_cam(model, images[SAMPLE : SAMPLE + 1], layer)[0] for layer in CAM_LAYERS}
car_sample = masks[SAMPLE].bool()
print(f"the car covers {car_sample.float().mean():.1%} of the photo")
for layer, cam in cams.items():
    heat = F.interpolate(cam[None, None], size=car_sample.shape, mode="bilinear", align_corners=False)[0, 0]
    on_car = heat[car_sample].sum().item() / heat.sum().clamp(min=1e-12).item()
    print(
        f"{layer:10s} map {tuple(cam.shape)}, max {cam.max():.3g} (drawn upsampled: max {heat.max():.3g}); "
        f"{on_car:.0%} of its weight on the car"
    )
show_heatmaps(images[SAMPLE], cams, title=f"Grad-CAM of the car logit, validation photo {ids[SAMPLE]}", tile=1.6)

# %% [markdown]
# How to read them: each colour bar belongs to its panel, since the three layers' maps have very
# different ranges (one bottleneck cell feeds many output pixels, so the score's gradient with respect
# to it, and with it the bottleneck's map, is larger). The figure draws each map upsampled bilinearly onto the photo,
# which averages neighbouring cells: its colour bar tops out at the upsampled maximum (printed), a
# little below the map's own maximum. A layer whose weight lies mostly on the car (compare the
# printed share with the car's share of the photo) found the car itself to be the evidence for "car";
# the bottleneck's map, a few cells for the whole photo (its shape printed), can only point at the
# car's rough place and spills over onto the background around it.

# %% [markdown]
# **Where it is wrong.** The same score, summed only over a false-positive region (pixels called
# car that are background), shows which places raised the car logit there. The photo with the most
# false-positive pixels among the validation pictures loaded here is used. To read the maps, the
# cell also prints where each map's weight lies: on the false positives themselves, on the real car,
# or elsewhere in the background.

# %%
false_pos = (preds == 1) & (masks == 0)  # (N, H, W)
worst = int(false_pos.flatten(1).sum(1).argmax())
if false_pos[worst].any():
    print(f"photo {ids[worst]}: {false_pos[worst].sum().item()} false-positive pixels")
    fp_cams = {
        layer: grad_cam(model, images[worst : worst + 1], layer, region=false_pos[worst : worst + 1])[0]
        for layer in CAM_LAYERS
    }
    display(
        show_heatmaps(
            images[worst],
            fp_cams,
            region=false_pos[worst],
            title=f"Grad-CAM of the false positives, {ids[worst]}",
            tile=1.6,
        )
    )
    car, region = masks[worst].bool(), false_pos[worst]
    fp_area, car_area = region.float().mean().item(), car.float().mean().item()
    print(f"share of the picture: false positives {fp_area:.1%}, car {car_area:.1%}")
    print("share of each map's weight, and that share divided by the place's share of the picture:")
    for layer, cam in fp_cams.items():
        heat = F.interpolate(cam[None, None], size=car.shape, mode="bilinear", align_corners=False)[0, 0]
        heat = heat / heat.sum().clamp(min=1e-12)  # shares of the map's total weight
        shares = {"the false positives": heat[region].sum().item(), "the car": heat[car].sum().item()}
        shares["the rest of the background"] = 1 - sum(shares.values())
        main_place = max(shares, key=shares.get)
        fp_ratio, car_ratio = shares["the false positives"] / fp_area, shares["the car"] / car_area
        scale = car.shape[-1] // cam.shape[-1]  # 1/scale of the photo's resolution
        print(
            f"{layer:10s} (1/{scale} of the resolution) "
            + ", ".join(f"{share:.0%} on {where}" for where, share in shares.items())
            + f" -> mostly {main_place}"
        )
        if fp_ratio >= car_ratio:
            reading = "the false positives themselves look like car to this layer"
        elif fp_ratio > 1:
            reading = "its evidence is the car, and it spills onto the false positives next to the car"
        else:
            reading = "the false positives are not where this layer's evidence lies"
        print(f"{'':10s} factor {fp_ratio:.1f} on the false positives, {car_ratio:.1f} on the car: {reading}")
else:
    print("no false-positive pixels in these photos")

# %% [markdown]
# How to read these numbers: false positives usually lie in a thin band along the car's outline. The
# rule: divide a place's share of a map's weight by its share of the picture (the printed factor); a
# map spread evenly over the photo would give every place a factor 1. Three cases, and the cell
# prints which one each layer shows:
#
# - the factor on the false positives is at least the car's: the layer found car-like evidence in
#   those background pixels themselves (a shadow, a dark floor next to a dark tyre);
# - it is above 1 but below the car's: the layer's evidence is the car, and because the false
#   positives touch the car, the weight spills onto them. The network then called them car *because
#   of the car next to them*: a layer at a coarser resolution (printed beside each name) cannot place
#   the outline more finely than its own pixels, and the upsampled map blurs it further;
# - it is 1 or below: the false positives are not where the layer's evidence lies.
#
# The bottleneck's map, a few pixels wide, is too coarse to tell the false positives from the car
# beside them: whatever its factors, read it as "roughly where the car is".

# %% [markdown]
# ## 6. BatchNorm: train mode and eval mode
#
# Every block has BatchNorm layers, and they behave differently in the two modes:
#
# - in **train mode** (`model.train()`) a BatchNorm normalises each channel by the mean and
#   variance of the *current batch* (over the pictures and pixels), and updates its running averages;
# - in **eval mode** (`model.eval()`) it uses those *running averages*, learned during training and
#   stored in the checkpoint (`running_mean`, `running_var`): every picture is normalised the same
#   way, whatever else is in the batch.
#
# **Exercise 4: same output?** On the batch of the photos loaded, is the output of the trained model
# in train mode equal to its output in eval mode (`True` or `False`)? Expected: think of what each
# mode divides by; the check runs both on a copy of the model and prints the largest difference.

# %%
answer = ...  # True or False
check_exercise_4(answer, model, images)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 4.
answer = False  # train mode: this batch's statistics; eval mode: the running averages from training
assert check_exercise_4(answer, model, images)

# %% [markdown]
# The cell below runs one photo through a **copy** of the model (train mode would update the real
# model's running averages) in both modes, keeps the input and the output of the first BatchNorm of
# `downs.1` with hooks, and prints the statistics each mode normalised with, for the first four
# channels. Both are checked by hand: `(x - mean) / sqrt(var + eps) * weight + bias`.

# %%
twin = copy.deepcopy(model)
bn = twin.downs[1].conv[1]  # the first BatchNorm of downs.1
running_mean, running_var = bn.running_mean.clone(), bn.running_var.clone()  # learned in training
seen = {}
handle = bn.register_forward_hook(lambda m, args, out: seen.update(x=args[0].clone(), y=out.clone()))
one = images[SAMPLE : SAMPLE + 1]
with torch.no_grad():
    logits_eval = twin.eval()(one)  # (1, 1, H, W)
    x_eval, y_eval = seen["x"], seen["y"]
    logits_train = twin.train()(one)  # one picture is the whole batch
    x_train, y_train = seen["x"], seen["y"]
handle.remove()
batch_mean, batch_var = x_train.mean(dim=(0, 2, 3)), x_train.var(dim=(0, 2, 3), unbiased=False)  # (C,)


def normalise(x, mean, var):
    shape = (1, -1, 1, 1)  # one number per channel
    return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + bn.eps) * bn.weight.view(shape) + bn.bias.view(shape)


with torch.no_grad():
    torch.testing.assert_close(y_eval, normalise(x_eval, running_mean, running_var))
    torch.testing.assert_close(y_train, normalise(x_train, batch_mean, batch_var))
print("channel  running mean   batch mean | running var   batch var")
for c in range(4):
    print(f"{c:7d}  {running_mean[c]:12.3f} {batch_mean[c]:12.3f} | {running_var[c]:11.3f} {batch_var[c]:11.3f}")
print(f"the BatchNorm's output differs by up to {(y_eval - y_train).abs().max():.3g} between the modes")
print(f"the logits differ by up to {(logits_eval - logits_train).abs().max():.3g}")
pred_eval, pred_train = predict_labels(logits_eval, config.threshold), predict_labels(logits_train, config.threshold)
dice_eval = dice_per_image(pred_eval, masks[SAMPLE : SAMPLE + 1]).item()
dice_train = dice_per_image(pred_train, masks[SAMPLE : SAMPLE + 1]).item()
print(f"photo {ids[SAMPLE]}: Dice {dice_eval:.3f} in eval mode, {dice_train:.3f} in train mode (a batch of one)")
print(f"pixels whose label changes: {(pred_eval != pred_train).sum().item()} of {pred_eval.numel()}")
del twin  # its running averages moved: only this copy's

# %% [markdown]
# Why they differ: in eval mode the first BatchNorm of `downs.1` subtracts the averages learned over
# all the training batches; in train mode it subtracts this one photo's own mean, so whatever makes
# this photo brighter or darker than usual is normalised away, and every later layer sees inputs on
# another scale than in training. The differences add up through the network, and the printed Dice
# shows what it does to the mask. That is why `evaluate` and `predict` call `model.eval()` first, and
# why training needs batches of several pictures: one picture's statistics are a noisy estimate.
#
# **Exercise 5: BatchNorm by hand.** Compute the train-mode output of `bn_ex` on the batch `x_ex`
# yourself: per channel, the mean and variance over the pictures and pixels (dimensions 0, 2, 3),
# then `(x - mean) / sqrt(var + eps) * weight + bias`. Expected: a tensor of `x_ex`'s shape equal to
# what `bn_ex` gives in train mode; mind which variance BatchNorm uses (the check's hint says).

# %%
generator = torch.Generator().manual_seed(1)
x_ex = 2 * torch.randn(4, 3, 5, 5, generator=generator) + 1  # (B, C, H, W)
bn_ex = torch.nn.BatchNorm2d(3)
with torch.no_grad():
    bn_ex.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    bn_ex.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
answer = ...  # (4, 3, 5, 5)
check_exercise_5(answer, x_ex, bn_ex)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 5.
mean_ex = x_ex.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
var_ex = x_ex.var(dim=(0, 2, 3), unbiased=False, keepdim=True)  # biased: divided by the count, not count - 1
scale_ex, shift_ex = bn_ex.weight.detach().view(1, -1, 1, 1), bn_ex.bias.detach().view(1, -1, 1, 1)
answer = (x_ex - mean_ex) / torch.sqrt(var_ex + bn_ex.eps) * scale_ex + shift_ex
assert check_exercise_5(answer, x_ex, bn_ex)

# %% [markdown]
# ## 7. Receptive fields
#
# An output pixel can only depend on the input pixels its **receptive field** covers. Each 3x3
# convolution widens it by 2 steps of the current resolution; each 2x2 pooling widens it by one step
# (its window is 2 positions wide) and then doubles the step, so it grows fast on the way down; the decoder's convolutions widen it a little more.
# `interpret.receptive_fields` walks the layers and gives the side, in input pixels, that one
# position of each block sees; the output pixel sees what `ups.3` sees (`final_conv` is 1x1).
#
# **Exercise 6: a receptive field.** A small network: a 3x3 convolution, another 3x3 convolution,
# a 2x2 max pooling (stride 2), then one more 3x3 convolution. How many input pixels wide is the
# receptive field of one of its outputs? Use `r += (k - 1) * j; j *= s` from the input side (`j`,
# the step between neighbouring positions in input pixels, starts at 1). Expected: an int; the check
# measures it with a gradient through that network.

# %%
answer = ...  # an int, in input pixels
check_exercise_6(answer)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 6.
field_ex, step_ex = 1, 1
for kernel_ex, stride_ex in ((3, 1), (3, 1), (2, 2), (3, 1)):
    field_ex += (kernel_ex - 1) * step_ex
    step_ex *= stride_ex
answer = field_ex  # 1 + 2 + 2 + 1 + 2 * 2
assert check_exercise_6(answer)

# %% [markdown]
# The same walk over the U-Net:

# %%
fields = receptive_fields(model)
for name, size in fields.items():
    print(f"{name:10s} {size:4d} px")
for before, after in zip(blocks[-len(model.ups) - 1 : -1], blocks[-len(model.ups) :], strict=True):
    if fields[after] == fields[before]:
        print(f"{after} sees as far as {before}: its convolutions add no further bottleneck position")
side = fields[blocks[-1]]  # one output pixel's field
for h, w in ((64, 96), (320, 480), (1280, 1918)):
    print(
        f"picture {h}x{w}: one output pixel sees {min(side / h, 1):.0%} of its height, {min(side / w, 1):.0%} of its width"
    )

# %% [markdown]
# Why a decoder block can print the same field as the one before it (here if the cell says so):
# `receptive_fields` walks back from one position of the block to the input. A decoder block's
# two 3x3 convolutions widen the window by 4 positions at its own resolution, but on the way back
# each 2x2 transposed convolution with stride 2 turns `n` fine positions into at most `n // 2 + 1`
# coarse ones (the largest over the ways the window can fall on the coarser grid; that worst case is
# what is reported). The widening of a fine block is thus halved at every level on the way back, and
# by the bottleneck it can round away: the last block then reaches no bottleneck position that the
# block before did not, and the field in input pixels, set by the bottleneck positions reached, stays
# the same. The numbers are properties of the layers alone: they are not capped by the picture's size,
# which is why the cell compares them with several picture sizes.

# %% [markdown]
# The theoretical field is a limit; the **effective** receptive field is where the gradient of one
# output logit actually reaches in the input (Luo et al., 2016): how much each input pixel moves
# that logit. By hand it is one `torch.autograd.grad` of the centre pixel's car logit with respect
# to the input photo, in absolute value, summed over the three colour channels, as
# `interpret.effective_receptive_field` defines it:

# %%
centre = (images.shape[-2] // 2, images.shape[-1] // 2)
x = images[SAMPLE : SAMPLE + 1].clone().requires_grad_()  # (1, 3, H, W): the gradient is taken w.r.t. it
logits_one = model(x)  # eval mode: (1, 1, H, W)
(grad_x,) = torch.autograd.grad(logits_one[0, 0, centre[0], centre[1]], x)  # (1, 3, H, W)
erf_by_hand = grad_x.abs().sum(dim=1).mean(dim=0)  # (H, W): summed over channels, averaged over the batch of 1
torch.testing.assert_close(erf_by_hand, effective_receptive_field(model, images[SAMPLE : SAMPLE + 1], centre))
print(
    f"output pixel {centre}: gradient {tuple(grad_x.shape)} -> map {tuple(erf_by_hand.shape)}, "
    f"{(erf_by_hand > 0).sum().item()} of {erf_by_hand.numel()} input pixels move it"
)
print("the map by hand equals interpret.effective_receptive_field's")

# %% [markdown]
# Below, the map for the centre pixel at initialisation and after training. The theoretical field
# (`side` px, printed above) is larger than this 64x96 picture in quick mode, so its dashed square
# is drawn at the picture's edges, and the legend says so. `interpret.erf_size` sums the map up as
# the side of the smallest square around the pixel that holds 90% of the gradient.
#
# At initialisation BatchNorm's running statistics are still their defaults (mean 0, variance 1;
# section 6), so in eval mode the signal of the deep path stays small and the gradient reaches the
# input mostly through the finest skip connection: `downs.0` and `ups.3` see 5 + 4 = 9 pixels together.

# %%
erfs = {
    "at initialisation": effective_receptive_field(initial, images[SAMPLE : SAMPLE + 1], centre),
    "after training": effective_receptive_field(model, images[SAMPLE : SAMPLE + 1], centre),
}
sizes = {name: erf_size(erf, centre) for name, erf in erfs.items()}
for name, size in sizes.items():
    print(f"{name:18s} 90% of the gradient lies within a {size} px square around the pixel")
grown = sizes["after training"] / max(sizes["at initialisation"], 1)
print(
    f"training made it {grown:.1f} times as wide; it is {sizes['after training'] / side:.0%} of the theoretical {side} px"
)
rows, cols = masks[SAMPLE].nonzero(as_tuple=True)
car_h, car_w = (rows.max() - rows.min() + 1).item(), (cols.max() - cols.min() + 1).item()
trained = sizes["after training"]
if trained < min(car_h, car_w):
    relation = "narrower than the car both ways"
elif trained <= max(car_h, car_w):
    relation = "between the car's height and width"
else:
    relation = "larger than the car both ways"
print(f"the car is {car_h}x{car_w} px (height x width): the trained 90% square ({trained} px) is {relation}")
for name, erf in erfs.items():
    near = erf[max(centre[0] - 2, 0) : centre[0] + 3, max(centre[1] - 2, 0) : centre[1] + 3].sum() / erf.sum()
    print(f"{name:18s} share of the gradient on the 5x5 pixels around the output pixel: {near:.0%}")
show_receptive_fields(
    images[SAMPLE], erfs, centre, theoretical=side, title=f"Effective receptive field, photo {ids[SAMPLE]}"
)

# %% [markdown]
# What the numbers say: the effective field is far smaller than the theoretical one, as Luo et al.
# found for deep networks in general: the gradient of one output falls off fast with distance, so
# 90 % of it comes from a square whose side is a small share of the theoretical field's (printed),
# and the far pixels of the theoretical field barely count. Training widens it (the printed factor)
# and spreads it: less of the gradient stays on the 5x5 pixels next to the output pixel. The
# trained network has learned to use the deep path through the bottleneck, which brings in context
# from farther away (is this pixel inside a car's body, or on the floor beside it?), while the
# finest skip keeps the nearest pixels in charge of the exact edge. How far that context reaches,
# compared with the car, is in the printed comparison of the 90 % square with the car's height and
# width: where the square is narrower than the car both ways, a pixel of the mask is decided mostly
# by a neighbourhood smaller than the car; where it lies between the car's height and width, or is
# larger, the centre pixel draws on about a car's worth of the photo, still far less than the
# theoretical field.

# %% [markdown]
# ## 8. Explore every layer
#
# The explorer runs one forward pass per sample (with `capture`) and shows the picked layer next to
# the input, with the reference mask outlined in yellow (the **reference outline** box turns it off).
# Pick a **sample**, a **layer** and a **view**:
#
# - **channel**: one channel, with its colour bar; the **channel** slider picks it;
# - **mean**: the mean over all channels;
# - **grid**: 16 channels side by side, each scaled to its own range; the slider pages through all of them;
# - **filters**: the weights of the layer's last 3x3 convolution, one output filter (the slider) at a time;
# - **grad-cam**: Grad-CAM of that layer for the car logit (output channel 0), over the photo.
#
# The line above the picture gives the shape and the range of what is shown. Without a running
# kernel (on GitHub, or before you run the notebook) the widget cannot draw: the static copies of
# its views below show the same pictures.

# %%
explorer = LayerExplorer(model, images, masks)
display(explorer.widget)

# %% [markdown]
# The widgets are plain Python objects: setting their values from code redraws the explorer above,
# and `explorer.state()` reports what is on screen. Each cell below sets a view, checks the state,
# and displays a static copy of the picture (`explorer.figure()`). The bottleneck has
# `2 * widths[-1]` channels at 1/16 of the picture's size; its grid pages through them 16 at a time.

# %%
# NBVAL_IGNORE_OUTPUT
explorer.layer.value = "bottleneck"
explorer.view.value = "grid"
explorer.channel.value = 16
state = explorer.state()
h, w = images.shape[-2:]
widths = model.arch["features"]
assert state["activation_shape"] == (2 * widths[-1], h // 2 ** len(widths), w // 2 ** len(widths))
assert (state["first_channel"], state["last_channel"]) == (16, 31) and state["num_channels"] == 2 * widths[-1]
print({k: state[k] for k in ("layer", "view", "first_channel", "last_channel", "num_channels", "title")})
display(explorer.figure())

# %% [markdown]
# The mean view of the last decoder block (its title printed; try it live), and one filter of `downs.1`'s second
# convolution (the one the original project drew):

# %%
# NBVAL_IGNORE_OUTPUT
explorer.layer.value = "ups.3"
explorer.view.value = "mean"
assert explorer.state()["view"] == "mean" and not explorer.state()["channel_enabled"]
print(explorer.state()["title"])
explorer.layer.value = "downs.1"
explorer.view.value = "filters"
explorer.channel.value = 2
state = explorer.state()
assert state["conv"] == "downs.1.conv.3" and state["channel"] == 2
print({k: state[k] for k in ("layer", "view", "conv", "channel", "title")})
display(explorer.figure())

# %% [markdown]
# And Grad-CAM of `ups.1` for another sample (its title printed; section 5 drew such maps); then the
# explorer goes back to the view it showed when it was created: sample 0, layer `downs.0`, the
# channel view of channel 0 (the last line printed describes it).

# %%
# NBVAL_IGNORE_OUTPUT
explorer.sample.value = len(images) - 1
explorer.layer.value = "ups.1"
explorer.view.value = "grad-cam"
state = explorer.state()
assert state["sample"] == len(images) - 1 and state["reference"] and state["title"].startswith("Grad-CAM of ups.1")
print(state["title"])
explorer.sample.value, explorer.layer.value, explorer.view.value, explorer.channel.value = 0, "downs.0", "channel", 0
print(explorer.state()["label"])

# %% [markdown]
# ### Reading quick-mode numbers
#
# In quick mode the checkpoint is `train_carvana`'s small network (widths 16 to 128) after a few
# epochs on 64x96 pictures of a few sample cars. Its maps are coarse (the bottleneck is 4x6 pixels);
# a full-size network at 320x480 has a bottleneck of 20x30, and its skip connections carry far more
# detail. The Dice drops without each skip (section 4) are measured on the held-out photos of only
# a few cars (their number is printed at the top): compare their order, not their decimals, and expect
# two levels that cost about the same to swap places in another run.
#
# ## Summary
#
# - Hooks read (forward hooks), change (forward pre-hooks) and differentiate (backward hooks) any
#   layer without touching `forward`; `capture` copies what it keeps and always removes its hooks.
# - The encoder trades resolution for channels; the decoder returns to full resolution, and the
#   skip connections bring the encoder's fine maps back: section 4 measures how much each one is worth.
# - Grad-CAM and the effective receptive field show *where* the network looks, not only *what* it outputs.
# - The explorer puts all of it on sliders: any layer, channel, filter or Grad-CAM of any sample.
# - BatchNorm normalises by the batch's statistics in train mode and by the running averages in
#   eval mode: always score and predict in eval mode.
#
# ## More to try
#
# The six exercises above are spread through the notebook (each checks itself). Open-ended ones, all
# possible in quick mode:
#
# 1. In the parameters cell, set `SAMPLE` to another of the `NUM_SAMPLES` photos (or raise
#    `NUM_SAMPLES`, up to the validation set's size) and `CAM_LAYERS` to `("downs.0", "downs.3", "ups.3")`:
#    where does Grad-CAM put the weight, layer by layer?
# 2. Set `CHANNELS` to other channels of the whole-U figure, or page through them in the explorer:
#    find one that fires on the wheels, one on the floor's shadow.
# 3. In section 7, take the effective receptive field of a pixel on the car's edge instead of the
#    centre: is it smaller or larger?
#
# ## Further reading
#
# - PyTorch hooks: [`register_forward_hook`](https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.register_forward_hook),
#   [`register_forward_pre_hook`](https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.register_forward_pre_hook)
#   and torchvision's [feature extraction](https://pytorch.org/vision/stable/feature_extraction.html).
# - Selvaraju et al., [Grad-CAM](https://arxiv.org/abs/1610.02391) (2017); Luo et al., [Understanding
#   the Effective Receptive Field in Deep Convolutional Neural Networks](https://arxiv.org/abs/1701.04128) (2016).
# - The U-Net paper: [Ronneberger et al., 2015](https://arxiv.org/abs/1505.04597).
#
# **Next:** `train_cityscapes` trains the same U-Net on street scenes with 19 classes.
