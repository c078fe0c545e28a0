"""Joint transforms as the datasets use them: ``resize_pair`` first, then ``build_transforms(...)`` and ``apply``.

Image and mask stay aligned, masks are resized and rotated by nearest neighbour, and the pixels
that a rotation brings in from outside the picture get the right fill in both.
"""

import pytest
import torch

from unet_lib.data import CarvanaDataset, CityscapesDataset
from unet_lib.data.transforms import apply, build_transforms, resize_pair
from unet_lib.metrics import IGNORE_INDEX

SIZE = (48, 72)  # (H, W) the datasets' _load resizes to, before any augmentation


def carvana_transform(augment):
    """What ``CarvanaDataset`` builds: no resize (its _load resizes), background fill."""
    return build_transforms(augment, mask_fill=0)


def cityscapes_transform(augment):
    """What ``CityscapesDataset`` builds: ignore fill, and colour jitter whenever it augments."""
    return build_transforms(augment, mask_fill=IGNORE_INDEX, color=augment not in (False, "none"))


def item(transform, image, mask):
    """One dataset item: ``resize_pair`` (as the datasets' _load does), then the transform (as __getitem__ does)."""
    return apply(transform, *resize_pair(image, mask, SIZE))


def described(transform):
    """Each step's class and settings (fill values included, which ``repr`` leaves out)."""
    return [
        (type(step).__name__, {k: v for k, v in vars(step).items() if not k.startswith("_") and k != "training"})
        for step in transform.transforms
    ]


def blob(height=64, width=96):
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return (((yy - 30) / 18) ** 2 + ((xx - 40) / 30) ** 2 < 1).to(torch.uint8)  # (H, W), off-centre


@pytest.mark.parametrize("augment", [False, "flip", "original", True])
def test_the_datasets_build_these_transforms(carvana_tree, cityscapes_tree, augment):
    """The builders above are the datasets' own, so the tests below exercise what training runs."""
    carvana = CarvanaDataset(carvana_tree, "train", size=SIZE, augment=augment)
    cityscapes = CityscapesDataset(cityscapes_tree, "train", size=SIZE, augment=augment)
    assert described(carvana.transform) == described(carvana_transform(augment))
    assert described(cityscapes.transform) == described(cityscapes_transform(augment))
    assert "Resize" not in {name for name, _ in described(carvana.transform) + described(cityscapes.transform)}


@pytest.mark.parametrize("build", [carvana_transform, cityscapes_transform])
def test_without_augmentation_items_are_the_resized_pair(build):
    mask = blob()
    image = torch.randint(0, 256, (3, *mask.shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    small_image, small_mask = resize_pair(image, mask, SIZE)
    out_image, out_mask = item(build(False), image, mask)
    assert out_image.dtype == torch.float32 and out_mask.dtype == torch.int64
    assert torch.equal((out_image * 255).round().to(torch.uint8), small_image)  # only scaled to [0, 1]
    assert torch.equal(out_mask, small_mask.long())


@pytest.mark.parametrize(
    "build,augment",
    [(carvana_transform, "original"), (carvana_transform, True), (cityscapes_transform, "original")],
)
def test_augmentations_move_image_and_mask_together(build, augment):
    mask = blob()
    image = (mask * 255).expand(3, -1, -1).contiguous()  # the image *is* the mask, in white
    transform = build(augment)
    unmoved = resize_pair(image, mask, SIZE)[1].long()
    moved = 0
    for seed in range(20):
        torch.manual_seed(seed)
        out_image, out_mask = item(transform, image, mask)
        assert out_image.shape == (3, *SIZE) and out_mask.shape == SIZE, seed
        assert out_mask.dtype == torch.int64 and set(out_mask.unique().tolist()) <= {0, 1, IGNORE_INDEX}, seed
        inside = out_mask != IGNORE_INDEX  # Cityscapes marks the corners rotated in as ignored
        agree = ((out_image[0] > 0.5).long() == out_mask)[inside].float().mean()
        assert agree > 0.98, (seed, agree)  # only edge pixels may differ
        moved += not torch.equal(out_mask, unmoved)
    assert moved >= 10  # the augmentation really changed most samples


def test_rotation_fills_carvana_masks_with_background():
    mask = torch.ones(64, 96, dtype=torch.uint8)  # a car filling the whole picture
    image = torch.full((3, 64, 96), 200, dtype=torch.uint8)
    transform = carvana_transform("original")
    seen_fill = False
    for seed in range(10):
        torch.manual_seed(seed)
        out_image, out_mask = item(transform, image, mask)
        filled = out_mask == 0
        assert set(out_mask.unique().tolist()) <= {0, 1}, seed
        assert (out_image[:, filled] == 0).all(), seed  # the corners rotated in are black in the image too
        seen_fill |= bool(filled.any())
    assert seen_fill


def test_rotation_fills_cityscapes_masks_with_ignore():
    labels = torch.full((64, 96), 7, dtype=torch.uint8)
    image = torch.full((3, 64, 96), 200, dtype=torch.uint8)
    transform = cityscapes_transform("original")  # with colour jitter, as the dataset trains
    seen_fill = False
    for seed in range(10):
        torch.manual_seed(seed)
        out_image, out_labels = item(transform, image, labels)
        filled = out_labels == IGNORE_INDEX
        assert set(out_labels.unique().tolist()) <= {7, IGNORE_INDEX}, seed
        if filled.any():
            # The corners rotated in are black in the image, then jittered like every pixel: one dark colour.
            colours = out_image[:, filled].unique(dim=1)
            centre = out_image[:, SIZE[0] // 2, SIZE[1] // 2]
            assert colours.shape[1] == 1 and (colours[:, 0] < centre).all(), (seed, colours, centre)
            seen_fill = True
    assert seen_fill


@pytest.mark.parametrize("augment", [False, "original", True])
def test_masks_keep_their_label_values(augment):
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 19, (64, 96), dtype=torch.uint8, generator=generator)
    labels[:5] = IGNORE_INDEX
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8, generator=generator)
    transform = cityscapes_transform(augment)
    for seed in range(5):
        torch.manual_seed(seed)
        _, out_labels = item(transform, image, labels)
        # Nearest neighbour in the resize and in every augmentation: no blended labels.
        assert set(out_labels.unique().tolist()) <= set(labels.unique().tolist()), seed
