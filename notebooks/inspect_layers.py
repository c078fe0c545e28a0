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
#    it is wrong.
# 6. **Receptive fields**: how much of the photo one output pixel can see, in theory and in fact.
# 7. An interactive **explorer** of every layer, channel and filter, with static copies of its views.
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
# the final Dice can move more: with the level-1 skip removed (section 4) the Dice was 0.553 here and
# 0.619 in fp32, though level 1 stayed the costliest skip to lose; and Grad-CAM (section 5) picked
# another photo as the one with the most false positives.

# %% tags=["parameters"]
from unet_lib.cli.profiles import notebook_profile

QUICK, WHY = notebook_profile()  # UNET_QUICK=1 or 0 decides; unset, quick without a GPU (sample data)
CHECKPOINT = None  # a path to a best.pt, or None for train_carvana's newest (else the newest under models/)
NUM_SAMPLES = 4  # validation pictures in the explorer and the galleries
SAMPLE = 0  # the validation picture studied in sections 2 to 6
CHANNELS = (0, 1)  # the channels drawn beside each layer's mean in "the whole U"
CAM_LAYERS = ("downs.1", "bottleneck", "ups.1")  # layers whose Grad-CAM is drawn
SHAPE_INPUT = (1, 3, 160, 240)  # (B, C, H, W) of the dummy input in the shape table: the original's picture size

# %%
import dataclasses

import matplotlib.pyplot as plt
import torch
from IPython.display import display
from torch.utils.data import DataLoader
from torchvision.models.feature_extraction import create_feature_extractor

from unet_lib import Scores, build_datasets, build_model, capture, evaluate, layer_names, model_from_checkpoint
from unet_lib.cli.original import checkpoint_config
from unet_lib.cli.workspace import carvana_checkpoint, carvana_dir, shown
from unet_lib.evaluation import predict_labels
from unet_lib.inspect.interpret import effective_receptive_field, erf_size, grad_cam, receptive_fields, without_skips
from unet_lib.metrics import dice_per_image
from unet_lib.model import UNet, count_parameters
from unet_lib.runtime import seed_everything
from unet_lib.viz import (
    show_activation_rows,
    show_heatmaps,
    show_kernels,
    show_mask_panels,
    show_predictions,
    show_receptive_fields,
)
from unet_lib.viz.widgets import LayerExplorer

plt.rcParams["figure.dpi"] = 56  # many figures here: modest pictures keep the notebook light
print(f"{'quick' if QUICK else 'full'} profile: {WHY}")

# %% [markdown]
# ## The model and a few validation pictures
#
# `model_from_checkpoint` rebuilds the U-Net from the widths stored in the checkpoint and loads its
# weights; the training settings come back as a `TrainConfig`, so the pictures are resized exactly
# as during training. The validation cars are ones the network never trained on.
#
# Training started from random weights drawn right after `seed_everything(config.seed)`, so the
# same call rebuilds the network **as it was before training**: section 3 compares the two.

# %%
checkpoint_path = CHECKPOINT or carvana_checkpoint()
model, state = model_from_checkpoint(checkpoint_path, num_classes=1)
config = dataclasses.replace(checkpoint_config(state, checkpoint_path), data_dir=str(carvana_dir()))
_, val_set = build_datasets(config)
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
x = images[:1].clone().requires_grad_()  # the input needs a gradient for the hook to fire
model(x).sum().backward()  # the score: the sum of the car logits over the picture
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
for name, act in whole_u.items():
    print(f"{name:10s} {act.shape[0]:4d} channels at {act.shape[1]:3d}x{act.shape[2]:<3d}")
show_activation_rows(whole_u, CHANNELS, title=f"Every block's output for validation photo {SAMPLE}")

# %%
show_predictions(images, preds.unsqueeze(1), masks, title="The validation photos: prediction (top), reference")

# %% [markdown]
# ## 3. The original project's views
#
# The original project's test script (`test_semantic_segmentation_carvana.py` in
# [ash3327/ImageSegmentation-UNet](https://github.com/ash3327/ImageSegmentation-UNet)) hooked
# `downs[1]`, `bottleneck` and `ups[1]` and drew channels 0, 1 and 2 of each for one validation
# picture, one image per channel with a colour bar. Here are the same views of this checkpoint:

# %%
with torch.inference_mode(), capture(model, ["downs.1", "bottleneck", "ups.1"]) as acts:
    model(images[SAMPLE : SAMPLE + 1])
show_activation_rows(
    {name: act[0] for name, act in acts.items()},
    channels=(0, 1, 2),
    mean=False,
    title="The original project's view: channels 0-2 of downs[1], bottleneck, ups[1]",
)

# %% [markdown]
# It also drew one filter of the second 3x3 convolution of `downs[1]` and of `ups[1]`
# (`conv[3]`, output channel 2): its kernels on the first 9 input channels. Below, the same filter
# **at initialisation and after training**, on one colour scale per row (red positive, blue
# negative). The printed numbers say how far training moved each layer's weights.

# %%
views = {}
for layer in ("downs.1.conv.3", "ups.1.conv.3"):
    before, after = initial.get_submodule(layer).weight.detach(), model.get_submodule(layer).weight.detach()
    moved = ((after - before).norm() / before.norm()).item()
    print(f"{layer}: weights {tuple(after.shape)}, moved by {moved:.1%} of their initial size in training")
    views[f"{layer}[2]\nat init"], views[f"{layer}[2]\ntrained"] = before[2], after[2]
show_kernels(views, max_inputs=9, title="Filter 2 of each layer's second 3x3 convolution, first 9 inputs")

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
ablations = {"all skips": ()} | {f"without level {level}": (level,) for level in range(depth)}
ablations["without any skip"] = tuple(range(depth))
dice = {}
for name, levels in ablations.items():
    with without_skips(model, levels):
        dice[name] = evaluate(model, val_loader, [Scores(1, [config.threshold])], progress=False)["dice"]
    print(f"{name:18s} Dice {dice[name]:.4f}  ({dice[name] - dice['all skips']:+.4f})")
assert not any(m._forward_pre_hooks for m in model.modules())  # the pre-hooks are gone again

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
show_mask_panels(images[SAMPLE], panels | {"reference": masks[SAMPLE]}, title=f"Validation photo {SAMPLE}")

# %% [markdown]
# ## 5. Grad-CAM: what makes the network say "car"
#
# Grad-CAM (Selvaraju et al., 2017) weighs a layer's channels by how much the score depends on
# them: the score here is the sum of the car logits over the picture (or over a region), each
# channel's weight is the spatial mean of the score's gradient with respect to it, and the map is
# the ReLU of the weighted sum of the channels, at the layer's own resolution. Bright means "this
# place, seen by this layer, raises the car score". `interpret.grad_cam` reads the layer's output
# with a forward hook and gets its gradient with `torch.autograd.grad`, then removes the hook.

# %%
cams = {layer: grad_cam(model, images[SAMPLE : SAMPLE + 1], layer)[0] for layer in CAM_LAYERS}
for layer, cam in cams.items():
    print(f"{layer:10s} map {tuple(cam.shape)}, max {cam.max():.3g}")
show_heatmaps(images[SAMPLE], cams, title=f"Grad-CAM of the car score, validation photo {SAMPLE}")

# %% [markdown]
# **Where it is wrong.** The same score, summed only over a false-positive region (pixels called
# car that are background), shows what misled the network there. The photo with the most
# false-positive pixels among the validation pictures shown here is used.

# %%
false_pos = (preds == 1) & (masks == 0)  # (N, H, W)
worst = int(false_pos.flatten(1).sum(1).argmax())
if false_pos[worst].any():
    print(f"photo {worst}: {false_pos[worst].sum().item()} false-positive pixels")
    fp_cams = {
        layer: grad_cam(model, images[worst : worst + 1], layer, region=false_pos[worst : worst + 1])[0]
        for layer in CAM_LAYERS
    }
    display(show_heatmaps(images[worst], fp_cams, region=false_pos[worst], title="Grad-CAM of the false positives"))
else:
    print("no false-positive pixels in these photos")

# %% [markdown]
# ## 6. Receptive fields
#
# An output pixel can only depend on the input pixels its **receptive field** covers. Each 3x3
# convolution widens it by 2 steps of the current resolution and each pooling doubles the step, so
# it grows fast on the way down; the decoder's convolutions widen it a little more.
# `interpret.receptive_fields` walks the layers and gives the side, in input pixels, that one
# position of each block sees; the output pixel sees what `ups.3` sees (`final_conv` is 1x1):

# %%
fields = receptive_fields(model)
for name, size in fields.items():
    print(f"{name:10s} {size:4d} px")
side = fields[blocks[-1]]  # one output pixel's field
for h, w in ((64, 96), (320, 480), (1280, 1918)):
    print(
        f"picture {h}x{w}: one output pixel sees {min(side / h, 1):.0%} of its height, {min(side / w, 1):.0%} of its width"
    )

# %% [markdown]
# The theoretical field is a limit; the **effective** receptive field is where the gradient of one
# output logit actually reaches in the input (Luo et al., 2016), drawn below for the centre pixel
# at initialisation and after training, with the theoretical field as a dashed square.
# `interpret.erf_size` sums it up as the side of the smallest square around the pixel that holds
# 90% of the gradient.
#
# At initialisation BatchNorm's running statistics are still their defaults (mean 0, variance 1),
# so in eval mode the signal of the deep path stays small and the gradient reaches the input mostly
# through the finest skip connection: `downs.0` and `ups.3` see 5 + 4 = 9 pixels together.

# %%
centre = (images.shape[-2] // 2, images.shape[-1] // 2)
erfs = {
    "at initialisation": effective_receptive_field(initial, images[SAMPLE : SAMPLE + 1], centre),
    "after training": effective_receptive_field(model, images[SAMPLE : SAMPLE + 1], centre),
}
for name, erf in erfs.items():
    print(f"{name:18s} 90% of the gradient lies within a {erf_size(erf, centre)} px square around the pixel")
show_receptive_fields(images[SAMPLE], erfs, centre, theoretical=side)

# %% [markdown]
# ## 7. Explore every layer
#
# The explorer runs one forward pass per sample (with `capture`) and shows the picked layer next to
# the input, with the reference mask outlined in yellow (the **reference outline** box turns it off).
# Pick a **sample**, a **layer** and a **view**:
#
# - **channel**: one channel, with its colour bar; the **channel** slider picks it;
# - **mean**: the mean over all channels;
# - **grid**: 16 channels side by side, each scaled to its own range; the slider pages through all of them;
# - **filters**: the weights of the layer's last 3x3 convolution, one output filter (the slider) at a time;
# - **grad-cam**: Grad-CAM of that layer for the car score, over the photo.
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
# And Grad-CAM of `ups.1` for another sample, with the reference outlined; then the explorer goes
# back to the plain channel view of `downs.0`, the state the text at the top of this section describes.

# %%
# NBVAL_IGNORE_OUTPUT
explorer.sample.value = len(images) - 1
explorer.layer.value = "ups.1"
explorer.view.value = "grad-cam"
state = explorer.state()
assert state["sample"] == len(images) - 1 and state["reference"] and state["title"].startswith("Grad-CAM of ups.1")
display(explorer.figure())
explorer.sample.value, explorer.layer.value, explorer.view.value, explorer.channel.value = 0, "downs.0", "channel", 0
print(explorer.state()["label"])

# %% [markdown]
# ### Reading quick-mode numbers
#
# In quick mode the checkpoint is `train_carvana`'s small network (widths 16 to 128) after five
# epochs on 64x96 pictures of a few sample cars. Its maps are coarse (the bottleneck is 4x6 pixels);
# a full-size network at 320x480 has a bottleneck of 20x30, and its skip connections carry far more
# detail. The Dice drops without each
# skip (section 4) are measured on very few held-out photos: compare their order, not their decimals.
#
# ## Summary
#
# - Hooks read (forward hooks), change (forward pre-hooks) and differentiate (backward hooks) any
#   layer without touching `forward`; `capture` copies what it keeps and always removes its hooks.
# - The encoder trades resolution for channels; the decoder returns to full resolution, and the
#   skip connections bring the encoder's fine maps back: section 4 measures how much each one is worth.
# - Grad-CAM and the effective receptive field show *where* the network looks, not only *what* it outputs.
# - The explorer puts all of it on sliders: any layer, channel, filter or Grad-CAM of any sample.
#
# ## Exercises
#
# 1. In the parameters cell, set `SAMPLE` to the worst photo of `test_carvana` and `CAM_LAYERS` to
#    `("downs.0", "downs.3", "ups.3")`: where does Grad-CAM put the blame?
# 2. Set `CHANNELS` to other channels of the whole-U figure: find one that fires on wheels, one on the
#    floor's shadow.
# 3. Train `train_carvana` with `upsample="bilinear"`, point `CHECKPOINT` at its `best.pt` and compare
#    the Dice without each skip: does it lean on the skips more or less?
# 4. Train longer (`num_epochs=20` in `train_carvana`) and compare the effective receptive field.
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
