"""The checks of train_carvana's exercises: a right answer (computed here, independently) passes, a wrong one is
refused with a hint, and ``...`` is "not tried yet"."""

import torch
from exercises.train_carvana import (
    check_exercise_1,
    check_exercise_2,
    check_exercise_3,
    check_exercise_4,
    check_exercise_5,
    check_exercise_6,
)

CARS = [f"{c}" * 12 for c in "abcdef"]  # Carvana ids: a 12-character car, then the view
IDS = sorted(f"{car}_{view:02d}" for car in CARS for view in range(1, 17))


def refused(capsys, check, answer, *context, hint: str = "") -> None:
    assert check(answer, *context) is False
    out = capsys.readouterr().out
    assert "not yet. Hint:" in out and hint in out


def side_picture() -> tuple[torch.Tensor, torch.Tensor]:
    """A 4x10 picture whose car spans columns 1..3 of rows 1-2: 6 of 40 pixels."""
    mask = torch.zeros(4, 10, dtype=torch.long)
    mask[1:3, 1:4] = 1
    return torch.rand(3, 4, 10), mask


def test_not_tried_yet(capsys):
    image, mask = side_picture()
    found = {"lrs": [1e-3, 1e-2, 1e-1], "smoothed": [1.0, 0.5, 2.0]}
    for check, context in [
        (check_exercise_1, (IDS, 32)),
        (check_exercise_2, (image, mask)),
        (check_exercise_3, ()),
        (check_exercise_4, ()),
        (check_exercise_5, ()),
        (check_exercise_6, (found,)),
    ]:
        assert check(..., *context) is False
        assert "not tried yet" in capsys.readouterr().out


def test_exercise_1_a_random_split_leaks(capsys):
    order = torch.randperm(len(IDS), generator=torch.Generator().manual_seed(0)).tolist()
    train_cars = {IDS[i].split("_")[0] for i in order[32:]}
    leaked = sum(IDS[i].split("_")[0] in train_cars for i in order[:32])
    assert check_exercise_1(leaked, IDS, 32)
    assert "right" in capsys.readouterr().out
    refused(capsys, check_exercise_1, 0, IDS, 32, hint="split by car")
    refused(capsys, check_exercise_1, leaked - 1, IDS, 32, hint="first 32 photos")


def test_exercise_2_a_flip_mirrors_the_centre_and_keeps_the_share(capsys):
    image, mask = side_picture()  # car in columns 1..3: centre 2
    assert check_exercise_2((10 - 1 - 2, 6 / 40), image, mask)  # column c -> W - 1 - c
    assert "right" in capsys.readouterr().out
    refused(capsys, check_exercise_2, (2, 6 / 40), image, mask, hint="before the flip")
    refused(capsys, check_exercise_2, (8, 6 / 40), image, mask, hint="one column off")
    refused(capsys, check_exercise_2, (5, 6 / 40), image, mask, hint="W - 1 - c")
    refused(capsys, check_exercise_2, (10 - 1 - 2, 100 * 6 / 40), image, mask, hint="in percent")
    refused(capsys, check_exercise_2, (7, 0.5), image, mask, hint="add or remove")


def test_exercise_3_a_double_conv_block_s_parameters(capsys):
    by_hand = 32 * 64 * 9 + 2 * 64 + 64 * 64 * 9 + 64 + 2 * 64
    assert check_exercise_3(by_hand)
    assert "55,616" in capsys.readouterr().out
    refused(capsys, check_exercise_3, by_hand - 64, hint="bias")
    refused(capsys, check_exercise_3, by_hand - 128, hint="BatchNorm")
    refused(capsys, check_exercise_3, 32 * 64 * 9 + 64 * 64 * 9 + 64, hint="both BatchNorms")
    refused(capsys, check_exercise_3, 1000, hint="add")
    refused(capsys, check_exercise_3, by_hand + 0.9, hint="whole number")
    assert check_exercise_3(3 * 64 * 9 + 2 * 64 + 64 * 64 * 9 + 64 + 2 * 64, 3, 64)  # downs.0 of the original: 38,912
    capsys.readouterr()


def test_exercise_4_pooling_rounds_down(capsys):
    assert check_exercise_4((6, 9))  # 100 -> 50 -> 25 -> 12 -> 6, 150 -> 75 -> 37 -> 18 -> 9
    assert "6x9" in capsys.readouterr().out
    refused(capsys, check_exercise_4, (7, 10), hint="rounds down")
    refused(capsys, check_exercise_4, (6.25, 9.375), hint="whole number")
    refused(capsys, check_exercise_4, (4, 6), hint="halve")
    assert check_exercise_4((4, 6), (64, 96), 4)
    capsys.readouterr()


def test_exercise_5_dice_by_hand(capsys):
    def dice(pred, target):  # one picture at a time, in plain Python
        scores = []
        for p, t in zip(pred.bool().tolist(), target.bool().tolist(), strict=True):
            cells = [(a, b) for row_p, row_t in zip(p, t, strict=True) for a, b in zip(row_p, row_t, strict=True)]
            tp = sum(a and b for a, b in cells)
            wrong = sum(a != b for a, b in cells)
            scores.append(1.0 if 2 * tp + wrong == 0 else 2 * tp / (2 * tp + wrong))
        return torch.tensor(scores)

    assert check_exercise_5(dice)
    assert "right" in capsys.readouterr().out
    refused(capsys, check_exercise_5, lambda p, t: dice(p, t).mean(), hint="one Dice per picture")
    refused(capsys, check_exercise_5, lambda p, t: torch.where(dice(p, t) == 1, 0.0, dice(p, t)), hint="empty")
    refused(capsys, check_exercise_5, lambda p, t: (p == t).float().mean(dim=(1, 2)), hint="2 TP")

    def pooled(pred, target):  # all pixels of all pictures together, one Dice repeated for each picture
        tp, wrong = (pred.bool() & target.bool()).sum(), (pred.bool() != target.bool()).sum()
        return (2 * tp / (2 * tp + wrong)).float().expand(len(pred))

    refused(capsys, check_exercise_5, pooled, hint="one Dice per picture: sum")
    refused(capsys, check_exercise_5, lambda p, t: pooled(p, t)[0], hint="pooled Dice")


def test_exercise_6_a_tenth_of_the_lowest_loss_rate(capsys):
    found = {"lrs": [1e-4, 1e-3, 1e-2, 1e-1, 1.0], "smoothed": [1.3, 1.1, 0.8, 0.5, 2.0]}
    assert check_exercise_6(1e-2, found)  # lowest at 1e-1: a tenth
    assert check_exercise_6(5e-3, found)  # within a factor of 3
    assert "1/2.0 of the rule's 1.0e-02" in capsys.readouterr().out
    assert check_exercise_6(2.8e-2, found)  # right, and the message says how far off
    assert "2.8x the rule's 1.0e-02" in capsys.readouterr().out
    assert check_exercise_6(1e-2, found)
    assert "the rule's 1.0e-02 itself" in capsys.readouterr().out
    refused(capsys, check_exercise_6, 0.0, found, hint="lowest")
    refused(capsys, check_exercise_6, 1e-1, found, hint="a tenth of it")
    refused(capsys, check_exercise_6, 1e-4, found, hint="lowest")
    refused(capsys, check_exercise_6, "1e-2", found, hint="as a number")  # the right rate, as text
