"""The one palette, the one overlay and the outline, checked pixel by pixel against the official colours,
a hand blend and boundaries drawn by hand."""

import pytest
import torch
from torchvision.datasets import Cityscapes

from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.viz import colorize, outline, overlay, palette

ROAD, CAR, RAIL_TRACK = (128, 64, 128), (0, 0, 142), (230, 150, 140)


def blend(image: torch.Tensor, colour: tuple[int, int, int], alpha: float) -> torch.Tensor:
    """The paint a pixel should get: ``(1 - alpha) * image + alpha * colour``, per channel, as floats."""
    return (1 - alpha) * image.float() + alpha * torch.tensor(colour, dtype=torch.float32)


def test_palettes_hold_the_official_colours():
    binary, trainid, labelid = palette("binary"), palette("trainid"), palette("labelid")
    for colors in (binary, trainid, labelid):
        assert colors.dtype == torch.uint8 and colors.shape == (256, 3)
        assert colors[IGNORE_INDEX].tolist() == [0, 0, 0]
    assert binary[0].tolist() == [0, 0, 0] and binary[1].tolist() == [255, 0, 0] and not binary[2:].any()
    assert trainid[0].tolist() == list(ROAD) and trainid[13].tolist() == list(CAR)
    assert labelid[7].tolist() == list(ROAD) and labelid[26].tolist() == list(CAR)
    assert labelid[0].tolist() == [0, 0, 0]  # unlabeled
    assert labelid[10].tolist() == list(RAIL_TRACK)  # not evaluated, yet it has an official colour
    assert not trainid[19:].any() and not labelid[34:].any()
    for c in Cityscapes.classes:  # every class, against torchvision's own table
        if 0 <= c.train_id < 255:
            assert trainid[c.train_id].tolist() == list(c.color)
        if c.id >= 0:
            assert labelid[c.id].tolist() == list(c.color)
    with pytest.raises(InputError, match="kind"):
        palette("rainbow")


def test_colorize_paints_each_id_and_blackens_the_rest():
    labels = torch.tensor([[0, 13, 18, IGNORE_INDEX, 19, -1, 300]])  # road, car, bicycle, then no class
    out = colorize(labels)
    assert out.dtype == torch.uint8 and out.shape == (3, 1, 7)
    pixels = [tuple(out[:, 0, j].tolist()) for j in range(7)]
    assert pixels == [ROAD, CAR, (119, 11, 32)] + [(0, 0, 0)] * 4
    label_ids = colorize(torch.tensor([[[7, 26, 10, 0, 34]]], dtype=torch.uint8), "labelid")  # [1, H, W] uint8
    assert [tuple(label_ids[:, 0, j].tolist()) for j in range(5)] == [ROAD, CAR, RAIL_TRACK, (0, 0, 0), (0, 0, 0)]
    binary = colorize(torch.tensor([[True, False]]), "binary")
    assert binary[:, 0, 0].tolist() == [255, 0, 0] and binary[:, 0, 1].tolist() == [0, 0, 0]
    with pytest.raises(InputError, match="integer"):
        colorize(torch.zeros(2, 2))
    with pytest.raises(InputError, match="labels"):
        colorize(torch.zeros(2, 2, 2, dtype=torch.long))


@pytest.mark.parametrize("as_uint8", [False, True])
def test_binary_overlay_blends_red_over_the_mask_only(as_uint8):
    image = torch.rand(3, 6, 7)
    plain = (image * 255).round().to(torch.uint8)
    mask = torch.zeros(1, 6, 7)
    mask[0, 1:3, 2:5] = 0.7  # probabilities above 0.5 are painted
    mask[0, 4, :3] = 0.3  # below 0.5: not painted
    mask[0, 5, 6] = IGNORE_INDEX  # ignored: not painted
    out = overlay(plain if as_uint8 else image, mask, alpha=0.5)
    assert out.dtype == torch.uint8 and out.shape == (3, 6, 7)
    inside = mask[0] > 0.5
    inside[5, 6] = False
    assert inside.sum() == 6
    assert torch.equal(out[:, ~inside], plain[:, ~inside])
    expected = blend(plain[:, inside].T, (255, 0, 0), 0.5).T  # (3, painted pixels)
    assert (out[:, inside].float() - expected).abs().max() <= 1
    for same in (inside, inside.long(), inside.to(torch.uint8)):  # a 0/1 mask of any dtype paints the same
        assert torch.equal(overlay(image, same), out)


def test_trainid_overlay_paints_every_class_in_its_colour():
    image = torch.randint(0, 256, (3, 2, 3), dtype=torch.uint8)
    labels = torch.tensor([[0, 13, IGNORE_INDEX], [13, 19, 0]])  # road, car, ignored / car, no class, road
    alpha = 0.3
    out = overlay(image, labels, "trainid", alpha=alpha)
    for (i, j), colour in {(0, 0): ROAD, (0, 1): CAR, (1, 0): CAR, (1, 2): ROAD}.items():
        assert (out[:, i, j].float() - blend(image[:, i, j], colour, alpha)).abs().max() <= 1
    for i, j in [(0, 2), (1, 1)]:  # ignored, and a value with no class: untouched
        assert out[:, i, j].tolist() == image[:, i, j].tolist()
    # alpha 1 is the colour alone, which is what colorize draws on the painted pixels
    solid = overlay(image, labels, "trainid", alpha=1.0)
    painted = labels < 19
    assert torch.equal(solid[:, painted], colorize(labels)[:, painted])


def test_labelid_overlay_and_nothing_to_paint():
    image = torch.rand(3, 1, 4)
    plain = (image * 255).round().to(torch.uint8)
    out = overlay(image, torch.tensor([[7, 26, 10, 40]]), "labelid", alpha=0.5)
    for j, colour in enumerate((ROAD, CAR, RAIL_TRACK)):
        assert (out[:, 0, j].float() - blend(plain[:, 0, j], colour, 0.5)).abs().max() <= 1
    assert out[:, 0, 3].tolist() == plain[:, 0, 3].tolist()  # 40 is no labelId
    nothing = overlay(image, torch.full((1, 4), IGNORE_INDEX), "trainid")
    assert torch.equal(nothing, plain)
    assert torch.equal(overlay(plain, torch.zeros(1, 4)), plain)


def test_overlay_rejects_bad_input():
    with pytest.raises(InputError, match="integer"):
        overlay(torch.rand(3, 2, 2), torch.rand(2, 2), "trainid")
    with pytest.raises(InputError, match="image and labels"):
        overlay(torch.rand(3, 2, 2), torch.zeros(3, 3))
    with pytest.raises(InputError, match="image and labels"):
        overlay(torch.rand(1, 2, 2), torch.zeros(2, 2, dtype=torch.long), "trainid")
    with pytest.raises(InputError, match="kind"):
        overlay(torch.rand(3, 2, 2), torch.zeros(2, 2), "rainbow")


def drawn(rows: str) -> torch.Tensor:
    """A bool ``[H, W]`` from a picture in text: ``#`` is True, anything else False; one line per row."""
    return torch.tensor([[c == "#" for c in line.strip()] for line in rows.strip().splitlines()])


SQUARE = drawn("""
    ........
    .#####..
    .#####..
    .#####..
    .#####..
    .#####..
    ........
""")


RINGS = {  # the boundary of SQUARE for each width: pixels at most `width` steps from the outside
    1: """
        ........
        .#####..
        .#...#..
        .#...#..
        .#...#..
        .#####..
        ........
    """,
    2: """
        ........
        .#####..
        .#####..
        .##.##..
        .#####..
        .#####..
        ........
    """,
    3: """
        ........
        .#####..
        .#####..
        .#####..
        .#####..
        .#####..
        ........
    """,
}


@pytest.mark.parametrize("width", [1, 2, 3])
def test_outline_paints_exactly_the_boundary_of_a_square(width):
    image = torch.randint(0, 256, (3, *SQUARE.shape), dtype=torch.uint8)
    out = outline(image, SQUARE, width=width)
    edge = drawn(RINGS[width])
    assert out.dtype == torch.uint8 and out.shape == image.shape
    assert all(out[:, i, j].tolist() == [255, 255, 0] for i, j in edge.nonzero().tolist())  # "yellow"
    assert torch.equal(out[:, ~edge], image[:, ~edge])  # the interior and the outside keep the picture
    assert (SQUARE & ~edge).any() == (width < 3)  # a thick enough line fills the whole square


def test_outline_ignores_the_frame_and_treats_255_as_outside():
    mask = torch.tensor(
        [
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, IGNORE_INDEX, 1, 1, 0],
            [1, 1, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=torch.uint8,
    )
    expected = drawn("""
        ....#.
        ..#.#.
        .#.##.
        #####.
        ......
    """)
    image = torch.rand(3, 5, 6)
    plain = (image * 255).round().to(torch.uint8)
    out = outline(image, mask[None], color=(0, 128, 255))  # a float image, a [1, H, W] mask, an RGB colour
    assert torch.equal(out[:, ~expected], plain[:, ~expected])
    assert all(out[:, i, j].tolist() == [0, 128, 255] for i, j in expected.nonzero().tolist())
    probabilities = torch.where(mask == 1, 0.9, 0.2)
    probabilities[2, 2] = IGNORE_INDEX
    assert torch.equal(outline(image, probabilities, color=(0, 128, 255)), out)  # above 0.5 is the mask


def test_outline_of_nothing_and_bad_input():
    image = torch.randint(0, 256, (3, 4, 4), dtype=torch.uint8)
    assert torch.equal(outline(image, torch.zeros(4, 4)), image)
    assert torch.equal(outline(image, torch.full((4, 4), IGNORE_INDEX)), image)
    assert torch.equal(outline(image, torch.ones(4, 4)), image)  # the whole frame: no boundary inside it
    for width in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="width"):
            outline(image, torch.ones(4, 4), width=width)
    with pytest.raises(InputError, match="image and mask"):
        outline(image, torch.ones(4, 5))
