"""Archive extraction never writes outside its target (segtutor.data.fetch.safe_extract and segtutor.data.download).

Every hostile archive below is built here, in memory. Each is offered to both entry points, with and without the
standard library's ``filter="data"`` (absent on Python 3.10.0-3.10.11, and bypassed on 3.11.7 by the overlong
symlink path of CVE-2025-4517). After each refusal the whole test folder is compared with a snapshot taken before:
no file appears, changes or disappears anywhere (a sentinel ``secret.txt`` sits three levels above the extraction
folder, where the link chains point), and the target folder is as it was. Benign tar (every compression) and zip
archives must still extract to exactly what the standard library's own safe extraction produces.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Callable

import pytest

dl = importlib.import_module("segtutor.data.fetch")
ARCHIVE = dl.DATASETS["voc2012"].filename
OK = "VOCdevkit/VOC2012/ok.txt"  # a harmless member every hostile archive also carries


# ------------------------------------------------------------------------------------------- builders
def _file(name: str, data: bytes = b"pwned") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def _sym(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return _special(name, tarfile.SYMTYPE, target)


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    return _special(name, tarfile.DIRTYPE)


def _tar(*members: tuple[tarfile.TarInfo, bytes | None], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        ok, data = _file(OK, b"ok")
        tar.addfile(ok, io.BytesIO(data))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _zip(*entries: tuple[str, bytes, int | None]) -> bytes:
    """``entries``: (name, data, unix mode or None); the mode goes where zip keeps it (external_attr >> 16)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(OK, b"ok")
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.create_system, info.external_attr = 3, mode << 16
            zf.writestr(info, data)
    return buffer.getvalue()


# a -> ., a/b -> .., c -> a/b/.., d -> c/..: each link looks harmless as text, but d is three folders up.
CHAIN = (_sym("a", "."), _sym("a/b", ".."), _sym("c", "a/b/.."), _sym("d", "c/.."))


def _cve_2025_4517() -> bytes:
    """The shape of CVE-2025-4517: single-letter links to 247-character folders, 16 deep, so that the resolved
    path of a member exceeds PATH_MAX; ``os.path.realpath`` then stops resolving links (on Python < 3.11.13) and
    the data filter's check sees a path inside the target that the kernel resolves outside it."""
    comp, steps, members, short = "d" * 247, "abcdefghijklmnop", [], ""
    for letter in steps:
        members += [_dir(f"{short}{comp}"), _sym(f"{short}{letter}", comp)]
        short += f"{letter}/"
    long_link = f"{short}{'l' * 254}"
    members.append(_sym(long_link, "../" * len(steps)))  # really points back to the extraction folder
    members.append(_sym("escape", f"{long_link}/../../.."))  # the filter counts these '..' from the 'l' name
    members.append(_file("escape/outside.txt"))
    return _tar(*members)


CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    # name: (archive builder, phrase the refusal must contain)
    "symlink chain (a->., a/b->.., c->a/b/.., d->c/..)": (lambda: _tar(*CHAIN, _file("d/outside.txt")),
                                                         "symbolic link"),
    "CVE-2025-4517 overlong symlink path": (_cve_2025_4517, "symbolic link"),
    "hard link through the chain, then overwrite": (lambda: _tar(*CHAIN, _special("h", tarfile.LNKTYPE, "d/secret.txt"),
                                                                  _file("h")), "symbolic link"),
    "hard link to ../../../secret.txt": (lambda: _tar(_special("VOCdevkit/h", tarfile.LNKTYPE, "../../../secret.txt"),
                                                      _file("VOCdevkit/h")), "hard link"),
    "hard link to an absolute path": (lambda: _tar(_special("VOCdevkit/h", tarfile.LNKTYPE, "/etc/hostname")),
                                      "hard link"),
    "symlink to an absolute path": (lambda: _tar(_sym("VOCdevkit/VOC2012/x", "/etc")), "symbolic link"),
    "harmless-looking symlink inside": (lambda: _tar(_sym("VOCdevkit/VOC2012/same", "ok.txt")), "symbolic link"),
    "../ file": (lambda: _tar(_file("../../../secret.txt")), r"'\.\.'"),
    "../ deep inside a name": (lambda: _tar(_file("VOCdevkit/VOC2012/../../../../secret.txt")), r"'\.\.'"),
    "absolute file": (lambda: _tar(_file("/tmp/segtutor-absolute-test.txt")), "absolute"),
    "backslash ..\\": (lambda: _tar(_file("..\\..\\..\\secret.txt")), "backslash"),
    "Windows drive C:\\": (lambda: _tar(_file("C:\\secret.txt")), "drive"),
    "Windows drive-relative C:x": (lambda: _tar(_file("C:secret.txt")), "drive"),
    "character device": (lambda: _tar(_special("VOCdevkit/tty", tarfile.CHRTYPE)), "device"),
    "block device": (lambda: _tar(_special("VOCdevkit/sda", tarfile.BLKTYPE)), "device"),
    "FIFO": (lambda: _tar(_special("VOCdevkit/pipe", tarfile.FIFOTYPE)), "FIFO"),
    "name longer than the file system allows": (lambda: _tar(_file("VOCdevkit/" + "n" * 300)), "too long"),
    "gzip tar with a symlink": (lambda: _tar(*CHAIN, _file("d/outside.txt"), mode="w:gz"), "symbolic link"),
    "xz tar with ../": (lambda: _tar(_file("../../../secret.txt"), mode="w:xz"), r"'\.\.'"),
    "zip ../": (lambda: _zip(("../../../secret.txt", b"pwned", None)), r"'\.\.'"),
    "zip ../ deep inside a name": (lambda: _zip(("VOCdevkit/../../../../secret.txt", b"pwned", None)), r"'\.\.'"),
    "zip absolute name": (lambda: _zip(("/tmp/segtutor-absolute-test.txt", b"pwned", None)), "absolute"),
    "zip backslash": (lambda: _zip(("..\\..\\..\\secret.txt", b"pwned", None)), "backslash"),
    "zip drive": (lambda: _zip(("C:/secret.txt", b"pwned", None)), "drive"),
    "zip symlink (external_attr)": (lambda: _zip(("VOCdevkit/VOC2012/up", b"../../../..", stat.S_IFLNK | 0o777),
                                                 ("VOCdevkit/VOC2012/up/secret.txt", b"pwned", None)),
                                   "symbolic link"),
    "zip FIFO (external_attr)": (lambda: _zip(("VOCdevkit/pipe", b"", stat.S_IFIFO | 0o644)), "FIFO"),
    "zip device (external_attr)": (lambda: _zip(("VOCdevkit/tty", b"", stat.S_IFCHR | 0o644)), "device"),
}


# ------------------------------------------------------------------------------------------- helpers
def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): its kind and content."""
    seen: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                seen[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                seen[rel] = ("dir",)
            else:
                seen[rel] = ("file", path.read_bytes())
    return seen


@pytest.fixture(params=["stdlib-filter", "without-filter-as-on-3.10.11"])
def stdlib_filter(request, monkeypatch) -> bool:
    if request.param.startswith("without"):
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        return False
    return True


@pytest.fixture
def layout(tmp_path) -> dict[str, Path]:
    """tmp_path/secret.txt, and the extraction folders three levels below it, where the chains point."""
    (tmp_path / "secret.txt").write_bytes(b"secret")
    target = tmp_path / "sentinel" / "parent" / "target"  # for safe_extract; holds one file already
    target.mkdir(parents=True)
    (target / "keep.txt").write_bytes(b"keep")
    root = tmp_path / "sentinel" / "data"  # for download(): extraction happens in root/.segtutor-extract-*
    root.mkdir()
    return {"tmp": tmp_path, "target": target, "root": root, "archives": tmp_path.parent / f"{tmp_path.name}-in"}


def _write_archive(layout: dict[str, Path], data: bytes) -> Path:
    folder = layout["archives"]
    folder.mkdir(exist_ok=True)
    path = folder / "archive.bin"
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("case", list(CASES))
def test_safe_extract_refuses_and_writes_nothing(case, layout, stdlib_filter) -> None:
    build, phrase = CASES[case]
    archive = _write_archive(layout, build())
    before = snapshot(layout["tmp"])
    with pytest.raises(dl.UnsafeArchiveError, match=phrase) as info:
        dl.safe_extract(archive, layout["target"])
    assert snapshot(layout["tmp"]) == before, "nothing is written, changed or left behind anywhere"
    assert not Path("/tmp/segtutor-absolute-test.txt").exists()
    message = str(info.value)
    assert "archive member" in message and "Accepted:" in message, message


@pytest.mark.parametrize("case", list(CASES))
def test_download_refuses_and_writes_nothing(case, layout, stdlib_filter) -> None:
    build, phrase = CASES[case]
    data = build()
    archive = _write_archive(layout, data)
    before = snapshot(layout["tmp"])
    with pytest.raises(dl.UnsafeArchiveError, match=phrase):
        dl.download("voc2012", layout["root"], urls=[archive.as_uri()], checksum=hashlib.md5(data).hexdigest(),
                    progress=False)
    after = snapshot(layout["tmp"])
    kept = f"sentinel/data/{ARCHIVE}"
    assert after.pop(kept) == ("file", data), "the verified archive stays (and nothing else appears)"
    assert after == before
    assert not Path("/tmp/segtutor-absolute-test.txt").exists()


def test_refusal_names_the_member_and_the_rule(layout) -> None:
    archive = _write_archive(layout, _tar(*CHAIN))
    with pytest.raises(dl.UnsafeArchiveError) as info:
        dl.safe_extract(archive, layout["target"])
    message = str(info.value)
    assert "'a'" in message and "symbolic link" in message and "'.'" in message, message
    assert "regular files and directories" in message, message


def _benign_tree(src: Path) -> None:
    (src / "VOCdevkit" / "VOC2012" / "JPEGImages").mkdir(parents=True)
    (src / "VOCdevkit" / "VOC2012" / "empty").mkdir()
    for i in range(3):
        (src / "VOCdevkit" / "VOC2012" / "JPEGImages" / f"2007_00000{i}.jpg").write_bytes(bytes([i]) * (1000 + i))
    script = src / "VOCdevkit" / "run.sh"
    script.write_bytes(b"#!/bin/sh\n")
    script.chmod(0o755)
    (src / "VOCdevkit" / "readme.txt").write_bytes(b"")
    os.utime(script, (1_000_000_000, 1_000_000_000))


def _files_of(root: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            out[rel] = ("dir",)
        else:
            st = path.stat()
            out[rel] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode), int(st.st_mtime))
    return out


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_benign_tar_extracts_as_the_stdlib_does(mode, tmp_path, stdlib_filter) -> None:
    src = tmp_path / "src"
    _benign_tree(src)
    archive = tmp_path / "good.tar"
    with tarfile.open(archive, mode) as tar:
        tar.add(src, arcname=".")  # './VOCdevkit/...' names, as `tar -C src -cf good.tar .` writes them
    reference = tmp_path / "reference"
    with tarfile.open(archive) as tar:  # the oracle: the stdlib's extraction with its strictest filter
        if stdlib_filter:
            tar.extractall(reference, filter="data")
        else:
            tar.extractall(reference)
    out = tmp_path / "out"
    assert dl.safe_extract(archive, out) == out.resolve()
    got, want = _files_of(out), _files_of(reference)
    assert got == want
    assert got["VOCdevkit/run.sh"][2] & 0o100 and got["VOCdevkit/run.sh"][3] == 1_000_000_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".segtutor-extract")]


def test_benign_zip_extracts_as_the_stdlib_does(tmp_path) -> None:
    src = tmp_path / "src"
    _benign_tree(src)
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.rglob("*")):
            zf.write(path, path.relative_to(src).as_posix())
    reference = tmp_path / "reference"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(reference)
    out = tmp_path / "out"
    dl.safe_extract(archive, out)
    got, want = _files_of(out), _files_of(reference)
    assert {k: v[:2] for k, v in got.items()} == {k: v[:2] for k, v in want.items()}
    assert got["VOCdevkit/run.sh"][2] & 0o100, "a zip made on Unix keeps the executable bit"


def test_download_accepts_a_zip(tmp_path) -> None:
    from segtutor.data.fake import make_fake_voc
    from segtutor.data.voc import VOCSegmentation

    src = make_fake_voc(tmp_path / "src", n=4, image_size=16)
    archive = tmp_path / "voc.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((src / "VOCdevkit").rglob("*")):
            zf.write(path, path.relative_to(src).as_posix())
    root = tmp_path / "data"
    target = dl.download("voc2012", root, urls=[archive.as_uri()], checksum=hashlib.md5(archive.read_bytes()).hexdigest(),
                         progress=False)
    assert len(VOCSegmentation(target, "train")) == 3
    assert sorted(p.name for p in root.iterdir()) == ["VOCdevkit"]


def test_existing_destination_gets_new_entries_and_keeps_its_own(tmp_path) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar(_file("VOCdevkit/VOC2012/more.txt", b"more")))
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_bytes(b"keep")
    dl.safe_extract(archive, target)
    assert _files_of(target).keys() == {"keep.txt", "VOCdevkit", "VOCdevkit/VOC2012", "VOCdevkit/VOC2012/ok.txt",
                                        "VOCdevkit/VOC2012/more.txt"}
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match="VOCdevkit"):  # never merged into, never overwritten
        dl.safe_extract(archive, target)
    assert snapshot(tmp_path) == before


def test_not_an_archive(tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"just text, neither tar nor zip" * 50)
    with pytest.raises(ValueError, match="tar.*zip"):
        dl.safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_resolved_destination_is_checked_while_writing(tmp_path) -> None:
    """The second line of defence: a link that appears in the extraction folder (planted by another process;
    an archive cannot make one) is caught by the resolved-path check before a byte goes through it."""
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar(_file("VOCdevkit/VOC2012/x.txt")))
    outside = tmp_path / "outside"
    outside.mkdir()
    into = tmp_path / "into"
    into.mkdir()
    (into / "VOCdevkit").symlink_to(outside, target_is_directory=True)
    with tarfile.open(archive) as tar:
        members = dl._tar_members(tar)
        with pytest.raises(dl.UnsafeArchiveError, match="not a real folder"):
            dl._write_members(members, lambda m: tar.extractfile(m.entry), into)
    assert list(outside.rglob("*")) == [], "nothing went through the planted link"


def test_a_refusal_while_writing_leaves_no_new_parent_folders(tmp_path) -> None:
    """Folders made for the staging area are removed again when extraction fails part-way."""
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar(_file("VOCdevkit/" + "n" * 300)))
    with pytest.raises(dl.UnsafeArchiveError, match="too long"):
        dl.safe_extract(archive, tmp_path / "new" / "deeper" / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar"]
