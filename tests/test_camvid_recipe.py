"""The CamVid training recipe (segtutor/data/camvid.py, end): RECIPES, training_data, class counts and weights, and
``python -m segtutor.train --data camvid`` using the recipe (notebooks/08_real_photos.ipynb)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Subset

from segtutor import cli
from segtutor.data import camvid as cv
from segtutor.data import transforms as T


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return cv.make_fake_camvid(tmp_path_factory.mktemp("camvid"), n=18, image_size=(48, 64), seed=5)


@pytest.fixture
def no_copies(monkeypatch, tmp_path):
    """No SEGTUTOR_DATA, no repository copy, an empty user data folder, no SEGTUTOR_CAMVID."""
    monkeypatch.delenv("SEGTUTOR_DATA", raising=False)
    monkeypatch.delenv(cv.CAMVID_MODE_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cv, "_repository_shared", lambda: tmp_path / "repo-shared" / "camvid")
    monkeypatch.setattr(cv.sys, "platform", "linux")
    return tmp_path


def _file_counts(root: Path, split: str) -> np.ndarray:
    """Labelled pixels per class read straight from the label PNGs with PIL (id 11 = void left out)."""
    total = np.zeros(12, dtype=np.int64)
    for path in sorted((root / f"{split}annot").glob("*.png")):
        total += np.bincount(np.array(Image.open(path)).ravel(), minlength=12)[:12]
    return total[:11]


# ------------------------------------------------------------------------------------------------ weights
def test_class_weights_by_hand() -> None:
    counts = torch.tensor([100, 400, 50, 10, 40])          # f = counts / 600; median f = 50 / 600
    torch.testing.assert_close(cv.class_weights(counts, "median"), torch.tensor([0.5, 0.125, 1.0, 5.0, 1.25]))
    torch.testing.assert_close(cv.class_weights(counts, "sqrt"),
                               torch.tensor([0.5, 0.125, 1.0, 5.0, 1.25]).sqrt())
    enet = torch.tensor([1 / math.log(1.02 + c / 600) for c in (100, 400, 50, 10, 40)])
    torch.testing.assert_close(cv.class_weights(counts, "enet"), enet)
    assert cv.class_weights(counts, "none") is None
    # a class with no pixel: weight 0, and the median is over the classes present
    torch.testing.assert_close(cv.class_weights(torch.tensor([100, 400, 50, 0]), "median"),
                               torch.tensor([1.0, 0.25, 2.0, 0.0]))
    # frequencies or counts: the same weights (the ratio does not depend on the total)
    torch.testing.assert_close(cv.class_weights(counts / 600.0, "median"), cv.class_weights(counts, "median"))


@pytest.mark.parametrize("bad, match", [(torch.zeros(3), "all zero"), (torch.tensor([1.0, -1.0]), "non-negative"),
                                        (torch.ones(2, 2), "1-D")])
def test_bad_counts(bad, match) -> None:
    with pytest.raises(ValueError, match=match):
        cv.class_weights(bad, "median")


def test_unknown_weighting() -> None:
    with pytest.raises(ValueError, match="unknown class weighting 'mean'.*median, sqrt"):
        cv.class_weights(torch.ones(3), "mean")


def test_class_counts_match_the_files_and_ignore_augmentation(tree) -> None:
    expected = torch.from_numpy(_file_counts(tree, "train"))
    plain = cv.CamVid(tree, "train")
    flipped = cv.CamVid(tree, "train", transforms=T.RandomHorizontalFlip(p=1.0), cache=True)
    assert torch.equal(cv.class_counts(plain), expected)
    assert torch.equal(cv.class_counts(flipped), expected)
    assert flipped.transforms is not None  # counting did not strip the dataset's own transforms
    sub = Subset(flipped, [0, 2])
    first_two = sum(torch.bincount(plain[i][1][plain[i][1] != 255], minlength=11) for i in (0, 2))
    assert torch.equal(cv.class_counts(sub), first_two)
    torch.testing.assert_close(cv.class_frequencies(plain), expected.double() / expected.sum())


# ------------------------------------------------------------------------------------------------ recipes
def test_recipes_cover_every_budget_and_validate() -> None:
    from segtutor.runtime import BUDGETS

    assert set(cv.RECIPES) == set(BUDGETS)
    for name, r in cv.RECIPES.items():
        assert r.budget == name and len(r.size) == 2 and r.size[1] * 3 == r.size[0] * 4  # 4:3 like 360 x 480
    assert cv.recipe("ci") is cv.RECIPES["ci"]
    with pytest.raises(ValueError, match="augment must be one of none, flip"):
        cv.CamVidRecipe("x", "unet", 8, (48, 64), 1, 2, 0.01, augment="rotate")
    with pytest.raises(ValueError, match="class_weighting must be one of"):
        cv.CamVidRecipe("x", "unet", 8, (48, 64), 1, 2, 0.01, class_weighting="inverse")


def test_training_data_on_a_found_copy(no_copies, tree, monkeypatch) -> None:
    monkeypatch.setitem(cv.RECIPES, "ci", cv.CamVidRecipe("ci", "unet", 8, (24, 32), 1, 4, 0.01, train_images=5,
                                                          val_images=None, test_images=2))
    setup = cv.training_data(tree, budget="ci")
    assert setup.is_real and setup.root == tree and "\n" not in setup.description
    assert "5 train / 3 val / 2 test" in setup.description and "24x32" in setup.description
    n_train = len(cv.CamVid(tree, "train"))
    assert isinstance(setup.train, Subset) and setup.train.indices == [round(i * (n_train - 1) / 4) for i in range(5)]
    assert len(setup.val) == 3 and setup.train[0][0].shape == (3, 24, 32)
    assert isinstance(setup.train.dataset.transforms, T.RandomHorizontalFlip) and setup.train.dataset.cache
    plain = setup.train_plain
    assert plain.dataset.transforms is None and plain.dataset._cache is setup.train.dataset._cache
    torch.manual_seed(0)
    images = {tuple(setup.train[0][0].flatten()[:5].tolist()) for _ in range(12)}
    assert len(images) == 2  # flipped or not
    assert torch.equal(plain[0][0], cv.CamVid(tree, "train", size=(24, 32))[setup.train.indices[0]][0])


def test_training_data_without_a_copy_says_stand_in(no_copies) -> None:
    setup = cv.training_data(budget="ci", standin_root=no_copies / "standin")
    assert not setup.is_real and "stand-in" in setup.description and "\n" not in setup.description
    r = cv.RECIPES["ci"]
    assert len(setup.train) + len(setup.val) + len(setup.test) == r.standin_images
    assert setup.test[0][0].shape == (3, *r.size)


def test_standin_can_be_forced_and_real_required(no_copies, tree, monkeypatch) -> None:
    (no_copies / "env").mkdir()
    os.symlink(tree, no_copies / "env" / "camvid")
    monkeypatch.setenv("SEGTUTOR_DATA", str(no_copies / "env"))
    assert cv.training_data(budget="ci").is_real
    monkeypatch.setenv(cv.CAMVID_MODE_ENV, "standin")
    forced = cv.training_data(budget="ci", standin_root=no_copies / "s")
    assert not forced.is_real and "SEGTUTOR_CAMVID=standin" in forced.description
    monkeypatch.setenv(cv.CAMVID_MODE_ENV, "real")
    assert cv.training_data(budget="ci").is_real
    monkeypatch.delenv("SEGTUTOR_DATA")
    with pytest.raises(FileNotFoundError, match="no local CamVid copy"):
        cv.training_data(budget="ci")
    monkeypatch.setenv(cv.CAMVID_MODE_ENV, "maybe")
    with pytest.raises(ValueError, match="SEGTUTOR_CAMVID='maybe'; expected auto, real or standin"):
        cv.training_data(budget="ci")


# ------------------------------------------------------------------------------------------------ the CLI
def test_cli_camvid_trains_with_the_recipe(no_copies, tree, monkeypatch, capsys) -> None:
    import segtutor.train as train_module

    seen = {}
    real_fit = train_module.fit

    def spy(model, train, val, **kwargs):
        seen.update(kwargs, model=type(model).__name__, width=model.config.get("width"), n_train=len(train))
        return real_fit(model, train, val, **kwargs)

    monkeypatch.setattr(train_module, "fit", spy)
    assert cli.main(["--data", "camvid", "--data-root", str(tree), "--budget", "ci", "--epochs", "1",
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    r = cv.RECIPES["ci"]
    assert f"{r.model} on CamVid" in out and "1 epochs" in out and f"global batch {r.batch_size}" in out
    assert "held-out mIoU" in out and f"({len(cv.CamVid(tree, 'test'))} images" in out
    assert seen["model"] == "DeepLabV3Plus" and seen["width"] == r.width
    assert seen["batch_size"] == r.batch_size and seen["lr"] == r.lr and seen["ignore_index"] == 255
    # the loss: cross-entropy with the recipe's class weights, computed here from the label files themselves
    f = _file_counts(tree, "train") / _file_counts(tree, "train").sum()
    expected = np.sqrt(np.median(f) / f) if r.class_weighting == "sqrt" else None
    assert isinstance(seen["loss"], torch.nn.CrossEntropyLoss) and seen["loss"].ignore_index == 255
    np.testing.assert_allclose(seen["loss"].weight.cpu().numpy(), expected, rtol=1e-5)


def test_cli_synthetic_still_needs_a_model() -> None:
    with pytest.raises(SystemExit, match="--model is required with --data synthetic"):
        cli.main(["--data", "synthetic", "--budget", "ci"])
