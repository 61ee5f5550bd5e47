"""Offline tests of the downloader against a local HTTP server that supports (or ignores) Range requests."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kgreason.data import download as dl
from kgreason.data.download import (
    DatasetSource,
    DownloadError,
    RemoteFile,
    download_dataset,
    download_file,
)
from kgreason.registry import UnknownNameError


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = (self.server.root / self.path.lstrip("/")).resolve()
        if not path.is_file() or self.server.root not in path.parents:
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        if rng and self.server.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            body = data[start:]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_after is not None:  # promise the whole body, send a part, drop the connection
            self.wfile.write(body[: self.server.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root.resolve()
        self.honour_range = True
        self.cut_after: int | None = None
        self.requests: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "www"
    root.mkdir()
    srv = _Server(root)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = b"".join(f"e{i}\tr{i % 7}\te{(i * 31) % 997}\n".encode() for i in range(5000))  # ~70 kB


def publish(server: _Server, name: str, data: bytes) -> str:
    (server.root / name).write_bytes(data)
    return f"{server.url}/{name}"


def test_download_verifies_and_renames(server: _Server, tmp_path: Path) -> None:
    url = publish(server, "train.txt", PAYLOAD)
    dest = tmp_path / "cache" / "train.txt"
    assert download_file(url, dest, sha(PAYLOAD), progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("train.txt.part").exists()
    assert server.requests == [("/train.txt", None)]


def test_hash_mismatch_raises_and_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    url = publish(server, "train.txt", PAYLOAD[:-1] + b"X")  # corrupted on the server
    dest = tmp_path / "cache" / "train.txt"
    expected = sha(PAYLOAD)
    with pytest.raises(DownloadError) as info:
        download_file(url, dest, expected, progress=False)
    msg = str(info.value)
    assert url in msg and expected in msg and sha(PAYLOAD[:-1] + b"X") in msg
    assert list((tmp_path / "cache").iterdir()) == []


def test_resume_from_partial_file_with_range(server: _Server, tmp_path: Path) -> None:
    url = publish(server, "train.txt", PAYLOAD)
    dest = tmp_path / "train.txt"
    dest.with_name("train.txt.part").write_bytes(PAYLOAD[:12345])
    download_file(url, dest, sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/train.txt", "bytes=12345-")]


def test_interrupted_transfer_keeps_part_file_and_resumes(server: _Server, tmp_path: Path) -> None:
    url = publish(server, "train.txt", PAYLOAD)
    dest = tmp_path / "train.txt"
    server.cut_after = 30000
    with pytest.raises(DownloadError, match="run again to resume"):
        download_file(url, dest, sha(PAYLOAD), progress=False)
    part = dest.with_name("train.txt.part")
    assert part.read_bytes() == PAYLOAD[:30000] and not dest.exists()
    server.cut_after = None
    download_file(url, dest, sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.requests[-1] == ("/train.txt", "bytes=30000-")


def test_server_ignoring_range_restarts_from_scratch(server: _Server, tmp_path: Path) -> None:
    server.honour_range = False
    url = publish(server, "train.txt", PAYLOAD)
    dest = tmp_path / "train.txt"
    dest.with_name("train.txt.part").write_bytes(b"garbage that must not be kept")
    download_file(url, dest, sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD and len(server.requests) == 1


def test_stale_part_file_is_retried_once_from_scratch(server: _Server, tmp_path: Path) -> None:
    url = publish(server, "train.txt", PAYLOAD)
    dest = tmp_path / "train.txt"
    dest.with_name("train.txt.part").write_bytes(b"X" * 100)  # wrong prefix: the resumed file cannot verify
    with pytest.warns(UserWarning, match="from scratch"):
        download_file(url, dest, sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/train.txt", "bytes=100-"), ("/train.txt", None)]


def test_complete_part_file_gets_416_and_is_committed(server: _Server, tmp_path: Path) -> None:
    url = publish(server, "train.txt", PAYLOAD)
    dest = tmp_path / "train.txt"
    dest.with_name("train.txt.part").write_bytes(PAYLOAD)
    download_file(url, dest, sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD and server.requests == [("/train.txt", f"bytes={len(PAYLOAD)}-")]


def test_redownload_is_skipped_unless_forced_or_corrupted(server: _Server, tmp_path: Path) -> None:
    url = publish(server, "train.txt", PAYLOAD)
    dest = tmp_path / "train.txt"
    for _ in range(3):
        download_file(url, dest, sha(PAYLOAD), progress=False)
    assert len(server.requests) == 1
    download_file(url, dest, sha(PAYLOAD), force=True, progress=False)
    assert len(server.requests) == 2
    dest.write_bytes(b"tampered")
    with pytest.warns(UserWarning, match="downloading it again"):
        download_file(url, dest, sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD and len(server.requests) == 3


def test_http_errors_name_the_url(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"/missing\.txt: HTTP 404"):
        download_file(f"{server.url}/missing.txt", tmp_path / "x.txt", None, progress=False)
    assert not (tmp_path / "x.txt").exists()


def test_connection_refused_is_a_download_error(tmp_path: Path) -> None:
    srv = _Server(tmp_path)  # bound, never served, then closed: nothing listens on the port
    url = f"{srv.url}/a.txt"
    srv.server_close()
    with pytest.raises(DownloadError, match="cannot connect"):
        download_file(url, tmp_path / "a.txt", None, progress=False)


SPLIT_DATA = {
    "train": b"a\tr\tb\nb\tr\tc\nc\ts\ta\n",
    "valid": b"a\tr\tc\n",
    "test": b"b\ts\ta\n",
}


def make_archive(data: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split, content in data.items():
            info = tarfile.TarInfo(f"./{split}.txt")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


@pytest.fixture
def toy_sources(server: _Server, monkeypatch: pytest.MonkeyPatch) -> _Server:
    """Two fake downloadables served locally: raw files and a ConvE-style ``.tar.gz``."""
    for split, content in SPLIT_DATA.items():
        publish(server, f"raw-{split}.txt", content)
    publish(server, "toyarc.tar.gz", make_archive(SPLIT_DATA))
    hashes = {s: sha(c) for s, c in SPLIT_DATA.items()}
    raw = DatasetSource("toy-raw", {s: RemoteFile(f"{server.url}/raw-{s}.txt", hashes[s]) for s in hashes})
    arc = DatasetSource(
        "toy-arc",
        {s: RemoteFile(f"{server.url}/toyarc.tar.gz", hashes[s], member=f"{s}.txt") for s in hashes},
    )
    monkeypatch.setitem(dl.DATASET_SOURCES, "toy-raw", raw)
    monkeypatch.setitem(dl.DATASET_SOURCES, "toy-arc", arc)
    return server


@pytest.mark.parametrize("name", ["toy-raw", "toy-arc"])
def test_download_dataset_layout_and_idempotence(toy_sources: _Server, tmp_path: Path, name: str) -> None:
    folder = download_dataset(name.upper().replace("-", "_"), cache_dir=tmp_path / "cache", progress=False)
    assert folder == tmp_path / "cache" / name
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "test.txt", "train.txt", "valid.txt"]
    for split, content in SPLIT_DATA.items():
        assert (folder / f"{split}.txt").read_bytes() == content
    assert f"{sha(SPLIT_DATA['valid'])}  valid.txt" in (folder / "SHA256SUMS").read_text()
    n = len(toy_sources.requests)
    assert n == (3 if name == "toy-raw" else 1)  # one archive fetch serves all three splits
    download_dataset(name, cache_dir=tmp_path / "cache", progress=False)
    assert len(toy_sources.requests) == n


def test_cache_dir_from_environment(
    toy_sources: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KGREASON_CACHE_DIR", str(tmp_path / "envcache"))
    assert download_dataset("toy-raw", progress=False) == tmp_path / "envcache" / "toy-raw"


def test_corrupted_archive_member_leaves_no_split(toy_sources: _Server, tmp_path: Path) -> None:
    bad = dict(SPLIT_DATA, test=b"b\ts\tZ\n")
    publish(toy_sources, "toyarc.tar.gz", make_archive(bad))
    with pytest.raises(DownloadError, match=r"toyarc\.tar\.gz \(member test\.txt\): sha256 mismatch"):
        download_dataset("toy-arc", cache_dir=tmp_path / "c", progress=False)
    left = sorted(str(p.relative_to(tmp_path / "c")) for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert "toy-arc/test.txt" not in left and not any(p.endswith((".part", ".tar.gz")) for p in left)


def test_base_url_redirects_every_file(
    toy_sources: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = toy_sources.root / "mirror"
    mirror.mkdir()
    src = dl.DATASET_SOURCES["toy-raw"]
    moved = DatasetSource(
        "toy-raw",
        {s: RemoteFile(f"https://example.invalid/x/{s}.txt", f.sha256) for s, f in src.files.items()},
    )
    monkeypatch.setitem(dl.DATASET_SOURCES, "toy-raw", moved)
    for split, content in SPLIT_DATA.items():
        (mirror / f"{split}.txt").write_bytes(content)
    download_dataset(
        "toy-raw", cache_dir=tmp_path / "c", base_url=f"{toy_sources.url}/mirror/", progress=False
    )
    assert sorted(p for p, _ in toy_sources.requests) == [
        "/mirror/test.txt",
        "/mirror/train.txt",
        "/mirror/valid.txt",
    ]


def test_unverified_source_warns(
    toy_sources: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = dl.DATASET_SOURCES["toy-raw"]
    unverified = DatasetSource("toy-raw", {s: RemoteFile(f.url, None) for s, f in src.files.items()})
    monkeypatch.setitem(dl.DATASET_SOURCES, "toy-raw", unverified)
    with pytest.warns(UserWarning, match="not verified"):
        folder = download_dataset("toy-raw", cache_dir=tmp_path / "c", progress=False)
    assert (folder / "train.txt").read_bytes() == SPLIT_DATA["train"]


def test_sources_cover_the_benchmarks_and_unknown_names_suggest() -> None:
    assert set(dl.DATASET_SOURCES) == {"umls", "kinship", "nations", "wn18rr", "fb15k-237", "nell-995"}
    for name, source in dl.DATASET_SOURCES.items():
        assert source.name == name and set(source.files) == {"train", "valid", "test"}
        for f in source.files.values():
            assert f.url.startswith("https://")
            assert (f.sha256 is None) == (name == "nell-995")
            assert f.sha256 is None or len(f.sha256) == 64
    with pytest.raises(UnknownNameError, match="Did you mean: 'wn18rr'"):
        dl.dataset_source("wn18r")
