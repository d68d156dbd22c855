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
5. **Safe members only** (tar in any compression, or zip). Before anything is written, every member is
   checked, by name and type, not by trusting the standard library's extraction filters (absent on Python
   3.10.0-3.10.11, bypassed before 3.11.13 by CVE-2025-4517): a dataset needs only regular files and folders,
   so symbolic and hard links, devices, FIFOs, absolute paths, ``..`` components, backslashes and drive letters
   are refused with :class:`UnsafeArchiveError`, and nothing is written. While writing, each member's resolved
   destination is checked against the real extraction folder.

Cityscapes needs a login and cannot be fetched this way; asking for it explains where to get it.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

__all__ = ["ACCEPTED_MEMBERS", "DATASETS", "DatasetSource", "DownloadError", "ChecksumError", "UnsafeArchiveError", "download",
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
    """An archive member is not a plain file or folder with a safe relative name (a link, a device, an absolute
    path, a ``..`` component, ...); the message names the member, the reason and what is accepted."""


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
ACCEPTED_MEMBERS = ("regular files and directories, with relative '/'-separated names (no leading '/', no '..' "
                    "component, no '\\' or ':'); no symbolic or hard links, devices, FIFOs or other special files")


@dataclass(frozen=True)
class _Member:
    """One archive member that passed the checks: where it goes and what it is."""

    name: str  # as stored in the archive
    parts: tuple[str, ...]  # path components below the target (empty: the target itself)
    is_dir: bool
    mode: int | None  # permission bits recorded in the archive, if any
    mtime: float | None
    entry: Any  # the tarfile.TarInfo or zipfile.ZipInfo


def _refuse(name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"archive member {name!r} {why}; nothing was extracted. Accepted: {ACCEPTED_MEMBERS}")


def _safe_parts(name: str) -> tuple[str, ...]:
    """The components of a member name, or an error saying why the name could lead outside the target."""
    if not name:
        raise _refuse(name, "has an empty name")
    if "\x00" in name:
        raise _refuse(name, "contains a NUL character")
    if ":" in name:
        raise _refuse(name, "contains ':' (a drive letter or a stream name on Windows)")
    if "\\" in name:
        raise _refuse(name, "contains a backslash (a path separator on Windows)")
    if name.startswith("/"):
        raise _refuse(name, "has an absolute path")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise _refuse(name, "contains a '..' component")
    return parts


def _tar_members(tar: tarfile.TarFile) -> list[_Member]:
    members = []
    for info in tar.getmembers():  # reads every header before anything is written
        parts = _safe_parts(info.name)
        if info.issym():
            raise _refuse(info.name, f"is a symbolic link (to {info.linkname!r})")
        if info.islnk():
            raise _refuse(info.name, f"is a hard link (to {info.linkname!r})")
        if info.ischr() or info.isblk():
            raise _refuse(info.name, f"is a {'character' if info.ischr() else 'block'} device")
        if info.isfifo():
            raise _refuse(info.name, "is a FIFO (named pipe)")
        if not (info.isreg() or info.isdir()):
            raise _refuse(info.name, f"is a special file (tar type {info.type!r})")
        members.append(_Member(info.name, parts, info.isdir(), info.mode, info.mtime, info))
    return members


_ZIP_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
              stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket"}


def _zip_members(zf: zipfile.ZipFile) -> list[_Member]:
    members = []
    for info in zf.infolist():
        parts = _safe_parts(info.filename)
        unix_mode = info.external_attr >> 16  # where zip tools on Unix keep st_mode
        kind = stat.S_IFMT(unix_mode)
        if kind in _ZIP_KINDS:
            raise _refuse(info.filename, f"is {_ZIP_KINDS[kind]} (zip external attributes)")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _refuse(info.filename, f"is a special file (zip file type {oct(kind)})")
        is_dir = info.is_dir() or kind == stat.S_IFDIR
        mode = stat.S_IMODE(unix_mode) if kind == stat.S_IFREG else None
        members.append(_Member(info.filename, parts, is_dir, mode, None, info))
    return members


def _file_mode(mode: int) -> int:
    """The permissions of an extracted file, as ``tarfile``'s ``"data"`` filter sets them: no setuid/setgid/sticky
    bit, no group/other write, owner read+write, executable only where the owner may execute."""
    mode &= 0o755
    if not mode & 0o100:
        mode &= ~0o111
    return mode | 0o600


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


def _make_folders(root: str, parts: Sequence[str], name: str) -> None:
    """Create ``root/parts...`` one level at a time, never descending through anything but a real folder."""
    path = root
    for part in parts:
        path = os.path.join(path, part)
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise _refuse(name, f"would be written through {path}, which is not a real folder (a link or a file)")


def _write_members(members: Sequence[_Member], open_member: Any, into: Path) -> None:
    """Write checked ``members`` into the empty folder ``into``, verifying each resolved destination."""
    root = os.path.realpath(into, strict=True)
    dirs: list[tuple[str, _Member]] = []
    for member in members:
        if not member.parts:  # the archive's own root ('.' or './')
            continue
        dest = os.path.join(root, *member.parts)
        folder = dest if member.is_dir else os.path.dirname(dest)
        try:
            _make_folders(root, member.parts if member.is_dir else member.parts[:-1], member.name)
            real = os.path.realpath(folder, strict=True)  # strict: an overlong path raises, never half-resolves
            if not member.is_dir:
                real = os.path.join(real, member.parts[-1])
            if not _inside(root, real):
                raise _refuse(member.name, f"would be written to {real}, outside {root}")
            if member.is_dir:
                dirs.append((real, member))
                continue
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
            with os.fdopen(os.open(real, flags, 0o666), "wb") as out, open_member(member) as source:
                shutil.copyfileobj(source, out, _CHUNK)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise _refuse(member.name, f"has a path too long for this file system ({len(dest)} characters "
                                           "with the target folder)") from None
            raise
        if member.mode is not None:
            os.chmod(real, _file_mode(member.mode))
        if member.mtime is not None:
            os.utime(real, (member.mtime, member.mtime))
    for real, member in sorted(dirs, reverse=True):  # deepest first: writing into a folder changes its mtime
        if member.mtime is not None:
            os.utime(real, (member.mtime, member.mtime))


def _read_members(archive: Path, stack: Any) -> tuple[list[_Member], Any]:
    """Open ``archive`` (tar in any compression this Python reads, or zip) in ``stack``; return its checked
    members and a function opening a member's bytes."""
    try:
        tar = stack.enter_context(tarfile.open(archive))
    except tarfile.ReadError:
        tar = None
    if tar is not None:
        members = _tar_members(tar)

        def open_tar(member: _Member) -> Any:
            source = tar.extractfile(member.entry)
            assert source is not None, member.name  # a regular file always has a file object
            return source

        return members, open_tar
    if zipfile.is_zipfile(archive):
        zf = stack.enter_context(zipfile.ZipFile(archive))
        return _zip_members(zf), lambda member: zf.open(member.entry)
    raise ValueError(f"{archive} is neither a tar archive (plain, gzip, bzip2 or xz) nor a zip archive")


def safe_extract(archive: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Extract a tar (any compression) or zip ``archive`` into ``destination``; return the destination folder.

    Every member is checked before anything is written: only regular files and directories with relative names
    are accepted (see :data:`ACCEPTED_MEMBERS`); links, devices, FIFOs, absolute paths, ``..`` components,
    backslashes and drive letters are refused. The standard library's extraction filters are not relied on.
    The tree is written into a temporary folder (``.segtutor-extract-*``) next to ``destination``, each file's
    resolved path checked against it, and then moved into place: with one ``rename`` when ``destination`` does
    not exist, else one ``rename`` per top-level entry, none of which may exist yet in ``destination``.

    Raises:
        UnsafeArchiveError: a member is refused (the message names it, says why and what is accepted);
            nothing was written anywhere and ``destination`` is unchanged.
        FileExistsError: a top-level entry of the archive already exists in ``destination`` (nothing changed).
        ValueError: ``archive`` is neither a tar nor a zip archive.
    """
    archive = Path(archive)
    final = Path(os.path.realpath(Path(destination).expanduser()))
    with contextlib.ExitStack() as stack:
        members, open_member = _read_members(archive, stack)
        merge = final.exists()
        if merge and not final.is_dir():
            raise NotADirectoryError(f"cannot extract into {final}: it exists and is not a folder")
        if merge:
            _refuse_clashes(archive, final, {member.parts[0] for member in members if member.parts})
        staging_parent = final if merge else final.parent
        created = [folder for folder in (staging_parent, *staging_parent.parents) if not folder.exists()]
        staging_parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=".segtutor-extract-", dir=staging_parent))
            try:
                tree = tmp / "tree"
                tree.mkdir()  # the system's default mode (mkdtemp's folder is private)
                _write_members(members, open_member, tree)
                if not merge:
                    os.rename(tree, final)
                    return final
                entries = sorted(tree.iterdir())
                _refuse_clashes(archive, final, {entry.name for entry in entries})  # again: none appeared since
                for entry in entries:
                    os.rename(entry, final / entry.name)
                return final
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            for folder in created:  # innermost first: the folders made above for the staging area
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise


def _refuse_clashes(archive: Path, final: Path, names: set[str]) -> None:
    clashes = sorted(name for name in names if os.path.lexists(final / name))
    if clashes:
        raise FileExistsError(f"cannot extract {archive.name} into {final}: it already has {', '.join(clashes)} "
                              "(move it away or extract elsewhere); nothing was changed")


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
        UnsafeArchiveError: the archive (tar or zip) holds a member other than a plain file or folder with a safe
            relative name (a link, a device, an absolute path, ``..``; see :func:`safe_extract`), nothing extracted;
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
