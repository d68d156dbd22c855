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


# --- exercise 1: one expanding step written out (checks.check_up_forward) --------------------------------------
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def good_up(up, x, skip):
    upsampled = up.up(x)[..., :skip.shape[-2], :skip.shape[-1]]
    return up.conv(torch.cat([skip, upsampled], dim=1))


def up_first(up, x, skip):
    upsampled = up.up(x)[..., :skip.shape[-2], :skip.shape[-1]]
    return up.conv(torch.cat([upsampled, skip], dim=1))


def no_crop(up, x, skip):
    return up.conv(torch.cat([skip, up.up(x)], dim=1))


def no_skip(up, x, skip):
    return up.conv(up.up(x)[..., :skip.shape[-2], :skip.shape[-1]])


def wrong_dim(up, x, skip):
    return up.conv(torch.cat([skip, up.up(x)[..., :skip.shape[-2], :skip.shape[-1]]], dim=0))


def top_left(up, x, skip):
    upsampled = up.up(x)
    h, w = skip.shape[-2:]
    return up.conv(torch.cat([skip, upsampled[..., upsampled.shape[-2] - h:, upsampled.shape[-1] - w:]], dim=1))


def no_conv(up, x, skip):
    return torch.cat([skip, up.up(x)[..., :skip.shape[-2], :skip.shape[-1]]], dim=1)


def calls_module(up, x, skip):
    return up(x, skip)


def stretched(up, x, skip):  # bilinear resize instead of a crop: every feature moves off its pixels
    upsampled = F.interpolate(up.up(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
    return up.conv(torch.cat([skip, upsampled], dim=1))


def up_stub(up, x, skip):
    raise NotImplementedError()


def test_up_forward_oracle_is_upsample_crop_concat_conv():
    from segtutor.models.unet import Up
    torch.manual_seed(0)
    up = Up(6, 3).eval()
    x, skip = torch.randn(1, 6, 3, 4), torch.randn(1, 3, 5, 7)
    with torch.no_grad():
        by_hand = up.conv(torch.cat([skip, F.conv_transpose2d(x, up.up.weight, up.up.bias, stride=2)[..., :5, :7]], 1))
        assert torch.allclose(up(x, skip), by_hand, atol=1e-6)


def test_correct_up_forward_passes(capsys):
    checks.check_up_forward(good_up)
    assert "✓ up_forward: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (up_first, "you concatenated in the wrong order: expected the skip first"),
    (no_crop, "crop the upsampled map's bottom/right overhang"),
    (no_skip, "concatenated along dim=1"),
    (wrong_dim, "concatenated along dim=1"),
    (top_left, "you cropped the top/left"),
    (no_conv, "apply up.conv to the concatenation"),
    (calls_module, "write its forward pass yourself"),
    (stretched, "then up.conv(torch.cat([skip, upsampled], dim=1))"),
])
def test_wrong_up_forward_fails_with_a_hint(wrong, hint):
    text = failure_message("up_forward", checks.check_up_forward, wrong)
    assert hint in text


def test_up_forward_stub_says_so():
    with pytest.raises(checks.CheckFailed, match="not done yet"):
        checks.check_up_forward(up_stub)
