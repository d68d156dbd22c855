"""Checks of notebook 02 (segtutor.checks.unet): a correct unet_level_shapes passes, wrong ones fail with
expected / got / a hint; the oracle (a real UNet forward pass) is checked against hand-computed shapes."""
import math

import pytest

from check_helpers import failure_message
from segtutor import checks
from segtutor.checks.unet import unet_level_shapes_reference


def good(image_size, width, depth):
    sides = [image_size]
    for _ in range(depth):
        sides.append(math.ceil(sides[-1] / 2))
    encoder = [(width * 2**i, s, s) for i, s in enumerate(sides)]
    decoder = [(2 * width * 2**i, sides[i], sides[i]) for i in reversed(range(depth))]
    return {"encoder": encoder, "decoder": decoder}


def as_lists(image_size, width, depth):  # lists instead of tuples are fine
    shapes = good(image_size, width, depth)
    return {key: [list(s) for s in rows] for key, rows in shapes.items()}


def floor_sizes(image_size, width, depth):  # s // 2: right for 64 and 48, wrong for odd sides
    sides = [image_size // 2**i for i in range(depth + 1)]
    return {"encoder": [(width * 2**i, s, s) for i, s in enumerate(sides)],
            "decoder": [(2 * width * 2**i, sides[i], sides[i]) for i in reversed(range(depth))]}


def no_concat(image_size, width, depth):  # the source's mistake: forgets the channels the skip brings
    shapes = good(image_size, width, depth)
    shapes["decoder"] = [(c // 2, h, w) for c, h, w in shapes["decoder"]]
    return shapes


def shallow_first(image_size, width, depth):  # decoder listed in the wrong order
    shapes = good(image_size, width, depth)
    shapes["decoder"] = shapes["decoder"][::-1]
    return shapes


def missing_level(image_size, width, depth):
    shapes = good(image_size, width, depth)
    shapes["encoder"] = shapes["encoder"][1:]
    return shapes


def no_return(image_size, width, depth):
    good(image_size, width, depth)


def stub(*args):
    raise NotImplementedError()


def test_reference_matches_hand_computed_shapes():
    shapes = unet_level_shapes_reference(64, 16, 4)
    assert shapes["encoder"] == [(16, 64, 64), (32, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4)]
    assert shapes["decoder"] == [(256, 8, 8), (128, 16, 16), (64, 32, 32), (32, 64, 64)]
    odd = unet_level_shapes_reference(37, 4, 5)
    assert [h for _, h, _ in odd["encoder"]] == [37, 19, 10, 5, 3, 2]
    assert odd == good(37, 4, 5)


@pytest.mark.parametrize("fn", [good, as_lists])
def test_correct_answers_pass(fn, capsys):
    checks.check_unet_level_shapes(fn)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint", [
    (floor_sizes, "ceil"),
    (no_concat, "concatenated"),
    (shallow_first, "deepest first"),
    (missing_level, "depth + 1 levels"),
    (no_return, "return"),
    (stub, "not done yet"),
])
def test_wrong_answers_fail_with_expected_got_and_hint(fn, hint):
    text = failure_message("unet_level_shapes", checks.check_unet_level_shapes, fn)
    assert hint in text


def test_solution_or_reference_falls_back(capsys):
    chosen = checks.solution_or_reference(stub, unet_level_shapes_reference, checks.check_unet_level_shapes,
                                          name="unet_level_shapes")
    assert chosen is unet_level_shapes_reference
    assert "reference" in capsys.readouterr().out
