"""Tests for segtutor.receptive_field: the layer formula on hand-computed cases, and the gradient measurement."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from segtutor.models import DeepLabV3Plus, ResNet
from segtutor.receptive_field import (LayerSpec, analytic_receptive_field, empirical_receptive_field,
                                      layers_from_module, receptive_field_trace)


def conv(k: int, s: int = 1, d: int = 1, c_in: int = 2, c_out: int = 2) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=s, dilation=d, padding=d * (k - 1) // 2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_two_3x3_convs_see_5_pixels():
    assert analytic_receptive_field([(3, 1, 1), (3, 1, 1)]) == 5
    assert empirical_receptive_field(nn.Sequential(conv(3), nn.ReLU(), conv(3)), 21, in_channels=2)[0] == 5


@pytest.mark.parametrize("rate", [1, 2, 5])
def test_one_atrous_3x3_conv_sees_2r_plus_1_pixels(rate):
    assert analytic_receptive_field([(3, 1, rate)]) == 2 * rate + 1
    size, gradient = empirical_receptive_field(conv(3, d=rate), 25, in_channels=2)
    assert size == 2 * rate + 1
    assert int((gradient != 0).sum()) == 9          # still 9 taps: a wider field for the same parameters


def test_strides_multiply_the_later_kernels():
    # conv3 stride 2, then conv3: the second conv's taps are 2 input pixels apart -> 3 + 2 * 2 = 7
    assert analytic_receptive_field([(3, 2), (3,)]) == 7
    assert empirical_receptive_field(nn.Sequential(conv(3, s=2), conv(3)), 31, in_channels=2)[0] == 7
    trace = receptive_field_trace([(3, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 2)])
    assert [(row.jump, row.size) for row in trace] == [(2, 3), (2, 7), (4, 9), (4, 25)]
    assert trace[-1].layer == LayerSpec(3, 1, 2) and trace[-1].layer.effective_kernel == 5
    assert analytic_receptive_field([]) == 1


STACKS = {
    "plain": lambda: nn.Sequential(conv(3), nn.BatchNorm2d(2), nn.ReLU(), conv(3), nn.ReLU(), conv(3)),
    "pooled": lambda: nn.Sequential(conv(3), nn.ReLU(), nn.MaxPool2d(2), conv(3), nn.ReLU(), nn.MaxPool2d(2), conv(3)),
    "strided_dilated": lambda: nn.Sequential(conv(5, s=2), nn.ReLU(), conv(3, d=2), nn.ReLU(), conv(3, s=2), conv(3, d=3)),
    "nested": lambda: nn.Sequential(nn.Sequential(conv(3), nn.ReLU()), nn.AvgPool2d(3, stride=2),
                                    nn.Sequential(conv(1), conv(3, d=4))),
}


@pytest.mark.parametrize("name", STACKS)
def test_analytic_equals_empirical(name):
    stack = STACKS[name]()
    expected = analytic_receptive_field(stack)
    size, gradient = empirical_receptive_field(stack, 2 * expected + 9, in_channels=2)
    assert size == expected
    assert gradient.shape == (2 * expected + 9, 2 * expected + 9) and gradient.dtype == torch.float32
    assert bool((gradient >= 0).all())
    # the effective field lies inside the theoretical one
    rows = (gradient.sum(1) > 0).nonzero().flatten()
    assert int(rows[-1] - rows[0] + 1) <= expected


def test_gridding_of_stacked_even_rates():
    # three 3x3 convs at rate 2 reach 13 pixels, but only every other one: the "gridding" artefact
    stack = nn.Sequential(conv(3, d=2), conv(3, d=2), conv(3, d=2))
    size, gradient = empirical_receptive_field(stack, 21, in_channels=2)
    assert size == 13 == analytic_receptive_field(stack)
    assert not gradient[1::2, :].any() and not gradient[:, 1::2].any()   # centre is (10, 10): odd offsets are blind
    assert bool((gradient[4:17:2, 4:17:2] > 0).all())


def test_layers_from_module():
    stack = nn.Sequential(conv(3, s=2), nn.BatchNorm2d(2), nn.ReLU(), nn.Sequential(nn.MaxPool2d(3, 2), conv(3, d=2)))
    assert layers_from_module(stack) == [LayerSpec(3, 2, 1), LayerSpec(3, 2, 1), LayerSpec(3, 1, 2)]

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = conv(3), conv(5)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], 1)

    with pytest.raises(ValueError, match="cannot read a chain of layers from Branchy"):
        layers_from_module(Branchy())
    with pytest.raises(ValueError, match="non-square kernel"):
        layers_from_module(nn.Conv2d(1, 1, (3, 1)))
    with pytest.raises(ValueError, match=r"layer 1 must be \(kernel, stride, dilation\)"):
        analytic_receptive_field([(3, 1, 1), (3, 0)])


def test_channel_selects_one_output():
    class TwoFields(nn.Module):          # output channel 0 sees 1 pixel, channel 1 sees 5
        def __init__(self):
            super().__init__()
            self.narrow, self.wide = conv(1, c_out=1), conv(5, c_out=1)

        def forward(self, x):
            return torch.cat([self.narrow(x), self.wide(x)], 1)

    model = TwoFields()
    assert empirical_receptive_field(model, 15, in_channels=2, channel=0)[0] == 1
    assert empirical_receptive_field(model, 15, in_channels=2, channel=1)[0] == 5
    assert empirical_receptive_field(model, 15, in_channels=2)[0] == 5
    with pytest.raises(ValueError, match="channel=2 is out of range for an output with 2 channels"):
        empirical_receptive_field(model, 15, in_channels=2, channel=2)


def test_linearize_sees_past_dead_relus_and_max_pools():
    # A ReLU that is off for every input hides the whole field from the gradient; linearize does not.
    dead = nn.Sequential(conv(3), nn.ReLU(), conv(3))
    with torch.no_grad():
        dead[0].bias.fill_(-100.0)
    assert empirical_receptive_field(dead, 15, in_channels=2)[0] == 5
    with pytest.raises(ValueError, match="zero everywhere"):
        empirical_receptive_field(dead, 15, in_channels=2, linearize=False)


def test_model_is_left_untouched_and_border_warns():
    model = nn.Sequential(conv(3), nn.ReLU(), conv(3)).train()
    with pytest.warns(UserWarning, match="reaches the border of the 4x4 input"):
        size, _ = empirical_receptive_field(model, 4, in_channels=2)
    assert size == 4
    assert model.training and next(model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="input_size must be a positive int"):
        empirical_receptive_field(model, 0, in_channels=2)


def test_resnet_backbone_and_deeplab_head_at_output_stride_16():
    """Receptive field of DeepLab v3+'s widest ASPP branch at output stride 16, computed by hand.

    Layer (kernel, stride, dilation)     jump before   field after
    stem   conv 3                        1             1 + 2*1         = 3
           pool 2 (stride 2)             1             3 + 1*1         = 4
           conv 3                        2             4 + 2*2         = 8
    layer1 pool 2                        2             8 + 1*2         = 10
           block: conv 3, conv 3         4             10 + 2*4 + 2*4  = 26
    layer2 pool 2; block                 4, 8          26 + 4 + 16 + 16 = 62
    layer3 pool 2; block                 8, 16         62 + 8 + 32 + 32 = 134
    layer4 (no pool) block at rate 2     16            134 + 4*16 + 4*16 = 262
    ASPP   3x3 at rate r                 16            262 + 2r * 16
    """
    backbone = ResNet(1, (2, 2, 2, 2), (1, 1, 1, 1), output_stride=16)
    assert analytic_receptive_field(backbone) == 262
    model = DeepLabV3Plus(3, in_channels=1, width=2, depths=(1, 1, 1, 1), output_stride=16)
    widest = model.aspp.branches[3]                   # [1x1, rate 1, rate 2, rate 3, image pooling]
    assert widest[0].dilation == (3, 3)
    assert analytic_receptive_field([model.backbone, widest]) == 262 + 2 * 3 * 16 == 358
    paper = DeepLabV3Plus(3, in_channels=1, width=2, depths=(1, 1, 1, 1), rates=(6, 12, 18))
    assert analytic_receptive_field([paper.backbone, paper.aspp.branches[3]]) == 262 + 2 * 18 * 16 == 838

    class BackboneThenBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.branch = model.backbone, widest

        def forward(self, x):
            return self.branch(self.backbone(x)["layer4"])

    size, _ = empirical_receptive_field(BackboneThenBranch(), 392, in_channels=1, samples=1)
    assert size == 358


# ---- when a dilated stack fills its box ---------------------------------------------------------------------

def _covers_by_transposed_convs(k, rates):
    """Oracle independent of sampling_pattern: spread a delta through transposed all-ones convs, 1-D."""
    z = torch.ones(1, 1, 1, dtype=torch.float64)
    for r in rates:
        z = torch.nn.functional.conv_transpose1d(z, torch.ones(1, 1, k, dtype=torch.float64), dilation=r)
    return bool((z > 0).all())


@pytest.mark.parametrize("k, layers, top", [(3, 2, 9), (3, 3, 9), (5, 3, 7), (3, 4, 5), (1, 2, 3)])
def test_gap_free_rule_equals_full_coverage(k, layers, top):
    import itertools
    from segtutor.receptive_field import dilation_stats, gap_free
    for rates in itertools.product(range(1, top + 1), repeat=layers):
        full = _covers_by_transposed_convs(k, rates)
        assert gap_free(k, rates) == full == (dilation_stats(k, rates).coverage == 1.0), rates


def test_hand_cases_of_the_two_rules():
    from segtutor.receptive_field import dilation_stats, gap_free, hdc_max_distance, hdc_rule
    assert gap_free(3, (1, 2, 5)) and gap_free(3, (1, 3, 9)) and gap_free(3, (5, 1, 2))
    assert not gap_free(3, (1, 5, 9)) and not gap_free(3, (2, 2, 2)) and not gap_free(3, (1, 3, 10))
    assert round(dilation_stats(3, (1, 5, 9)).coverage, 2) == 0.55       # no common factor, still holes
    # Wang et al.'s examples: [1, 2, 5] gives M_2 = 2 <= 3, [1, 2, 9] gives M_2 = 5 > 3
    assert hdc_max_distance((1, 2, 5)) == 2 and hdc_max_distance((1, 2, 9)) == 5
    assert hdc_rule(3, (1, 2, 5)) and not hdc_rule(3, (1, 2, 9)) and not hdc_rule(3, (2, 4, 8))
    assert hdc_max_distance(7) == 7 and hdc_max_distance((1, 9)) == 9


def test_hdc_rule_equals_full_coverage_for_sorted_3x3_stacks_from_rate_1():
    import itertools
    from segtutor.receptive_field import hdc_rule
    for rest in itertools.combinations_with_replacement(range(1, 13), 2):
        rates = (1, *rest)
        assert hdc_rule(3, rates) == _covers_by_transposed_convs(3, rates), rates


def test_rules_refuse_bad_rates():
    from segtutor.receptive_field import gap_free, hdc_rule
    with pytest.raises(ValueError, match="non-empty sequence"):
        gap_free(3, ())
    with pytest.raises(ValueError, match="odd"):
        hdc_rule(4, (1, 2))
