"""The dilation explorer (03_deeplab.ipynb): its pattern, numbers and picture against independent computations."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from matplotlib.figure import Figure
from torch import nn

from segtutor.widgets import dilation_explorer
from segtutor.widgets.dilation import (DilationStats, dilation_colorbar, dilation_stats, draw_dilation, layer_rates,
                                       parse_rates, sampling_pattern)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def gradient_pattern(kernel_size, rates):
    """Oracle: |d y_centre / d x| of a stack of all-ones k x k convs at ``rates`` (float64, no padding),
    cropped to the box of nonzero entries."""
    size = 1 + sum(r * (kernel_size - 1) for r in rates)
    canvas = size + 6  # room on every side: the box must come out of the data, not the canvas
    x = torch.zeros(1, 1, canvas, canvas, dtype=torch.float64, requires_grad=True)
    y = x
    for r in rates:
        y = F.conv2d(y, torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64), dilation=r)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    grad = x.grad[0, 0]
    rows = grad.abs().sum(1).nonzero().flatten()
    cols = grad.abs().sum(0).nonzero().flatten()
    return grad[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].round().long().numpy()


def transpose_pattern(kernel_size, rates):
    """Second oracle: spread a delta through transposed all-ones convs (what a backward pass does)."""
    z = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    for r in rates:
        z = F.conv_transpose2d(z, torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64), dilation=r)
    return z[0, 0].round().long().numpy()


@pytest.mark.parametrize("kernel_size, rates", [(3, (1,)), (3, (2, 2, 2)), (3, (1, 2, 5)), (3, (1, 2, 4)),
                                                 (5, (3,)), (1, (4, 4)), (3, (1, 1, 1, 1)), (7, (2, 3))])
def test_pattern_equals_gradient_of_ones_convs(kernel_size, rates):
    pattern = sampling_pattern(kernel_size, rates)
    assert pattern.dtype == np.int64
    np.testing.assert_array_equal(pattern, transpose_pattern(kernel_size, rates))
    if kernel_size > 1:  # a 1x1 stack reads one pixel: the gradient box is that pixel
        np.testing.assert_array_equal(pattern, gradient_pattern(kernel_size, rates))


@settings(max_examples=25, deadline=None)
@given(k=st.sampled_from([1, 3, 5]), rates=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_pattern_equals_transposed_convs_property(k, rates):
    np.testing.assert_array_equal(sampling_pattern(k, rates), transpose_pattern(k, rates))


def test_hand_computed_patterns():
    np.testing.assert_array_equal(sampling_pattern(3, 1), np.ones((3, 3)))
    one_d = np.array([1, 0, 1, 0, 1])  # a 3-tap kernel at rate 2
    np.testing.assert_array_equal(sampling_pattern(3, (2,)), np.outer(one_d, one_d))
    tent = np.array([1, 2, 3, 2, 1])  # two 3x3 convs: 1D counts are the convolution [1,1,1]*[1,1,1]
    np.testing.assert_array_equal(sampling_pattern(3, (1, 1)), np.outer(tent, tent))
    assert sampling_pattern(3, (1, 1)).sum() == 81  # 9 * 9 paths


@pytest.mark.parametrize("kernel_size, rates, size, read", [
    (3, (1, 1, 1), 7, 49),
    (3, (2, 2, 2), 13, 49),      # gridding: only even offsets are read
    (3, (1, 2, 5), 17, 289),     # no common factor: the whole box is read
    (3, (1, 2, 4), 15, 225),
    (5, (3, 3), 25, 81),
])
def test_stats_receptive_field_and_coverage(kernel_size, rates, size, read):
    stats = dilation_stats(kernel_size, rates, channels=8)
    assert isinstance(stats, DilationStats)
    assert stats.receptive_field == size == 1 + sum(r * (kernel_size - 1) for r in rates)
    assert stats.pixels_read == read
    assert stats.coverage == pytest.approx(read / size**2)
    assert stats.max_multiplicity == sampling_pattern(kernel_size, rates).max()


@pytest.mark.parametrize("kernel_size, rates, channels", [(3, (1, 2, 4), 16), (5, (2,), 3), (3, (6, 6), 7)])
def test_parameters_match_torch_and_ignore_rates(kernel_size, rates, channels):
    stack = nn.Sequential(*(nn.Conv2d(channels, channels, kernel_size, dilation=r, bias=False) for r in rates))
    expected = sum(p.numel() for p in stack.parameters())
    assert dilation_stats(kernel_size, rates, channels).parameters == expected
    assert dilation_stats(kernel_size, [1] * len(rates), channels).parameters == expected


def test_layer_rates():
    assert layer_rates(2, 3) == (2, 2, 2)
    assert layer_rates(1, 4, "doubling") == (1, 2, 4, 8)
    assert layer_rates(3, 2, "doubling") == (3, 6)
    assert layer_rates(3, 2, "free", "1, 3, 9") == (1, 3, 9)      # free: rate and layers are not used


@pytest.mark.parametrize("text, rates", [("1,2,5", (1, 2, 5)), (" 1 3 9 ", (1, 3, 9)), ("(1, 2, 5)", (1, 2, 5)),
                                         ("[4]", (4,)), ("2,, 7", (2, 7)), ("1,1,1,1,1,1,1,64", (1,) * 7 + (64,))])
def test_parse_rates(text, rates):
    assert parse_rates(text) == rates


@pytest.mark.parametrize("text, match", [("", "no rates"), ("1, 0, 2", "'0' is not a positive integer"),
                                         ("1, 2.5", "'2.5' is not"), ("a", "'a' is not"), ("-1", "'-1' is not"),
                                         ("1 " * 9, "at most 8 layers"), ("1, 65", "too large")])
def test_parse_rates_refuses_bad_text(text, match):
    with pytest.raises(ValueError, match=match):
        parse_rates(text)


def test_free_rates_draw_what_the_gradient_of_that_stack_reads():
    # (1, 3, 9) and (1, 2, 5) cannot come from the constant or doubling schedules; (1, 5, 9) has holes
    for text, read in (("1, 3, 9", 27 ** 2), ("1, 2, 5", 17 ** 2), ("1, 5, 9", None)):
        rates = layer_rates(1, 1, "free", text)
        fig, stats = draw_dilation(3, rates=rates)
        image = np.ma.filled(fig.axes[0].get_images()[0].get_array(), 0)[2:-2, 2:-2]
        np.testing.assert_array_equal(image, gradient_pattern(3, rates))
        if read is not None:
            assert stats.pixels_read == read and stats.coverage == 1.0
        else:
            assert stats.coverage == pytest.approx(float((gradient_pattern(3, rates) > 0).mean()))
            assert 0.5 < stats.coverage < 0.6


@pytest.mark.parametrize("call, match", [
    (lambda: sampling_pattern(4, (1,)), "odd"),
    (lambda: sampling_pattern(3, (0,)), r"rates\[0\]"),
    (lambda: sampling_pattern(3, ()), "non-empty"),
    (lambda: sampling_pattern(3, (1.5,)), "positive integer"),
    (lambda: layer_rates(2, 3, "random"), "schedule"),
    (lambda: layer_rates(2, 0), "layers"),
    (lambda: layer_rates(2, 3, "free"), "needs the rates as text"),
    (lambda: dilation_stats(3, (1,), channels=0), "channels"),
    (lambda: draw_dilation(3, 2, 2, margin=-1), "margin"),
])
def test_bad_input_is_refused_with_a_clear_message(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_draw_on_new_figure_and_on_given_axes():
    fig, stats = draw_dilation(3, 2, 3)
    assert isinstance(fig, Figure) and stats == dilation_stats(3, (2, 2, 2))
    main = fig.axes[0]
    assert "RF 13x13" in main.get_title() and "49/169" in main.get_title()
    image = main.get_images()[0].get_array()
    assert image.shape == (13 + 4, 13 + 4)  # receptive field plus a margin of 2 on each side
    np.testing.assert_array_equal(np.ma.filled(image, 0)[2:-2, 2:-2], sampling_pattern(3, (2, 2, 2)))
    assert len(fig.axes) == 2  # the pattern and its colour bar

    host = Figure()
    axes = host.subplots(1, 2)
    got, stats = draw_dilation(3, rates=(1, 2, 5), ax=axes[1], margin=0)
    assert got is host and len(host.axes) == 2  # drawn in place, no colour bar added
    assert stats.rates == (1, 2, 5) and axes[1].get_images()[0].get_array().shape == (17, 17)
    draw_dilation(3, rates=(2, 2), ax=axes[0])
    bar = dilation_colorbar(axes[0])                             # asked for: a colour bar beside that axes
    assert len(host.axes) == 3 and "paths" in host.axes[2].get_ylabel()
    assert bar.mappable is axes[0].get_images()[0] and list(bar.get_ticks()) == list(range(1, 10))   # (2, 2): 3 x 3 = 9 paths max
    with pytest.raises(ValueError, match="no picture"):
        dilation_colorbar(Figure().add_subplot())


def test_explorer_builds_and_follows_its_controls_without_a_kernel():
    explorer = dilation_explorer(kernel_size=3, rate=2, layers=3)
    assert explorer.stats == dilation_stats(3, (2, 2, 2))
    assert "13&times;13" in explorer.summary.value
    first = bytes(explorer.image.value)
    assert first.startswith(PNG_MAGIC)

    explorer.rate.value = 1
    assert explorer.stats.rates == (1, 1, 1) and explorer.stats.receptive_field == 7
    assert "7&times;7" in explorer.summary.value and bytes(explorer.image.value) != first

    explorer.schedule.value = "doubling"
    assert explorer.stats.rates == (1, 2, 4) and explorer.stats.coverage == 1.0

    explorer.layers.value = 2
    explorer.kernel_size.value = 5
    assert explorer.stats == dilation_stats(5, (1, 2))
    assert bytes(explorer.image.value).startswith(PNG_MAGIC)


def test_explorer_free_mode_uses_the_text_field_and_keeps_the_sliders():
    explorer = dilation_explorer(kernel_size=3, rate=2, layers=3)
    assert "free" in explorer.schedule.options and not explorer.rate.disabled
    explorer.free_rates.value = "1, 3, 9"
    assert explorer.stats.rates == (2, 2, 2)                   # not in free mode yet: the text is not used
    explorer.schedule.value = "free"
    assert explorer.stats.rates == (1, 3, 9) and explorer.stats.receptive_field == 27
    assert explorer.stats.coverage == 1.0 and "no holes" in explorer.summary.value
    assert explorer.rate.disabled and explorer.layers.disabled
    picture = bytes(explorer.image.value)
    explorer.free_rates.value = "1, 5, 9"
    assert explorer.stats.rates == (1, 5, 9) and "holes: some rate" in explorer.summary.value
    assert bytes(explorer.image.value) != picture
    picture = bytes(explorer.image.value)
    explorer.free_rates.value = "1, x"                        # bad text: the reason shown, the picture kept
    assert "'x' is not a positive integer" in explorer.summary.value
    assert explorer.stats.rates == (1, 5, 9) and bytes(explorer.image.value) == picture
    explorer.schedule.value = "doubling"                      # back to the sliders
    assert explorer.stats.rates == (2, 4, 8) and not explorer.rate.disabled
    explorer.rate.value = 1
    assert explorer.stats.rates == (1, 2, 4)


def test_explorer_refuses_bad_settings():
    with pytest.raises(ValueError, match="odd"):
        dilation_explorer(kernel_size=2)
    with pytest.raises(ValueError, match="schedule"):
        dilation_explorer(schedule="linear")
    with pytest.raises(ValueError, match="not a positive integer"):
        dilation_explorer(schedule="free", free_rates="1, 0")
