"""segtutor.viz: what each figure draws, checked on the Agg backend (axes, titles, image data, legend)."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from segtutor import viz  # noqa: E402
from segtutor.data import SyntheticShapes  # noqa: E402
from segtutor.data import palette as palette_module  # noqa: E402
from segtutor.train import History  # noqa: E402

K = 4


@pytest.fixture(scope="module")
def batch():
    data = SyntheticShapes(5, 32, K, seed=0)
    images, masks = data.tensors()
    return images, masks, data.class_names


def test_colorize_is_the_palette_function():
    assert viz.colorize is palette_module.colorize


def test_overlay_blends_only_foreground(batch):
    images, masks, _ = batch
    image, mask = images[0], masks[0]
    out = viz.overlay(image, mask, alpha=0.3)
    rgb = image.permute(1, 2, 0).double().numpy()
    colors = palette_module.colorize(mask) / 255.0
    fg = (mask != 0).numpy()
    assert out.shape == (32, 32, 3) and fg.any() and (~fg).any()
    np.testing.assert_allclose(out[fg], (0.7 * rgb + 0.3 * colors)[fg], atol=1e-12)
    np.testing.assert_allclose(out[~fg], rgb[~fg], atol=1e-12)
    everywhere = viz.overlay(image, mask, alpha=1.0, background=None)
    np.testing.assert_allclose(everywhere, colors, atol=1e-12)
    with pytest.raises(ValueError, match="alpha must be a number in"):
        viz.overlay(image, mask, alpha=1.5)
    with pytest.raises(ValueError, match="does not match"):
        viz.overlay(image, mask[:16])


def test_show_batch_draws_images_truth_predictions_and_legend(batch):
    images, masks, names = batch
    preds = masks.clone()
    preds[1] = 0  # the second prediction misses every shape
    fig = viz.show_batch(images, masks, preds, class_names=names, n=3)
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 9
    assert [ax.get_title() for ax in axes[:2]] == ["image", "truth"]
    assert axes[2].get_title() == "prediction (mIoU 1.00)"
    assert axes[5].get_title().startswith("prediction (mIoU 0.") and axes[5].get_title() != "prediction (mIoU 1.00)"
    for row in range(3):
        truth_data = np.asarray(axes[3 * row + 1].images[0].get_array())
        pred_data = np.asarray(axes[3 * row + 2].images[0].get_array())
        np.testing.assert_array_equal(truth_data, palette_module.colorize(masks[row]))
        np.testing.assert_array_equal(pred_data, palette_module.colorize(preds[row]))
        shown = np.asarray(axes[3 * row].images[0].get_array())
        np.testing.assert_allclose(shown, images[row].permute(1, 2, 0).numpy(), atol=1e-6)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == list(names)
    colors = [tuple(np.round(np.array(h.get_facecolor()[:3]) * 255).astype(int)) for h in legend.legend_handles]
    assert colors == [tuple(c) for c in palette_module.shapes_palette(K)]


def test_show_batch_accepts_scores_and_no_predictions(batch):
    images, masks, _ = batch
    scores = torch.nn.functional.one_hot(masks, K).permute(0, 3, 1, 2).float()
    fig = viz.show_batch(images, masks, scores, n=2)
    assert len(fig.axes) == 6
    np.testing.assert_array_equal(np.asarray(fig.axes[2].images[0].get_array()), palette_module.colorize(masks[0]))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [f"class {k}" for k in range(int(masks.max()) + 1)]
    assert len(viz.show_batch(images, masks, n=10).axes) == 2 * len(images)
    with pytest.raises(ValueError, match=r"masks .* do not match images"):
        viz.show_batch(images, masks[:, :16])


def test_plot_history_draws_each_column():
    history = History.from_dict({"epoch": [1, 2, 3], "train_loss": [1.2, 0.7, 0.4], "val_loss": [1.3, 0.8, 0.6],
                                 "val_miou": [0.3, 0.5, 0.6], "val_pixel_accuracy": [0.7, 0.85, 0.9],
                                 "lr": [1e-3, 5e-3, 1e-6], "seconds": [1.0, 1.0, 1.0]})
    fig = history.plot()
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "validation", "learning rate"]
    loss_ax, val_ax, lr_ax = fig.axes
    lines = {line.get_label(): line.get_ydata() for line in loss_ax.get_lines()}
    np.testing.assert_allclose(lines["train"], history.train_loss)
    np.testing.assert_allclose(lines["validation"], history.val_loss)
    lines = {line.get_label(): line.get_ydata() for line in val_ax.get_lines()}
    np.testing.assert_allclose(lines["mIoU"], history.val_miou)
    np.testing.assert_allclose(lines["pixel accuracy"], history.val_pixel_accuracy)
    np.testing.assert_allclose(lr_ax.get_lines()[0].get_ydata(), history.lr)
    np.testing.assert_allclose(lr_ax.get_lines()[0].get_xdata(), [1, 2, 3])


def test_plot_history_without_validation():
    fig = viz.plot_history({"train_loss": [1.0, 0.5], "lr": [1e-3, 1e-4]})
    loss_ax, val_ax, _ = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["train"]
    assert not val_ax.get_lines() and val_ax.texts[0].get_text() == "no validation data"
    with pytest.raises(ValueError, match="no 'train_loss' column"):
        viz.plot_history({"loss": [1.0]})


def test_plot_confusion_matrix_row_normalised_values():
    matrix = torch.tensor([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    fig = viz.plot_confusion_matrix(matrix, ["bg", "a", "b"])
    ax = fig.axes[0]
    shown = ax.images[0].get_array()
    expected = np.array([[0.8, 0.2, 0.0], [0.25, 0.75, 0.0]])
    np.testing.assert_allclose(np.ma.getdata(shown)[:2], expected)
    assert np.ma.getmaskarray(shown)[2].all()  # a class with no true pixels: a blank row, not zeros
    assert [t.get_text() for t in ax.get_xticklabels()] == ["bg", "a", "b"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells[(0, 0)] == "0.80" and cells[(1, 0)] == "0.25" and (2, 2) not in cells
    column = np.ma.getdata(viz.plot_confusion_matrix(matrix, normalize="column").axes[0].images[0].get_array())
    np.testing.assert_allclose(column[:, 0], [8 / 9, 1 / 9, 0])
    counts = viz.plot_confusion_matrix(matrix.numpy(), normalize=None).axes[0]
    np.testing.assert_array_equal(np.ma.getdata(counts.images[0].get_array()), matrix.numpy())
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="normalize must be"):
        viz.plot_confusion_matrix(matrix, normalize="rows")


def test_plot_confusion_matrix_takes_metrics_objects(batch):
    from segtutor.metrics import ConfusionMatrix

    _, masks, names = batch
    cm = ConfusionMatrix(K)
    cm.update(masks, masks)
    shown = np.ma.getdata(viz.plot_confusion_matrix(cm, names).axes[0].images[0].get_array())
    np.testing.assert_allclose(shown, np.eye(K))
    np.testing.assert_allclose(np.ma.getdata(viz.plot_confusion_matrix(cm.compute()).axes[0].images[0].get_array()),
                               np.eye(K))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.mid = nn.Conv2d(6, 3, 3, padding=1)
        self.head = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(3, K, 1))

    def forward(self, x):
        return self.head(self.mid(self.pool(self.enc(x))))


def _panels(fig):
    """The figure's image panels, without its colour bar."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_show_feature_maps_hooks_the_layers(batch):
    images = batch[0]
    model = Tiny()
    model.train()
    fig = viz.show_feature_maps(model, images[0], ["enc", "mid"], n=4)
    assert model.training and not model.enc._forward_hooks  # mode restored, hooks removed
    assert len(fig.axes) == 9  # 8 panels and one colour bar
    axes = _panels(fig)
    assert len(axes) == 8 and not axes[7].get_visible()  # "mid" has only 3 channels
    with torch.no_grad():
        enc = model.enc(images[:1])[0]
        mid = model.mid(model.pool(model.enc(images[:1])))[0]
    order = torch.argsort(enc.abs().mean(dim=(1, 2)), descending=True)[:4]
    assert [ax.get_title() for ax in axes[:4]] == [f"ch {int(c)}" for c in order]
    for ax, channel in zip(axes[:4], order):
        np.testing.assert_allclose(ax.images[0].get_array(), enc[channel].numpy(), atol=1e-6)
    channel = int(axes[4].get_title().split()[-1])
    np.testing.assert_allclose(axes[4].images[0].get_array(), mid[channel].numpy(), atol=1e-6)
    assert axes[0].get_ylabel() == "enc\n(6, 32, 32)" and axes[4].get_ylabel() == "mid\n(3, 16, 16)"


def test_show_feature_maps_defaults_and_errors(batch):
    model = Tiny()
    fig = viz.show_feature_maps(model, batch[0][:1], n=2)  # children with weights: enc, mid, head
    assert [ax.get_ylabel().split("\n")[0] for ax in _panels(fig)[::2]] == ["enc", "mid", "head"]
    assert len(_panels(viz.show_feature_maps(model, batch[0][0], model.mid, n=2))) == 2
    with pytest.raises(ValueError, match="no layer named 'decoder'.*enc, pool, mid, head"):
        viz.show_feature_maps(model, batch[0][0], "decoder")
    with pytest.raises(ValueError, match=r"image must be a tensor \(C, H, W\)"):
        viz.show_feature_maps(model, batch[0])


def test_show_feature_maps_names_the_logit_channels_by_class(batch):
    images, _, names = batch
    model = Tiny()
    fig = viz.show_feature_maps(model, images[0], ["enc", "mid"], n=2, class_names=names)
    panels = _panels(fig)
    cols = max(2, K)                                   # the logits row needs K columns
    assert len(panels) == 3 * cols
    logits_row = panels[2 * cols:]
    assert [ax.get_title() for ax in logits_row] == [f"{k}: {name}" for k, name in enumerate(names)]
    assert logits_row[0].get_ylabel() == f"output (logits)\n({K}, 32, 32)"
    with torch.no_grad():
        logits = model.eval()(images[:1])[0]
    for k, ax in enumerate(logits_row):
        np.testing.assert_allclose(ax.images[0].get_array(), logits[k].numpy(), atol=1e-6)
    assert all(ax.get_title().startswith("ch ") for ax in panels[:2 * cols] if ax.get_visible())
    with pytest.raises(ValueError, match="class_names has 2 names.*one channel per class"):
        viz.show_feature_maps(model, images[0], "enc", class_names=names[:2])


def test_figures_save_as_png_and_show_in_notebooks(batch, tmp_path):
    images, masks, names = batch
    fig = viz.show_batch(images, masks, masks, class_names=names, n=2)
    path = tmp_path / "batch.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    assert mpimg.imread(path).shape[:2] == (int(fig.get_figheight() * fig.dpi), int(fig.get_figwidth() * fig.dpi))
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"  # what Jupyter displays for a cell's last expression
    import matplotlib.pyplot as plt

    assert not plt.get_fignums()  # nothing registered with pyplot: no double display, no leaked figures


def test_class_legend_uses_the_palette_colours_in_class_order():
    import matplotlib.colors as mcolors
    from segtutor.data import shapes_palette

    fig = viz.figure()
    ax = fig.subplots()
    legend = viz.class_legend(ax, ["background", "circle", "rectangle"])
    assert [t.get_text() for t in legend.get_texts()] == ["background", "circle", "rectangle"]
    got = np.array([mcolors.to_rgb(h.get_facecolor()) for h in legend.legend_handles])
    np.testing.assert_allclose(got, shapes_palette(3) / 255.0, atol=1e-6)
    with pytest.raises(ValueError, match="at least one class"):
        viz.class_legend(ax, [])
    with pytest.raises(TypeError, match="Figure or Axes"):
        viz.class_legend("not a figure", ["a"])
