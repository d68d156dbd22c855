"""Fetch and unpack a public dataset safely: resumable, checksummed, atomic, with nothing but ``urllib``.

Used by ``notebooks/07_real_data.ipynb`` (never at notebook run time: the notebook trains on a local copy
when one is present and on a generated look-alike otherwise). What each step guards against:

1. **Already there?** If the dataset folder exists, nothing happens (no network at all).
2. **Resumable download** into ``<archive>.part``: a broken connection keeps what arrived, and the next
   attempt (the next mirror, or the next call) asks for the rest with an HTTP ``Range: bytes=<size>-``
   request. A server that ignores ``Range`` (answers 200, not 206) sends the whole file again, which
   replaces the partial one.
3. **Checksum.** The finished ``.part`` is hashed (MD5) before it is renamed to the archive. On a
   mismatch the bad file is **deleted** (a resume on top of it could never repair it) and the error names
   the URL, the expected and the actual digest; the next mirror is tried.
4. **Atomic extraction.** The archive is unpacked into a temporary folder next to the target
   (``<root>/.segtutor-extract-*``) and the dataset folder is moved into place with one ``rename``. An
   error or interruption while unpacking removes the temporary folder: a half-extracted tree never sits
   where the dataset belongs. (Only a killed process can leave a ``.segtutor-extract-*`` folder behind;
   it is safe to delete.)
5. **Safe tar members.** Before anything is written, every member is checked: absolute paths, ``..``
   components, links pointing outside the archive and device files are rejected; extraction then uses
   ``tarfile``'s ``filter="data"`` where Python provides it.

Cityscapes needs a login and cannot be fetched this way; asking for it explains where to get it.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

__all__ = ["DATASETS", "DatasetSource", "DownloadError", "ChecksumError", "UnsafeArchiveError", "download",
           "md5sum", "safe_extract"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from: ``urls`` (official first, then mirrors), the archive's ``filename`` and
    ``md5``, and ``folder``: the dataset's path inside the archive, which is also where it lands under ``root``."""

    name: str
    urls: tuple[str, ...]
    filename: str
    md5: str
    folder: str
    expected: tuple[str, ...]  # sub-paths of ``folder`` that a complete copy has


DATASETS: dict[str, DatasetSource] = {
    "voc2012": DatasetSource(
        name="voc2012",
        urls=(
            "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
            "https://pjreddie.com/media/files/VOCtrainval_11-May-2012.tar",
            "http://pjreddie.com/media/files/VOCtrainval_11-May-2012.tar",
        ),
        filename="VOCtrainval_11-May-2012.tar",  # 1,999,639,040 bytes
        md5="6cd6e144f989b92b3379bac3b3de84fd",
        folder="VOCdevkit/VOC2012",
        expected=("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"),
    ),
}

_NOT_DOWNLOADABLE = {
    "cityscapes": "Cityscapes needs a free account: log in at https://www.cityscapes-dataset.com, download "
                  "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip, and unpack both into one folder "
                  "(then use segtutor.data.CityscapesSegmentation(that_folder)).",
}


class DownloadError(RuntimeError):
    """No URL delivered a verified archive; the message lists what each one did."""


class ChecksumError(DownloadError):
    """A downloaded (or existing) archive does not have the expected MD5 digest."""


class UnsafeArchiveError(ValueError):
    """A tar member would be written outside the extraction folder, or is a device/special file."""


def md5sum(path: str | os.PathLike, chunk_size: int = _CHUNK) -> str:
    """Hex MD5 digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _check_md5(checksum: str) -> str:
    value = checksum.strip().lower()
    if value.startswith("md5:"):
        value = value[4:]
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"checksum must be an MD5 hex digest (32 hex digits, optionally prefixed 'md5:'), got {checksum!r}")
    return value


def _is_complete(folder: Path, expected: Sequence[str]) -> bool:
    return folder.is_dir() and all((folder / sub).exists() for sub in expected)


# --------------------------------------------------------------------------------------------- fetching
def _fetch(url: str, part: Path, *, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its size). Raises on any failure, keeping ``part``."""
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "segtutor-download/1.0"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the range starts at the end: the part file is already complete
            return
        raise
    with response:
        status = getattr(response, "status", None)
        if start and status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-"):
                raise DownloadError(f"{url}: asked for bytes {start}- but the server sent {content_range!r}")
            mode, received = "ab", start
            total = _total_from_range(content_range)
        else:  # a full response: 200 from HTTP, or a file:// / server that ignores Range
            mode, received = "wb", 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        bar = _progress_bar(total, received, url) if progress else None
        try:
            with open(part, mode) as f:
                while block := response.read(_CHUNK):
                    f.write(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and received != total:
        raise DownloadError(f"{url}: the transfer stopped after {received} of {total} bytes "
                            f"(kept in {part.name}; the next attempt resumes from there)")


def _total_from_range(content_range: str) -> int | None:
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _progress_bar(total: int | None, initial: int, url: str) -> Any:  # pragma: no cover - cosmetic
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=url.rsplit("/", 1)[-1], leave=False)


def _download_verified(urls: Sequence[str], archive: Path, md5: str, *, timeout: float, progress: bool) -> None:
    """Try each URL in turn until ``archive`` exists with digest ``md5``."""
    part = archive.with_name(archive.name + ".part")
    failures: list[str] = []
    checksum_only = True
    for url in urls:
        try:
            _fetch(url, part, timeout=timeout, progress=progress)
        except (OSError, http.client.HTTPException, DownloadError, ValueError) as exc:  # URLError, timeouts: OSError
            failures.append(f"{url}: {exc}")
            checksum_only = False
            continue
        actual = md5sum(part)
        if actual != md5:
            size = part.stat().st_size
            part.unlink()
            failures.append(f"{url}: checksum mismatch, expected MD5 {md5}, got {actual} ({size} bytes; "
                            "the file was deleted)")
            continue
        os.replace(part, archive)
        return
    kind = ChecksumError if checksum_only else DownloadError
    raise kind(f"could not download {archive.name}:\n  " + "\n  ".join(failures))


# -------------------------------------------------------------------------------------------- extraction
def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path; refusing to extract")
    if ".." in path.parts or ".." in Path(name).parts:
        raise UnsafeArchiveError(f"archive member {name!r} contains '..'; refusing to extract outside the target")
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        # a symlink resolves next to itself; a hard link names another member from the archive root
        joined = (path.parent / target) if member.issym() else target
        depth = 0
        for part in joined.parts:
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                break
        if target.is_absolute() or depth < 0:
            raise UnsafeArchiveError(f"archive member {name!r} links to {member.linkname!r}, outside the archive")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeArchiveError(f"archive member {name!r} is a device or special file; refusing to extract")


def safe_extract(archive: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Extract a tar archive into ``destination`` after checking every member (see the module docstring)."""
    destination = Path(destination)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(member)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, members=members, filter="data")
        else:  # pragma: no cover - Python without extraction filters; members were checked above
            tar.extractall(destination, members=members)


def _extract_atomically(archive: Path, root: Path, folder: str, target: Path, expected: Sequence[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".segtutor-extract-", dir=root))
    try:
        safe_extract(archive, tmp)
        extracted = tmp / folder
        if not _is_complete(extracted, expected):
            raise DownloadError(f"{archive.name} does not contain {folder}/ with {', '.join(expected)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(extracted, target)  # one step: the dataset is either absent or complete
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- API
def download(name: str, root: str | os.PathLike, *, urls: Sequence[str] | None = None, checksum: str | None = None,
             keep_archive: bool = False, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download and unpack dataset ``name`` (``"voc2012"``) under ``root``; return the dataset folder.

    Args:
        name: a key of :data:`DATASETS`.
        root: where the archive is fetched and the dataset lands (``root/VOCdevkit/VOC2012`` for VOC).
        urls: URLs to try in order (``http(s)://`` or ``file://``); default: the official one, then mirrors.
        checksum: the archive's MD5 hex digest; default: the known one for ``name``.
        keep_archive: keep the verified archive after unpacking (default: delete it, it is 2 GB for VOC).
        timeout: seconds a connection may stall before the next URL is tried.
        progress: show a progress bar (``tqdm``).

    Returns:
        the dataset folder, ready for :class:`segtutor.data.VOCSegmentation`.

    Raises:
        DownloadError: no URL delivered the archive (the message lists each URL's failure);
        ChecksumError: every URL delivered a file with the wrong digest;
        UnsafeArchiveError: the archive holds a member that would escape the target folder;
        FileExistsError: the target folder exists but is incomplete (not made by this function).
    """
    key = name.strip().lower()
    if key in _NOT_DOWNLOADABLE:
        raise ValueError(f"{name!r} cannot be downloaded automatically. {_NOT_DOWNLOADABLE[key]}")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; downloadable: {', '.join(DATASETS)}")
    source = DATASETS[key]
    root = Path(root).expanduser()
    target = root / source.folder
    if _is_complete(target, source.expected):
        return target
    if target.exists():
        raise FileExistsError(f"{target} exists but is incomplete (missing one of {', '.join(source.expected)}); "
                              "move it away and call download() again")
    md5 = _check_md5(checksum if checksum is not None else source.md5)
    url_list = tuple(urls) if urls is not None else source.urls
    if isinstance(urls, str) or not url_list:
        raise ValueError(f"urls must be a non-empty sequence of URLs, got {urls!r}")
    root.mkdir(parents=True, exist_ok=True)
    archive = root / source.filename
    if archive.exists():
        actual = md5sum(archive)
        if actual != md5:
            raise ChecksumError(f"existing archive {archive} has MD5 {actual}, expected {md5}; "
                                "delete it (or pass the right checksum) and call download() again")
    else:
        _download_verified(url_list, archive, md5, timeout=timeout, progress=progress)
    _extract_atomically(archive, root, source.folder, target, source.expected)
    if not keep_archive:
        archive.unlink()
    return target
