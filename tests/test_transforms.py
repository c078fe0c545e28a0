"""Joint transforms keep image and mask aligned, resize masks by nearest neighbour, fill correctly."""

import pytest
import torch

from unet_lib.data.transforms import apply, build_transforms, resize_pair
from unet_lib.metrics import IGNORE_INDEX


def blob(height=64, width=96):
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return (((yy - 30) / 18) ** 2 + ((xx - 40) / 30) ** 2 < 1).to(torch.uint8)  # (H, W), off-centre


@pytest.mark.parametrize("augment", ["original", "default"])
def test_augmentations_move_image_and_mask_together(augment):
    mask = blob()
    image = (mask * 255).expand(3, -1, -1).contiguous()  # the image *is* the mask, in white
    transform = build_transforms(size=(48, 72), augment=augment)
    moved = 0
    for seed in range(20):
        torch.manual_seed(seed)
        out_image, out_mask = apply(transform, image, mask)
        assert out_image.shape == (3, 48, 72) and out_mask.shape == (48, 72)
        assert out_mask.dtype == torch.int64 and set(out_mask.unique().tolist()) <= {0, 1}
        agree = ((out_image[0] > 0.5).long() == out_mask).float().mean()
        assert agree > 0.98, (seed, agree)  # only bilinear-vs-nearest edge pixels may differ
        moved += not torch.equal(out_mask, resize_pair(image, mask, (48, 72))[1].long())
    assert moved >= 10  # the augmentation really changed most samples


def test_rotation_fills_cityscapes_masks_with_ignore():
    labels = torch.full((64, 96), 7, dtype=torch.uint8)
    image = torch.full((3, 64, 96), 200, dtype=torch.uint8)
    transform = build_transforms(size=None, augment="original", mask_fill=IGNORE_INDEX)
    seen_fill = False
    for seed in range(10):
        torch.manual_seed(seed)
        out_image, out_labels = apply(transform, image, labels)
        filled = out_labels == IGNORE_INDEX
        assert set(out_labels.unique().tolist()) <= {7, IGNORE_INDEX}
        assert (out_image[:, filled] == 0).all()  # the corners rotated in are black in the image too
        seen_fill |= bool(filled.any())
    assert seen_fill


def test_resize_keeps_label_values():
    labels = torch.randint(0, 19, (40, 60), dtype=torch.uint8)
    labels[:5] = IGNORE_INDEX
    _, small = resize_pair(torch.zeros(3, 40, 60, dtype=torch.uint8), labels, (20, 30))
    assert set(small.unique().tolist()) <= set(labels.unique().tolist())  # nearest: no blended labels
