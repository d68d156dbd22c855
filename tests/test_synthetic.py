"""The synthetic dataset (segtutor.data.synthetic): labels follow shape type, shapes are visible, scenes agree."""
import importlib
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.path import Path

import segtutor.data
from segtutor.data import CLASS_NAMES, Scene, SyntheticShapes
from segtutor.data import synthetic as syn


@pytest.fixture(scope="module")
def shapes4():
    return SyntheticShapes(120, 48, num_classes=4, seed=3)


@pytest.fixture(scope="module")
def scenes4(shapes4):
    return [shapes4.scene(i) for i in range(len(shapes4))]


# ------------------------------------------------------------------ contract: types, shapes, ranges
@pytest.mark.parametrize("image_size, num_classes", [(32, 2), ((40, 56), 4), (48, 8)])
def test_items_have_the_contract_types(image_size, num_classes):
    ds = SyntheticShapes(6, image_size, num_classes, seed=1)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    assert len(ds) == 6 and ds.image_size == (h, w)
    assert ds.class_names == CLASS_NAMES[:num_classes] and len(ds.palette) == num_classes
    for i in range(len(ds)):
        image, mask = ds[i]
        assert image.dtype == torch.float32 and image.shape == (3, h, w)
        assert mask.dtype == torch.int64 and mask.shape == (h, w)
        assert 0 <= image.min() and image.max() <= 1
        assert 0 <= mask.min() and mask.max() < num_classes
    images, masks = ds.tensors()
    assert images.shape == (6, 3, h, w) and masks.shape == (6, h, w)
    assert torch.equal(images[-1], ds[-1][0]) and torch.equal(masks[2], ds[2][1])


def test_works_with_a_dataloader():
    loader = torch.utils.data.DataLoader(SyntheticShapes(10, 32), batch_size=4)
    images, masks = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and masks.shape == (4, 32, 32) and masks.dtype == torch.int64


# ------------------------------------------------------------------ determinism
def test_same_seed_same_data_other_seed_other_data():
    a, b, c = (SyntheticShapes(8, 32, seed=s) for s in (5, 5, 6))
    assert all(torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1]) for i in range(8))
    assert not any(torch.equal(a[i][1], c[i][1]) for i in range(8))
    assert not any(torch.equal(a[i][0], a[i + 1][0]) for i in range(7))


def test_item_depends_only_on_seed_and_index():
    cached = SyntheticShapes(12, 40, num_classes=8, seed=2)
    lazy = SyntheticShapes(12, 40, num_classes=8, seed=2, cache=False)
    longer = SyntheticShapes(30, 40, num_classes=8, seed=2)
    for i in reversed(range(12)):   # reverse access order on the lazy one
        image, mask = lazy[i]
        assert torch.equal(image, cached[i][0]) and torch.equal(mask, cached[i][1])
        assert torch.equal(image, longer[i][0]) and torch.equal(mask, longer[i][1])
        scene = cached.scene(i)
        assert torch.equal(scene.image, image) and torch.equal(scene.mask, mask)


# ------------------------------------------------------------------ labels are shape types, not colours
def _instance_colours(scenes):
    colours, labels = [], []
    for scene in scenes:
        for k, label in enumerate(scene.labels.tolist(), start=1):
            pixels = scene.instance_mask == k
            if pixels.sum() >= 10:
                colours.append(scene.image[:, pixels].mean(dim=1))
                labels.append(label)
    return torch.stack(colours), torch.tensor(labels)


def _knn_accuracy(features, labels, k=5):
    """Leave-one-out k-nearest-neighbour accuracy of predicting labels from features."""
    dist = torch.cdist(features, features)
    dist.fill_diagonal_(float("inf"))
    neighbours = labels[dist.topk(k, largest=False).indices]
    votes = F.one_hot(neighbours, int(labels.max()) + 1).sum(1)
    return (votes.argmax(1) == labels).double().mean().item()


def test_colour_does_not_give_away_the_class(scenes4):
    colours, labels = _instance_colours(scenes4)
    assert len(labels) > 150 and set(labels.tolist()) == {1, 2, 3}
    chance = torch.bincount(labels).max().item() / len(labels)
    accuracy = _knn_accuracy(colours, labels)
    assert accuracy < chance + 0.12, f"colour predicts the shape type: kNN accuracy {accuracy:.2f}, chance {chance:.2f}"
    means = torch.stack([colours[labels == c].mean(0) for c in (1, 2, 3)])
    assert torch.cdist(means, means).max() < 0.2
    # the same test does catch colour-coded classes: one fixed colour per class plus the same spread
    coded = torch.eye(3)[labels - 1] * 0.6 + 0.2 + 0.1 * torch.randn(len(labels), 3, generator=torch.Generator().manual_seed(0))
    assert _knn_accuracy(coded, labels) > 0.9


def test_every_shape_type_appears_triangles_included():
    _, masks = SyntheticShapes(60, 48, num_classes=8, seed=0).tensors()
    counts = torch.bincount(masks.flatten(), minlength=8)
    assert (counts > 0).all(), f"pixels per class {counts.tolist()}"
    _, masks = SyntheticShapes(60, 48, num_classes=4, seed=0).tensors()
    fraction = torch.bincount(masks.flatten(), minlength=4).double() / masks.numel()
    assert fraction[3] > 0.01, "triangles must be drawn (the source picked 'triangle' but never drew one)"


# ------------------------------------------------------------------ shapes are visible
def _edge_contrast(images, scenes, min_pixels=30):
    """For each visible instance: distance between its mean colour and the mean colour of a 2-pixel band
    just outside it. Returns one value per instance."""
    values = []
    for image, scene in zip(images, scenes):
        for k in range(1, scene.num_instances + 1):
            inside = (scene.instance_mask == k).float()
            if inside.sum() < min_pixels:
                continue
            grown = F.max_pool2d(inside[None, None], 5, stride=1, padding=2)[0, 0]
            band = (grown > 0) & (inside == 0)
            if band.sum() == 0:
                continue
            values.append((image[:, inside.bool()].mean(1) - image[:, band].mean(1)).norm().item())
    return torch.tensor(values)


def test_shapes_are_visible_in_the_image(scenes4):
    contrast = _edge_contrast([s.image for s in scenes4], scenes4)
    assert len(contrast) > 150
    assert (contrast > 0.15).double().mean() > 0.9, f"median contrast {contrast.median():.3f}"
    # the source's images (uniform noise, shapes only in the mask) fail the same check
    noise = [torch.rand(s.image.shape, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(scenes4)]
    assert (_edge_contrast(noise, scenes4) > 0.15).double().mean() < 0.1


def test_background_is_textured_and_noisy():
    image, mask = SyntheticShapes(1, 64, seed=0, shapes_per_image=0)[0]
    assert (mask == 0).all()
    assert image.std(dim=(1, 2)).max() > 0.02            # gradient / blobs / noise, not a flat colour
    assert (image[:, :, 1:] - image[:, :, :-1]).abs().mean() > 0.01   # pixel noise
    quiet, _ = SyntheticShapes(1, 64, seed=0, shapes_per_image=0, noise=0.0)[0]
    assert (quiet[:, :, 1:] - quiet[:, :, :-1]).abs().mean() < (image[:, :, 1:] - image[:, :, :-1]).abs().mean() / 3


# ------------------------------------------------------------------ geometry against an independent oracle
def _polygon(kind, extra):
    if kind == syn._TRIANGLE:
        pts = [(math.cos(a), math.sin(a)) for a in (math.pi / 2, 7 * math.pi / 6, 11 * math.pi / 6)]
        return [(u, v * extra) for u, v in pts]
    if kind == syn._RECTANGLE:
        a = 1 / math.sqrt(1 + extra ** 2)
        b = extra * a
        return [(-a, -b), (a, -b), (a, b), (-a, b)]
    if kind == syn._CROSS:
        w, arm = extra, math.sqrt(1 - extra ** 2)
        return [(w, w), (arm, w), (arm, -w), (w, -w), (w, -arm), (-w, -arm), (-w, -w), (-arm, -w),
                (-arm, w), (-w, w), (-w, arm), (w, arm)]
    if kind == syn._STAR:
        inner = math.cos(2 * math.pi / 5) / math.cos(math.pi / 5)   # pentagram inner radius
        return [(r * math.cos(math.pi / 2 + k * math.pi / 5), r * math.sin(math.pi / 2 + k * math.pi / 5))
                for k, r in zip(range(10), [1, inner] * 5)]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, extra", [(syn._TRIANGLE, 1.0), (syn._TRIANGLE, 0.8), (syn._RECTANGLE, 0.5),
                                         (syn._CROSS, 0.3), (syn._STAR, 0.0)])
def test_polygon_shapes_match_matplotlib(kind, extra):
    g = np.linspace(-1.3, 1.3, 261) + 0.0013   # offset: no grid point exactly on an edge
    u, v = np.meshgrid(g, g)
    ours = syn._inside(kind, u, v, extra)
    theirs = Path(_polygon(kind, extra)).contains_points(np.column_stack([u.ravel(), v.ravel()])).reshape(u.shape)
    assert ours.any() and (ours == theirs).mean() > 0.999


@pytest.mark.parametrize("kind, extra, area", [(syn._CIRCLE, 0.0, math.pi), (syn._ELLIPSE, 0.5, math.pi * 0.5),
                                               (syn._RING, 0.5, math.pi * 0.75)])
def test_round_shapes_have_the_right_area(kind, extra, area):
    g = np.linspace(-1.2, 1.2, 601)
    u, v = np.meshgrid(g, g)
    measured = syn._inside(kind, u, v, extra).mean() * 2.4 ** 2
    assert measured == pytest.approx(area, rel=0.01)


def test_rendered_circle_has_its_area():
    ds = SyntheticShapes(20, 64, num_classes=2, seed=0, shapes_per_image=1, size_range=(0.3, 0.5))
    for i in range(len(ds)):
        radius = ds._params(i).geometry[0, 2]
        assert (ds[i][1] == 1).sum().item() == pytest.approx(math.pi * radius ** 2, rel=0.06)


# ------------------------------------------------------------------ scene views (notebook 00)
def test_scene_views_agree(scenes4):
    for scene in scenes4:
        assert isinstance(scene, Scene)
        n = scene.num_instances
        assert scene.instance_mask.dtype == torch.int64 and scene.labels.dtype == torch.int64
        assert scene.boxes.shape == (n, 4) and scene.labels.shape == (n,)
        assert torch.equal(scene.instance_mask > 0, scene.mask > 0)
        assert sorted(torch.unique(scene.instance_mask).tolist()) == list(range(n + 1)) or \
            sorted(torch.unique(scene.instance_mask).tolist()) == list(range(1, n + 1))
        for k in range(1, n + 1):
            pixels = (scene.instance_mask == k).numpy()
            assert pixels.any()
            assert set(scene.mask.numpy()[pixels].tolist()) == {int(scene.labels[k - 1])}
            rows, cols = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
            assert scene.boxes[k - 1].tolist() == [cols[0], rows[0], cols[-1], rows[-1]]
        counts = np.bincount(scene.mask.numpy().ravel(), minlength=4)
        assert scene.present.tolist() == (counts > 0).tolist()
        assert scene.dominant == (int(np.argmax(counts[1:])) + 1 if counts[1:].sum() else 0)
        assert set(scene.labels.tolist()) == set(np.flatnonzero(counts[1:]) + 1)
        assert "Scene(" in repr(scene)
    assert any(s.num_instances >= 3 for s in scenes4)


def test_fully_hidden_shapes_are_dropped():
    ds = SyntheticShapes(60, 32, num_classes=4, seed=0, shapes_per_image=(4, 4), size_range=(0.5, 0.9))
    hidden = 0
    for i in range(len(ds)):
        scene = ds.scene(i)
        hidden += 4 - scene.num_instances
        assert scene.num_instances == len(torch.unique(scene.instance_mask)) - int((scene.instance_mask == 0).any())
    assert hidden > 0, "with crowded large shapes some must be hidden and dropped"


# ------------------------------------------------------------------ knobs: class frequencies and sizes
def test_class_probs_skew_pixel_frequency():
    def freq(ds):
        _, masks = ds.tensors()
        return torch.bincount(masks.flatten(), minlength=4).double() / masks.numel()

    balanced = freq(SyntheticShapes(80, 32, seed=0))
    skewed = freq(SyntheticShapes(80, 32, seed=0, class_probs=[1, 1, 0.05]))
    assert skewed[3] < balanced[3] / 5 and skewed[1] > balanced[1]
    only = freq(SyntheticShapes(20, 32, seed=0, class_probs=[0, 0, 1]))
    assert only[1] == 0 and only[2] == 0 and only[3] > 0


def test_imbalanced_has_a_rare_tiny_class():
    ds = SyntheticShapes.imbalanced(150, 64, seed=0)
    _, masks = ds.tensors()
    freq = torch.bincount(masks.flatten(), minlength=4).double() / masks.numel()
    assert 0 < freq[3] < 0.02 and freq[1] > 10 * freq[3] and freq[2] > 10 * freq[3]
    sizes = {c: [] for c in (1, 2, 3)}
    for i in range(40):
        scene = ds.scene(i)
        for k, label in enumerate(scene.labels.tolist(), start=1):
            sizes[label].append((scene.instance_mask == k).sum().item())
    assert np.median(sizes[3]) < np.median(sizes[2]) / 3


def test_per_type_size_ranges():
    ds = SyntheticShapes(60, 48, num_classes=3, seed=0, size_range=[(0.1, 0.15), (0.5, 0.6)])
    _, masks = ds.tensors()
    counts = torch.bincount(masks.flatten(), minlength=3)
    assert counts[2] > 5 * counts[1] > 0


# ------------------------------------------------------------------ argument checks
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_samples=0), ValueError, "num_samples"),
    (dict(num_samples=2.5), ValueError, "num_samples"),
    (dict(num_classes=1), ValueError, r"num_classes must be an int in 2..8"),
    (dict(num_classes=9), ValueError, r"num_classes must be an int in 2..8"),
    (dict(image_size=8), ValueError, "at least 16"),
    (dict(image_size=(64, 12)), ValueError, "at least 16"),
    (dict(image_size="64"), TypeError, "image_size"),
    (dict(image_size=(64,)), TypeError, "image_size"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(class_probs=[1, 1]), ValueError, "3 numbers"),
    (dict(class_probs=[1, -1, 1]), ValueError, "non-negative"),
    (dict(class_probs=[0, 0, 0]), ValueError, "not all zero"),
    (dict(class_probs=[1, float("nan"), 1]), ValueError, "finite"),
    (dict(size_range=(0, 0.5)), ValueError, "0 < lo <= hi <= 1"),
    (dict(size_range=(0.5, 0.2)), ValueError, "0 < lo <= hi <= 1"),
    (dict(size_range=(0.1, 1.5)), ValueError, "0 < lo <= hi <= 1"),
    (dict(size_range=[(0.1, 0.2)] * 2), ValueError, "3 pairs"),
    (dict(size_range=0.3), TypeError, "pair"),
    (dict(shapes_per_image=(3, 1)), ValueError, "lo <= hi"),
    (dict(shapes_per_image=(-1, 2)), ValueError, "lo <= hi"),
    (dict(noise=-0.1), ValueError, "noise"),
    (dict(noise=float("nan")), ValueError, "noise"),
    (dict(cache=1), TypeError, "cache"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    args = dict(num_samples=4, image_size=32)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        SyntheticShapes(**args)


def test_bad_index_and_factory_arguments():
    ds = SyntheticShapes(3, 32, cache=False)
    with pytest.raises(IndexError, match="out of range"):
        ds[3]
    with pytest.raises(IndexError, match="out of range"):
        ds.scene(-4)
    with pytest.raises(ValueError, match="rare_class"):
        SyntheticShapes.imbalanced(4, 32, rare_class=4)
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticShapes.imbalanced(4, 32, num_classes=2)
    with pytest.raises(TypeError, match="class_probs"):
        SyntheticShapes.imbalanced(4, 32, class_probs=[1, 1, 1])


# ------------------------------------------------------------------ the package's lazy names
def test_lazy_names_of_the_data_package():
    assert segtutor.data.transforms is importlib.import_module("segtutor.data.transforms")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        segtutor.data.nope  # noqa: B018
    here = os.path.dirname(segtutor.data.__file__)
    for name, module in segtutor.data._LAZY.items():
        if not os.path.exists(os.path.join(here, module + ".py")):
            continue   # written by another part of the project
        value = getattr(segtutor.data, name)
        assert value is getattr(importlib.import_module(f"segtutor.data.{module}"), name)
    importlib.import_module("segtutor.data.fetch")  # importing the module must not hide the function
    assert callable(segtutor.data.download) and not isinstance(segtutor.data.download, type(os))
