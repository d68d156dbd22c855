"""segtutor.data.download (module segtutor.data.fetch): resumable, checksummed, atomic, safe — tested against a local server and file:// only.

The server runs on 127.0.0.1 in a thread, serves bytes from a dict, honours ``Range: bytes=a-``, records
every request, and can cut a response short to simulate a broken connection. No test touches the network.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from segtutor.data.fake import make_fake_voc
from segtutor.data.voc import VOCSegmentation

# segtutor.data.download is the function; it lives in the module segtutor.data.fetch.
dl = importlib.import_module("segtutor.data.fetch")
ARCHIVE = dl.DATASETS["voc2012"].filename


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and server.ranges:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        payload = body[start:]
        cut = server.cut_after.pop(self.path, None)
        if cut is not None:  # a connection that breaks mid-transfer
            payload = payload[:cut]
        self.wfile.write(payload)
        server.served += len(payload)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.cut_after, httpd.served, httpd.ranges = {}, [], {}, 0, True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def voc_tar(tmp_path_factory) -> bytes:
    """A tar of a tiny VOC-layout dataset, as the real archive lays it out (VOCdevkit/VOC2012/...)."""
    src = make_fake_voc(tmp_path_factory.mktemp("src"), n=4, image_size=16)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(src / "VOCdevkit", arcname="VOCdevkit")
    return buffer.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".segtutor-extract") or p.suffix == ".part")


def test_public_name_is_the_function() -> None:
    import segtutor.data

    assert segtutor.data.download is dl.download


def test_known_voc_checksum() -> None:
    source = dl.DATASETS["voc2012"]
    assert source.md5 == "6cd6e144f989b92b3379bac3b3de84fd"  # md5 of VOCtrainval_11-May-2012.tar (torchvision's too)
    assert source.urls[0] == "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
    assert len(source.urls) >= 2


def test_download_and_extract(server, voc_tar, tmp_path) -> None:
    server.files["/voc.tar"] = voc_tar
    target = dl.download("voc2012", tmp_path, urls=[f"{server.url}/voc.tar"], checksum=md5(voc_tar), progress=False)
    assert target == tmp_path / "VOCdevkit" / "VOC2012"
    data = VOCSegmentation(tmp_path, "train")
    assert len(data) == 3 and data[0][1].shape == (16, 16)
    assert not (tmp_path / ARCHIVE).exists(), "the archive is deleted after extraction by default"
    assert leftovers(tmp_path) == []
    assert server.requests == [("/voc.tar", None)]
    # Present already: no request at all, even with unreachable URLs.
    again = dl.download("voc2012", tmp_path, urls=["http://127.0.0.1:9/never"], checksum=md5(voc_tar), progress=False)
    assert again == target and len(server.requests) == 1


def test_resume_from_part_file(server, voc_tar, tmp_path) -> None:
    server.files["/voc.tar"] = voc_tar
    half = len(voc_tar) // 2
    (tmp_path / (ARCHIVE + ".part")).write_bytes(voc_tar[:half])
    dl.download("voc2012", tmp_path, urls=[f"{server.url}/voc.tar"], checksum=md5(voc_tar), progress=False,
                keep_archive=True)
    assert server.requests == [("/voc.tar", f"bytes={half}-")]
    assert server.served == len(voc_tar) - half, "only the missing bytes may be transferred"
    assert (tmp_path / ARCHIVE).read_bytes() == voc_tar
    assert len(VOCSegmentation(tmp_path, "val")) == 1


def test_broken_connection_resumes_on_next_mirror(server, voc_tar, tmp_path) -> None:
    server.files["/a/voc.tar"] = server.files["/b/voc.tar"] = voc_tar
    server.cut_after["/a/voc.tar"] = 1000
    dl.download("voc2012", tmp_path, urls=[f"{server.url}/a/voc.tar", f"{server.url}/b/voc.tar"],
                checksum=md5(voc_tar), progress=False)
    assert server.requests == [("/a/voc.tar", None), ("/b/voc.tar", "bytes=1000-")]
    assert VOCSegmentation(tmp_path, "trainval").ids


def test_mirror_fallback(server, voc_tar, tmp_path) -> None:
    server.files["/mirror/voc.tar"] = voc_tar
    dl.download("voc2012", tmp_path, urls=[f"{server.url}/gone/voc.tar", f"{server.url}/mirror/voc.tar"],
                checksum=md5(voc_tar), progress=False)
    assert [path for path, _ in server.requests] == ["/gone/voc.tar", "/mirror/voc.tar"]
    assert len(VOCSegmentation(tmp_path)) == 3


def test_all_urls_fail_names_each(server, tmp_path) -> None:
    with pytest.raises(dl.DownloadError, match=r"(?s)/one.*404.*/two.*404") as info:
        dl.download("voc2012", tmp_path, urls=[f"{server.url}/one", f"{server.url}/two"], checksum="0" * 32,
                    progress=False)
    assert not isinstance(info.value, dl.ChecksumError)


def test_checksum_mismatch(server, voc_tar, tmp_path) -> None:
    server.files["/voc.tar"] = voc_tar
    wrong = "0123456789abcdef0123456789abcdef"
    with pytest.raises(dl.ChecksumError) as info:
        dl.download("voc2012", tmp_path, urls=[f"{server.url}/voc.tar"], checksum=wrong, progress=False)
    message = str(info.value)
    assert wrong in message and md5(voc_tar) in message, "the error names the expected and the actual digest"
    # Documented choice: the bad file is deleted (resuming on top of it could never fix it).
    assert not (tmp_path / ARCHIVE).exists() and leftovers(tmp_path) == []
    assert not (tmp_path / "VOCdevkit").exists()
    with pytest.raises(ValueError, match="MD5 hex digest"):
        dl.download("voc2012", tmp_path, urls=[f"{server.url}/voc.tar"], checksum="abc", progress=False)


def test_file_url_and_server_without_range(voc_tar, tmp_path) -> None:
    """file:// ignores Range: a stale .part of other bytes is replaced, not appended to."""
    source = tmp_path / "src.tar"
    source.write_bytes(voc_tar)
    root = tmp_path / "data"
    root.mkdir()
    (root / (ARCHIVE + ".part")).write_bytes(b"stale bytes from another file")
    target = dl.download("voc2012", root, urls=[source.as_uri()], checksum=md5(voc_tar), progress=False)
    assert len(VOCSegmentation(target)) == 3 and leftovers(root) == []


def test_interrupted_extraction_leaves_no_tree(voc_tar, tmp_path, monkeypatch) -> None:
    source = tmp_path / "src.tar"
    source.write_bytes(voc_tar)
    root = tmp_path / "data"
    real_extract = dl.safe_extract

    def extract_then_die(archive, destination):
        real_extract(archive, destination)
        assert any(Path(destination).rglob("*.jpg")), "files were written before the interruption"
        raise KeyboardInterrupt

    monkeypatch.setattr(dl, "safe_extract", extract_then_die)
    with pytest.raises(KeyboardInterrupt):
        dl.download("voc2012", root, urls=[source.as_uri()], checksum=md5(voc_tar), progress=False)
    assert not (root / "VOCdevkit" / "VOC2012").exists() and leftovers(root) == []
    assert (root / ARCHIVE).exists(), "the verified archive stays for the next attempt"

    monkeypatch.setattr(dl, "safe_extract", real_extract)
    target = dl.download("voc2012", root, urls=["http://127.0.0.1:9/unused"], checksum=md5(voc_tar), progress=False)
    assert len(VOCSegmentation(target)) == 3


def test_truncated_archive_leaves_no_tree(voc_tar, tmp_path) -> None:
    broken = voc_tar[: int(len(voc_tar) * 0.6)]  # checksum matches, but the tar ends mid-member
    source = tmp_path / "broken.tar"
    source.write_bytes(broken)
    root = tmp_path / "data"
    with pytest.raises(tarfile.TarError):
        dl.download("voc2012", root, urls=[source.as_uri()], checksum=md5(broken), progress=False)
    assert not (root / "VOCdevkit" / "VOC2012").exists() and leftovers(root) == []


def _tar_with(*members: tarfile.TarInfo) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            data = b"x" * member.size if member.isfile() else None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 3
    return info


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize("member, reason", [
    (_file("../evil.txt"), "'..'"),
    (_file("VOCdevkit/VOC2012/../../../evil.txt"), "'..'"),
    (_file("/tmp/evil.txt"), "absolute path"),
    (_link("VOCdevkit/VOC2012/escape", "../../../etc/passwd"), "symbolic link"),
    (_link("VOCdevkit/VOC2012/abs", "/etc/passwd"), "symbolic link"),
])
def test_malicious_members_are_rejected(member, reason, tmp_path) -> None:
    archive = _tar_with(_file("VOCdevkit/VOC2012/ok.txt"), member)
    source = tmp_path / "evil.tar"
    source.write_bytes(archive)
    root = tmp_path / "data"
    with pytest.raises(dl.UnsafeArchiveError, match=reason):
        dl.download("voc2012", root, urls=[source.as_uri()], checksum=md5(archive), progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (root / "VOCdevkit").exists()
    assert leftovers(root) == []
    assert not list(root.rglob("ok.txt")), "nothing is extracted when any member is unsafe"


def test_names_and_incomplete_target(tmp_path) -> None:
    with pytest.raises(ValueError, match="cityscapes-dataset.com"):
        dl.download("cityscapes", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        dl.download("imagenet", tmp_path)
    (tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="incomplete"):
        dl.download("voc2012", tmp_path, urls=["http://127.0.0.1:9/unused"], progress=False)


def test_complete_part_file_is_not_fetched_again(server, voc_tar, tmp_path) -> None:
    """A .part that already holds every byte: the server answers 416 to the range, nothing is re-sent."""
    server.files["/voc.tar"] = voc_tar
    (tmp_path / (ARCHIVE + ".part")).write_bytes(voc_tar)
    dl.download("voc2012", tmp_path, urls=[f"{server.url}/voc.tar"], checksum=md5(voc_tar), progress=False)
    assert server.requests == [("/voc.tar", f"bytes={len(voc_tar)}-")] and server.served == 0
    assert len(VOCSegmentation(tmp_path)) == 3
