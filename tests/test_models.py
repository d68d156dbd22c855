"""Tests for segtutor.models: shapes at any size, gradients, determinism, the FCN/U-Net/DeepLab specifics."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segtutor.models import (MODEL_NAMES, PAPER_RATES, ASPPv2, DeepLabV2, DeepLabV3Plus, FCN, ResNet, UNet,
                             atrous_rates, bilinear_kernel, build_model)
from segtutor.models.layers import BilinearUpsample, crop_to, upsample

K = 3          # classes in these tests
WIDTH = 4      # tiny models keep the file fast


def tiny(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, K, width=WIDTH, **kwargs)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("size", [(32, 32), (33, 47), (97, 130)])
def test_logits_have_the_input_size(name, size):
    model = tiny(name).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, K, *size)
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("in_channels", [1, 4])
def test_any_number_of_input_channels(name, in_channels):
    model = build_model(name, K, in_channels=in_channels, width=WIDTH).eval()
    with torch.no_grad():
        assert model(torch.rand(1, in_channels, 40, 36)).shape == (1, K, 40, 36)
    with pytest.raises(ValueError, match=rf"in_channels={in_channels}.*\(N, {in_channels}, H, W\)"):
        model(torch.rand(1, in_channels + 1, 40, 36))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_parameter_gets_a_gradient(name):
    model = tiny(name).train()
    x, target = torch.rand(2, 3, 37, 45), torch.randint(0, K, (2, 37, 45))
    F.cross_entropy(model(x), target).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not missing, f"parameters without gradient (unused?): {missing}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_eval_mode_is_deterministic_and_per_image(name):
    model = tiny(name).eval()
    x = torch.rand(3, 3, 35, 33)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        first, second = model(x), model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert torch.equal(first, second)
    # in eval mode BN uses its running statistics: an image's logits do not depend on its batch-mates
    torch.testing.assert_close(first, alone, rtol=1e-4, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "eval forward changed the state"


@pytest.mark.parametrize("name", ["fcn8s", "unet", "deeplabv3plus"])
def test_train_mode_uses_batch_statistics_and_updates_them(name):
    model = tiny(name)
    x = torch.rand(4, 3, 32, 32) * 5 + 3     # far from BN's initial running stats (mean 0, var 1)
    with torch.no_grad():
        model.eval()
        eval_out = model(x)
        model.train()
        train_out = model(x)
        model.eval()
        after = model(x)
    assert not torch.allclose(eval_out, train_out)
    assert not torch.allclose(eval_out, after), "a train-mode forward should update BN running statistics"


def test_single_image_batch_trains():
    # BN over a 1x1 map fails on one image; DeepLab v3+'s image pooling branch must not have it
    model = tiny("deeplabv3plus").train()
    F.cross_entropy(model(torch.rand(1, 3, 64, 64)), torch.randint(0, K, (1, 64, 64))).backward()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_rebuilds_the_same_architecture(name):
    model = tiny(name)
    assert model.config["name"] == name and model.config["num_classes"] == K and model.config["width"] == WIDTH
    again = build_model(**model.config)
    assert again.config == model.config
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in again.state_dict().items()}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_width_scales_channels_linearly(name):
    def convs(model):
        return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels != K]
    narrow, wide = convs(build_model(name, K, width=4)), convs(build_model(name, K, width=8))
    assert wide == [2 * c for c in narrow]
    first = next(m for m in build_model(name, K).modules() if isinstance(m, nn.Conv2d))
    assert first.out_channels == 16, "width=16 is the default: the first conv has 16 channels"


def test_build_model_errors():
    known = "fcn32s, fcn16s, fcn8s, unet, deeplabv1, deeplabv2, deeplabv3plus"
    with pytest.raises(ValueError, match=f"unknown model 'segnet'.*{known}"):
        build_model("segnet", K)
    with pytest.raises(TypeError, match="fixes variant='8s'"):
        build_model("fcn8s", K, variant="16s")
    with pytest.raises(TypeError, match="unexpected keyword argument 'output_stride'.*UNet accepts: width, depth, mode, skip"):
        build_model("unet", K, output_stride=8)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        build_model("unet", 0)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        build_model("fcn8s", K, width=0)
    assert build_model("UNet ", K, width=WIDTH).config["name"] == "unet"
    assert MODEL_NAMES == ("fcn32s", "fcn16s", "fcn8s", "unet", "deeplabv1", "deeplabv2", "deeplabv3plus")


@pytest.mark.parametrize("bad, message", [
    (torch.rand(3, 40, 40), r"must have shape \(N, 3, H, W\).*3-D.*unsqueeze\(0\)"),
    (torch.rand(1, 40, 40, 3), r"40 channels.*in_channels=3.*permute"),
    (torch.rand(1, 3, 31, 64), r"31x64 is too small.*H, W >= 32"),
    (torch.randint(0, 255, (1, 3, 40, 40), dtype=torch.uint8), r"floating point.*uint8"),
])
@pytest.mark.parametrize("name", ["fcn32s", "unet", "deeplabv1"])
def test_bad_input_is_refused_with_the_expected_shape(name, bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tiny(name)(bad)


# ---- FCN ---------------------------------------------------------------------------------------------------

def _hand_bilinear_1d(factor: int) -> torch.Tensor:
    # weights of F.interpolate's half-pixel bilinear upsampling, as a kernel of size 2 * factor
    offsets = (torch.arange(2 * factor) + 0.5) / factor - 1      # output centres relative to an input centre
    return 1 - offsets.abs()


@pytest.mark.parametrize("kernel_size, expected", [(4, [0.25, 0.75, 0.75, 0.25]), (3, [0.5, 1.0, 0.5]),
                                                   (16, _hand_bilinear_1d(8).tolist())])
def test_bilinear_kernel_is_the_tent(kernel_size, expected):
    weight = bilinear_kernel(2, 2, kernel_size)
    tent = torch.tensor(expected)
    assert weight.shape == (2, 2, kernel_size, kernel_size)
    torch.testing.assert_close(weight[0, 0], torch.outer(tent, tent))
    torch.testing.assert_close(weight[1, 1], weight[0, 0])
    assert not weight[0, 1].any() and not weight[1, 0].any()


@pytest.mark.parametrize("factor", [2, 4, 8, 32])
def test_transposed_conv_with_bilinear_init_is_bilinear_upsampling(factor):
    torch.manual_seed(factor)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    up = BilinearUpsample(3, factor).double()
    assert isinstance(up, nn.ConvTranspose2d) and up.weight.requires_grad
    ours = up(x)
    reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert ours.shape == reference.shape == (2, 3, 5 * factor, 6 * factor)
    inner = slice(factor, -factor)       # the transposed conv sees zeros past the border, interpolate repeats it
    torch.testing.assert_close(ours[..., inner, inner], reference[..., inner, inner])
    assert not torch.allclose(ours[..., :1, :], reference[..., :1, :])


def test_bilinear_kernel_errors():
    with pytest.raises(ValueError, match="in_channels .3. must equal out_channels .4."):
        bilinear_kernel(3, 4, 4)
    with pytest.raises(ValueError, match="even integer"):
        BilinearUpsample(3, 3)


@pytest.mark.parametrize("variant, stages", [("32s", ["layer4"]), ("16s", ["layer4", "layer3"]),
                                             ("8s", ["layer4", "layer3", "layer2"])])
def test_fcn_fuses_upsampled_coarse_scores_with_finer_scores_by_addition(variant, stages):
    torch.manual_seed(0)
    model = FCN(K, variant=variant, width=WIDTH).eval()
    assert list(model.score) == stages
    assert all(m.out_channels == K and m.kernel_size == (1, 1) for m in model.score.values())
    final_factor = {"32s": 32, "16s": 16, "8s": 8}[variant]
    assert model.upsample.factor == final_factor and len(model.up2) == len(stages) - 1
    for up in [model.upsample, *model.up2]:
        torch.testing.assert_close(up.weight, bilinear_kernel(K, K, 2 * up.factor))
    x = torch.rand(2, 3, 70, 45)
    with torch.no_grad():
        feats = model.backbone(x)
        scores = model.score[stages[0]](feats[stages[0]])          # coarse, high-level scores: upsampled
        for stage, up in zip(stages[1:], model.up2):
            fine = model.score[stage](feats[stage])                # finer, low-level scores: added
            assert up(scores).shape[1] == fine.shape[1] == K
            scores = up(scores)[..., :fine.shape[2], :fine.shape[3]] + fine
        torch.testing.assert_close(model(x), model.upsample(scores)[..., :70, :45])


# ---- U-Net -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["transpose", "bilinear"])
@pytest.mark.parametrize("depth", [1, 3, 5])
def test_unet_depth_and_modes(mode, depth):
    model = UNet(K, width=WIDTH, depth=depth, mode=mode).eval()
    assert len(model.down) == len(model.up) == depth
    assert [b[1][0][0].out_channels for b in model.down] == [WIDTH * 2 ** (i + 1) for i in range(depth)]
    with torch.no_grad():
        assert model(torch.rand(1, 3, 33, 50)).shape == (1, K, 33, 50)


def test_unet_without_skips_has_no_skip_inputs_and_ignores_the_encoder_maps():
    with_skip, without = UNet(K, width=WIDTH, depth=3), UNet(K, width=WIDTH, depth=3, skip=False)
    for up_with, up_without in zip(with_skip.up, without.up):
        out_channels = up_with.conv[1][0].out_channels
        assert up_with.conv[0][0].in_channels == 2 * out_channels
        assert up_without.conv[0][0].in_channels == out_channels
    # Pin the bottleneck to a constant: without skips the logits can no longer depend on the image.
    for model, depends in ((with_skip, True), (without, False)):
        model.eval()
        model.down[-1].register_forward_hook(lambda mod, inp, out: torch.ones_like(out))
        with torch.no_grad():
            a, b = model(torch.rand(1, 3, 40, 40)), model(torch.rand(1, 3, 40, 40))
        assert torch.allclose(a, b) is not depends


def test_unet_builds_its_pools_once(monkeypatch):
    model = UNet(K, width=WIDTH, depth=3)
    made = []
    original = nn.MaxPool2d.__init__
    monkeypatch.setattr(nn.MaxPool2d, "__init__", lambda self, *a, **k: (made.append(1), original(self, *a, **k))[1])
    model(torch.rand(2, 3, 32, 32))
    assert not made, "forward must not create modules (the source's U-Net makes nn.MaxPool2d in forward)"
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3


def test_unet_errors():
    with pytest.raises(ValueError, match="depth must be between 1 and 5"):
        UNet(K, depth=6)
    with pytest.raises(ValueError, match="unknown upsampling mode 'nearest'.*transpose, bilinear"):
        UNet(K, mode="nearest")


# ---- backbone and DeepLab ---------------------------------------------------------------------------------

@pytest.mark.parametrize("output_stride, strides, dilations", [
    (32, (4, 8, 16, 32), (1, 1, 1, 1)), (16, (4, 8, 16, 16), (1, 1, 1, 2)), (8, (4, 8, 8, 8), (1, 1, 2, 4))])
def test_backbone_trades_stride_for_dilation(output_stride, strides, dilations):
    backbone = ResNet(3, (4, 8, 12, 16), (1, 2, 1, 1), output_stride=output_stride).eval()
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, 97, 64))
    assert list(feats) == ["stem", "layer1", "layer2", "layer3", "layer4"]
    for i, name in enumerate(["layer1", "layer2", "layer3", "layer4"]):
        s = strides[i]
        assert backbone.strides[name] == s
        assert feats[name].shape == (1, (4, 8, 12, 16)[i], -(-97 // s), -(-64 // s))
        convs = [m for m in getattr(backbone, name).modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        assert {m.dilation for m in convs} == {(dilations[i], dilations[i])}


def test_atrous_rates():
    assert atrous_rates("v3plus", 16, paper=True) == (6, 12, 18)
    assert atrous_rates("v3plus", 8, paper=True) == (12, 24, 36)
    assert atrous_rates("v2", paper=True) == (6, 12, 18, 24) == PAPER_RATES["v2"]
    assert atrous_rates("v3plus", 16) == (1, 2, 3) and atrous_rates("v3plus", 8) == (2, 4, 6)
    with pytest.raises(ValueError, match="no integer course rates"):
        atrous_rates("v2", 16)
    with pytest.raises(ValueError, match="unknown DeepLab version"):
        atrous_rates("v4")


@pytest.mark.parametrize("output_stride, rates", [(16, (1, 2, 3)), (8, (2, 4, 6))])
def test_v3plus_aspp_rates_follow_the_output_stride(output_stride, rates):
    model = DeepLabV3Plus(K, width=WIDTH, output_stride=output_stride)
    assert model.backbone.strides["layer4"] == output_stride and model.config["rates"] == rates
    atrous = [b[0].dilation[0] for b in model.aspp.branches if isinstance(b, nn.Sequential) and b[0].kernel_size == (3, 3)]
    assert tuple(atrous) == rates
    assert model.decoder.factor == output_stride // 4
    paper = DeepLabV3Plus(K, width=WIDTH, output_stride=output_stride, rates=atrous_rates("v3plus", output_stride, paper=True))
    assert paper.aspp.rates == {16: (6, 12, 18), 8: (12, 24, 36)}[output_stride]
    with pytest.raises(ValueError, match="3 positive integers"):
        DeepLabV3Plus(K, rates=(6, 12))


@pytest.mark.parametrize("output_stride", [16, 8])
def test_v3plus_without_decoder_is_v3_scores_upsampled_from_the_output_stride(output_stride):
    torch.manual_seed(0)
    model = build_model("deeplabv3plus", K, width=WIDTH, output_stride=output_stride, decoder=False).eval()
    assert model.decoder is None and model.config["decoder"] is False
    assert build_model(**model.config).config == model.config
    assert DeepLabV3Plus(K, width=WIDTH).config["decoder"] is True
    with_decoder = DeepLabV3Plus(K, width=WIDTH, output_stride=output_stride)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in with_decoder.parameters())
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        feats = model.backbone(x)
        scores = F.conv2d(model.aspp(feats["layer4"]), model.classifier.weight, model.classifier.bias)
        assert scores.shape == (2, K, 64 // output_stride, 48 // output_stride)
        expected = F.interpolate(scores, scale_factor=output_stride, mode="bilinear", align_corners=False)
        torch.testing.assert_close(model(x), expected)
    with pytest.raises(TypeError, match="decoder must be True"):
        DeepLabV3Plus(K, decoder="no")


def test_v2_aspp_sums_the_class_scores_of_its_branches():
    torch.manual_seed(0)
    model = DeepLabV2(K, width=WIDTH, rates=(1, 2, 3, 5)).eval()
    assert isinstance(model.aspp, ASPPv2) and len(model.aspp.branches) == 4
    assert [b[0][0].dilation[0] for b in model.aspp.branches] == [1, 2, 3, 5]
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        feats = model.backbone(x)["layer4"]
        branches = [branch(feats) for branch in model.aspp.branches]
        assert all(b.shape == (2, K, 8, 6) for b in branches)      # each branch ends in K class scores
        torch.testing.assert_close(model.aspp(feats), branches[0] + branches[1] + branches[2] + branches[3])
        expected = F.interpolate(sum(branches), scale_factor=8, mode="bilinear", align_corners=False)
        torch.testing.assert_close(model(x), expected)


def test_upsample_crops_to_the_exact_scale():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    out = upsample(x, 4, (10, 13))
    full = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    assert out.shape == (1, 1, 10, 13) and torch.equal(out, full[..., :10, :13])
    with pytest.raises(ValueError, match="cannot crop a map of size 3x4 to the larger size 5x4"):
        crop_to(x, (5, 4))


# ---- CUDA --------------------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_cuda_channels_last_matches_cpu(name, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)   # compare float32 with float32
    model = tiny(name).eval()
    x = torch.rand(2, 3, 67, 50)
    with torch.no_grad():
        expected = model(x)
        gpu = model.to("cuda", memory_format=torch.channels_last)
        out = gpu(x.to("cuda", memory_format=torch.channels_last))
    assert out.device.type == "cuda" and out.shape == expected.shape
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-4, atol=1e-4)
