"""Checks of notebook 03 (segtutor.checks.deeplab): a correct atrous_conv1d passes, wrong ones fail with
expected / got / a hint; the oracle is checked against the formula written out by hand."""
import pytest
import torch

from check_helpers import failure_message
from segtutor import checks
from segtutor.checks.deeplab import atrous_conv1d_reference


def loop(x, w, r):
    n_out = len(x) - r * (len(w) - 1)
    return torch.tensor([sum(float(x[i + r * k]) * float(w[k]) for k in range(len(w))) for i in range(n_out)])


def vectorised(x, w, r):
    n_out = x.numel() - r * (w.numel() - 1)
    return sum(w[k] * x[r * k: r * k + n_out] for k in range(w.numel()))


def unfolded(x, w, r):
    span = r * (w.numel() - 1) + 1
    return x.unfold(0, span, 1)[:, ::r] @ w


def flipped(x, w, r):  # a textbook convolution: the kernel runs backwards
    return vectorised(x, w.flip(0), r)


def ignores_rate(x, w, r):  # taps next to each other, output length right
    n_out = x.numel() - r * (w.numel() - 1)
    return vectorised(x, w, 1)[:n_out]


def same_padding(x, w, r):  # pads so the output is as long as the input
    pad = r * (w.numel() - 1)
    return vectorised(torch.cat([x, x.new_zeros(pad)]), w, r)


def stub(x, w, r):
    raise NotImplementedError()


def no_return(x, w, r):
    vectorised(x, w, r)


def test_reference_matches_the_formula_by_hand():
    x = torch.arange(8.0)
    w = torch.tensor([1.0, 0.0, -1.0])
    # y[i] = x[i] - x[i + 4] = -4 for i = 0..3
    assert atrous_conv1d_reference(x, w, 2).tolist() == [-4.0, -4.0, -4.0, -4.0]
    x = torch.randn(15, dtype=torch.float64)
    w = torch.randn(4, dtype=torch.float64)
    torch.testing.assert_close(atrous_conv1d_reference(x, w, 3), loop(x, w, 3).double())


@pytest.mark.parametrize("bad, match", [
    (lambda: atrous_conv1d_reference(torch.zeros(1, 5), torch.ones(3), 1), "1-D"),
    (lambda: atrous_conv1d_reference(torch.zeros(5), torch.ones(3), 0), "positive int"),
    (lambda: atrous_conv1d_reference(torch.zeros(5), torch.ones(3), 3), "spans 7"),
])
def test_reference_refuses_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


@pytest.mark.parametrize("fn", [loop, vectorised, unfolded])
def test_correct_answers_pass(fn, capsys):
    checks.check_atrous_conv1d(fn)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint", [
    (flipped, "backwards"),
    (ignores_rate, "r = 2 samples apart"),
    (same_padding, "no padding"),
    (stub, "not done yet"),
    (no_return, "return"),
])
def test_wrong_answers_fail_with_expected_got_and_hint(fn, hint):
    text = failure_message("atrous_conv1d", checks.check_atrous_conv1d, fn)
    assert hint in text


# ---- the ASPP module exercise ------------------------------------------------------------------------------

from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from segtutor.models import ASPP  # noqa: E402
from segtutor.models.deeplab import ImagePooling  # noqa: E402
from segtutor.models.layers import conv_bn_relu  # noqa: E402


def cbr(c_in, c_out, k, r=1, padding=None, bias=False):
    pad = r * (k - 1) // 2 if padding is None else padding
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=pad, dilation=r, bias=bias), nn.BatchNorm2d(c_out), nn.ReLU())


class Pool(nn.Module):
    def __init__(self, c_in, c_out, broadcast=True, bn=False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=not bn)
        self.bn = nn.BatchNorm2d(c_out) if bn else nn.Identity()
        self.broadcast = broadcast

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x.mean((2, 3), keepdim=True))))
        return F.interpolate(y, size=x.shape[-2:], mode="nearest") if self.broadcast else y


class FromScratch(nn.Module):
    """A right answer written with plain torch layers."""
    padding_of = staticmethod(lambda r: r)
    order = None
    pool_kwargs: dict = {}
    project_out = True

    def __init__(self, in_channels, out_channels, rates):
        super().__init__()
        self.branches = nn.ModuleList([cbr(in_channels, out_channels, 1),
                                       *(cbr(in_channels, out_channels, 3, r, padding=self.padding_of(r)) for r in self.used(rates)),
                                       Pool(in_channels, out_channels, **self.pool_kwargs)])
        self.project = cbr((len(rates) + 2) * out_channels, out_channels, 1)

    def used(self, rates):
        return rates

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        if self.order is not None:
            outs = [outs[i] for i in self.order]
        cat = torch.cat(outs, dim=1)
        return self.project(cat) if self.project_out else cat


class WithCourseLayers(nn.Module):
    """A right answer with the package's building blocks."""

    def __init__(self, in_channels, out_channels, rates):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(in_channels, out_channels, 1),
                                       *(conv_bn_relu(in_channels, out_channels, 3, dilation=r) for r in rates),
                                       ImagePooling(in_channels, out_channels)])
        self.project = conv_bn_relu(len(self.branches) * out_channels, out_channels, 1)

    def forward(self, x):
        return self.project(torch.cat([b(x) for b in self.branches], 1))


class PaddingOne(FromScratch):
    padding_of = staticmethod(lambda r: 1)


class NoDilation(FromScratch):
    def __init__(self, in_channels, out_channels, rates):
        super().__init__(in_channels, out_channels, rates)
        for b in self.branches[1:-1]:
            b[0].dilation = (1, 1)


class HardCodedRates(FromScratch):
    def used(self, rates):
        return (6, 12, 18)


class NoProjection(FromScratch):
    project_out = False


class PoolingNotBroadcast(FromScratch):
    pool_kwargs = {"broadcast": False}


class PoolingWithBatchNorm(FromScratch):
    pool_kwargs = {"bn": True}


class WrongOrder(FromScratch):
    order = [4, 0, 1, 2, 3]      # pooling first


class NoPooling(FromScratch):
    def __init__(self, in_channels, out_channels, rates):
        super().__init__(in_channels, out_channels, rates)
        del self.branches[-1]


class NoReluInAtrousBranch(FromScratch):
    def __init__(self, in_channels, out_channels, rates):
        super().__init__(in_channels, out_channels, rates)
        self.branches[2][2] = nn.Identity()


class NoProjectAttribute(nn.Module):
    def __init__(self, in_channels, out_channels, rates):
        super().__init__()
        self.branches = nn.ModuleList()


def not_a_module(in_channels, out_channels, rates):
    return lambda x: x


class Unfinished(nn.Module):
    def __init__(self, in_channels, out_channels, rates):
        raise NotImplementedError()


@pytest.mark.parametrize("cls", [FromScratch, WithCourseLayers, ASPP])
def test_right_aspp_passes(cls, capsys):
    checks.check_aspp(cls)
    out = capsys.readouterr().out
    assert out.count("passed") == 1 and "ASPP" in out


def test_aspp_check_oracle_is_the_package_module_with_the_layers_by_hand():
    # the check compares with segtutor.models.ASPP: that module is the formula written out here
    torch.manual_seed(0)
    ref = ASPP(4, 3, (1, 2, 3)).eval()
    x = torch.randn(1, 4, 7, 6)
    with torch.no_grad():
        outs = []
        for branch in ref.branches[:-1]:
            conv, bn = branch[0], branch[1]
            outs.append(torch.relu(F.batch_norm(F.conv2d(x, conv.weight, padding=conv.padding, dilation=conv.dilation),
                                                bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps)))
        pool = ref.branches[-1].conv
        outs.append(torch.relu(F.conv2d(x.mean((2, 3), keepdim=True), pool.weight, pool.bias)).expand(-1, -1, 7, 6))
        conv, bn = ref.project[0], ref.project[1]
        want = torch.relu(F.batch_norm(F.conv2d(torch.cat(outs, 1), conv.weight), bn.running_mean, bn.running_var,
                                       bn.weight, bn.bias, eps=bn.eps))
        torch.testing.assert_close(ref(x), want)
    assert [b[0].dilation[0] for b in ref.branches[1:-1]] == [1, 2, 3]


@pytest.mark.parametrize("cls, hint", [
    (PaddingOne, "padding 1 with dilation r"),
    (NoDilation, "use the rate you are given as the dilation"),
    (HardCodedRates, "hard-coded"),
    (NoProjection, "not projected"),
    (PoolingNotBroadcast, "broadcast it back"),
    (PoolingWithBatchNorm, "1x1 conv (with bias, no BN: BN over a 1x1 map fails"),
    (WrongOrder, "order [1x1, rates in order, image pooling]"),
    (NoPooling, "forget image pooling"),
    (NoReluInAtrousBranch, "branch 2 (rate 2) differs"),
    (NoProjectAttribute, "attributes `branches` and `project`"),
    (not_a_module, "subclass of nn.Module"),
    (Unfinished, "not done yet"),
])
def test_wrong_aspp_fails_naming_the_mistake(cls, hint):
    text = failure_message("ASPP", checks.check_aspp, cls)
    assert hint in text, text
