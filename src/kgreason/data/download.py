"""Download the public benchmark KGs into the user cache, resumably and with sha256 verification.

Every file is streamed to ``<file>.part``; an interrupted download resumes from there with an HTTP ``Range``
request (a server that ignores ``Range`` makes it start over). Only a file whose sha256 matches the known one
is renamed to its final name, atomically, so the cache never holds a half-written or corrupted split.

Sources (:data:`DATASET_SOURCES`) are the standard splits of ConvE (Dettmers et al. 2018), which MINERVA and
MultiHopKG also use; the hashes are those of the files in ``shared/data/SHA256SUMS``:

* ``umls``, ``kinship``, ``nations``: the ``<name>.tar.gz`` archives of the ConvE repository; the split files
  are taken out of the archive and each is verified against its own hash.
* ``wn18rr``, ``fb15k-237``: raw files of the RotatE repository (DeepGraphLearning/KnowledgeGraphEmbedding),
  which holds the same ConvE/Toutanova splits (FB15k-237 with CRLF line ends; sizes and contents of its test
  files were compared with ours, offline); the hash check guards every file anyway.
* ``nell-995``: MINERVA's preprocessed NELL-995 (``dev.txt`` saved as ``valid.txt``). No hash is known for it:
  its files are **not verified** and a warning says so; the hashes computed on download are written to
  ``SHA256SUMS`` in the dataset folder so that later copies can be checked against the first one.

The downloaded layout is the one of ``KGREASON_DATA_DIR``: ``<cache>/<name>/{train,valid,test}.txt``
(``head<TAB>relation<TAB>tail``), plus ``SHA256SUMS``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import tarfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgreason.data.dataset import SPLITS
from kgreason.registry import UnknownNameError, normalize_name, unknown_name_message

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
USER_AGENT = "kgreason/0.1 (dataset downloader)"


class DownloadError(RuntimeError):
    """A download failed: HTTP/network error, or content whose sha256 is not the expected one."""


@dataclass(frozen=True)
class RemoteFile:
    """One split file: fetched from ``url`` (or, with ``member``, the member of that name in a ``.tar.gz``).

    ``sha256`` is the hex digest of the split file itself (not of an archive); ``None`` means unknown (the file
    is not verified and a warning is issued).
    """

    url: str
    sha256: str | None
    member: str | None = None


@dataclass(frozen=True)
class DatasetSource:
    """Where the three splits of a downloadable dataset come from."""

    name: str
    files: Mapping[str, RemoteFile]
    description: str = ""


_CONVE = "https://github.com/TimDettmers/ConvE/raw/master"
_ROTATE = "https://raw.githubusercontent.com/DeepGraphLearning/KnowledgeGraphEmbedding/master/data"
_MINERVA = "https://raw.githubusercontent.com/shehzaadzd/MINERVA/master/datasets/data_preprocessed"


def _archive(name: str, hashes: dict[str, str]) -> dict[str, RemoteFile]:
    return {s: RemoteFile(f"{_CONVE}/{name}.tar.gz", hashes[s], member=f"{s}.txt") for s in SPLITS}


def _raw(
    base: str, hashes: Mapping[str, str | None], names: Mapping[str, str] | None = None
) -> dict[str, RemoteFile]:
    names = names or {s: f"{s}.txt" for s in SPLITS}
    return {s: RemoteFile(f"{base}/{names[s]}", hashes[s]) for s in SPLITS}


DATASET_SOURCES: dict[str, DatasetSource] = {
    "umls": DatasetSource(
        "umls",
        _archive(
            "umls",
            {
                "train": "873ef4925516b83e7f6f8cc02b4be51d848828710a7f65a956f0ac4a9e452f35",
                "valid": "025c98f8a4891e2a6582ec5b40ee0d904031edad9c52554522f4b7904820c98e",
                "test": "a7eb529a3d2810fcc96341ccc97c625a5e202f8389673aa6bd317eeebbb79014",
            },
        ),
        "Unified Medical Language System concepts (ConvE split)",
    ),
    "kinship": DatasetSource(
        "kinship",
        _archive(
            "kinship",
            {
                "train": "738612111a6acf0e39662bde24c7e72a4d1edf20931beea077da367dda689731",
                "valid": "c56f8630a583178b1e569f11a64aa535ae1ce0b0912d8b1e24716be2b37f04da",
                "test": "05e5733265761d55be9c05bfaff5a8d0808df46f9c1e9d66cc3f2fe114e43d88",
            },
        ),
        "Alyawarra kinship terms (ConvE split)",
    ),
    "nations": DatasetSource(
        "nations",
        _archive(
            "nations",
            {
                "train": "0830fa9da8e5bba2ccdaa45b7bdc9130451ba66b09ff2708f35fccaf82473e57",
                "valid": "2b337a62e51a2f45c283eac98a70d21b7e0e102136be1539b2a52c652a7b0530",
                "test": "3971085165b47b6aeaec68058c6d8d98b3005e929db81268410b95ae4db770ab",
            },
        ),
        "relations between 14 countries (ConvE split)",
    ),
    "wn18rr": DatasetSource(
        "wn18rr",
        _raw(
            f"{_ROTATE}/wn18rr",
            {
                "train": "038612e783c215ee5f3ca9fbfca27b8d0739be1028fe4ee7c174aecf0b83d5df",
                "valid": "453ce7202afa58094a04d2b1560ee2b02660f1c260b32ce6651c8ccedd1028ab",
                "test": "0383bceaaa1096cf3c03ec021ed0048068e2355dbfc0239b292cefdac821cec5",
            },
        ),
        "WordNet without inverse-relation leakage (Dettmers et al. 2018)",
    ),
    "fb15k-237": DatasetSource(
        "fb15k-237",
        _raw(
            f"{_ROTATE}/FB15k-237",
            {
                "train": "6e4c2782169af21e9743f3b1d200886f5d595bf6bc504ec1351720949c5cdfae",
                "valid": "cf6309010852f6a8d47a45df830a426415d1ee6f7a3970a8376ff1fb81db4a5c",
                "test": "5711cf41623ceb4eacc50eb6108a3ca6565c7492e3caaf82a3e355cc660d1574",
            },
        ),
        "Freebase subset without inverse-relation leakage (Toutanova and Chen 2015)",
    ),
    "nell-995": DatasetSource(
        "nell-995",
        _raw(
            f"{_MINERVA}/nell-995",
            {s: None for s in SPLITS},
            names={"train": "train.txt", "valid": "dev.txt", "test": "test.txt"},
        ),
        "NELL-995 as preprocessed by MINERVA (unverified: no known sha256)",
    ),
}


def default_cache_dir() -> Path:
    """``$KGREASON_CACHE_DIR`` if set, else ``~/.cache/kgreason/datasets`` (read at call time)."""
    env = os.environ.get("KGREASON_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kgreason" / "datasets"


def dataset_source(name: str) -> DatasetSource:
    """The :class:`DatasetSource` of ``name`` (case/dash/underscore-insensitive); unknown names raise
    :class:`~kgreason.registry.UnknownNameError` with suggestions."""
    by_norm = {normalize_name(k): v for k, v in DATASET_SOURCES.items()}
    try:
        return by_norm[normalize_name(name)]
    except KeyError:
        raise UnknownNameError(
            unknown_name_message("downloadable dataset", name, list(DATASET_SOURCES))
        ) from None


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress_bar(total: int | None, initial: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not enabled,
    )


def _open(url: str, offset: int) -> Any:
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        # 416 for a resumed request: the range starts at or past the end, so the part file is already
        # complete (or too long: its hash check then fails and the caller starts over)
        if exc.code == 416 and offset:
            exc.close()
            return None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _fetch_to_part(url: str, part: Path, progress: bool) -> None:
    """Stream ``url`` into ``part``, resuming from its current size when the server honours ``Range``."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset)
    if response is None:  # 416: nothing left to fetch
        return
    with response:
        status = getattr(response, "status", 200)
        total: int | None = None
        if offset and status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                raise DownloadError(
                    f"{url}: asked for bytes from {offset}, server answered Content-Range "
                    f"{response.headers.get('Content-Range')!r}"
                )
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode = "ab"
        else:  # fresh download, or the server ignored Range (200): start over
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        part.parent.mkdir(parents=True, exist_ok=True)
        with (
            open(part, mode) as out,
            _progress_bar(total, offset, part.name.removesuffix(".part"), progress) as bar,
        ):
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as exc:
                    raise DownloadError(
                        f"{url}: connection lost after {out.tell()} bytes ({exc}); run again to resume"
                    ) from None
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        if total is not None and size != total:
            raise DownloadError(f"{url}: connection closed at {size} of {total} bytes; run again to resume")


def _verify_and_commit(part: Path, dest: Path, expected: str | None, url: str) -> str:
    """Check ``part`` against ``expected``; rename it to ``dest`` or delete it and raise :class:`DownloadError`."""
    actual = sha256_file(part)
    if expected is not None and actual != expected.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: sha256 mismatch for {dest.name}: expected {expected}, got {actual} (the download was deleted)"
        )
    os.replace(part, dest)
    return actual


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumable), verify ``sha256``, rename atomically.

    An existing ``dest`` whose hash matches is kept (no network access) unless ``force``; one that does not
    match is downloaded again. On a hash mismatch the part file is deleted and :class:`DownloadError` names
    the URL and both hashes. Without ``sha256`` the file is not verified.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.exists() and not force:
        if sha256 is None or sha256_file(dest) == sha256.lower():
            return dest
        warnings.warn(f"{dest}: sha256 differs from the expected one; downloading it again", stacklevel=2)
    if force:
        part.unlink(missing_ok=True)
    for attempt in range(2):
        resumed = part.exists() and part.stat().st_size > 0
        _fetch_to_part(url, part, progress)
        try:
            _verify_and_commit(part, dest, sha256, url)
            return dest
        except DownloadError:
            # a stale part file (from another version of the file) spoils a resumed download: the part file is
            # gone now, so retry once from scratch; a fresh download that mismatches is a real error
            if attempt or not resumed:
                raise
            warnings.warn(f"{url}: resumed download did not verify; downloading from scratch", stacklevel=2)
    raise AssertionError("unreachable")


def _extract_member(archive: Path, member: str, part: Path, url: str) -> None:
    """Copy the archive member whose base name is ``member`` into ``part``."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            matches = [m for m in tar.getmembers() if m.isfile() and Path(m.name).name == member]
            if not matches:
                names = ", ".join(sorted(m.name for m in tar.getmembers() if m.isfile())[:20])
                raise DownloadError(f"{url}: archive has no file {member!r} (it holds: {names})")
            src = tar.extractfile(matches[0])
            assert src is not None
            with src, open(part, "wb") as out:
                for chunk in iter(lambda: src.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
    except tarfile.TarError as exc:
        raise DownloadError(f"{url}: not a readable tar archive ({exc})") from None


def _remote_url(remote: RemoteFile, base_url: str | None) -> str:
    if base_url is None:
        return remote.url
    return f"{base_url.rstrip('/')}/{remote.url.rsplit('/', 1)[-1]}"


def download_dataset(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download dataset ``name`` into ``<cache_dir>/<name>/`` and return that folder.

    Args:
        name: one of :data:`DATASET_SOURCES` (``umls``, ``kinship``, ``nations``, ``wn18rr``, ``fb15k-237``,
            ``nell-995``; case/dash-insensitive).
        cache_dir: defaults to :func:`default_cache_dir`.
        base_url: fetch every file from ``<base_url>/<file name of its URL>`` instead (a mirror or a local
            server); the hashes are still checked.
        force: download again even when verified files are present.
        progress: show a tqdm progress bar per file.

    Files already present with the right hash are skipped, so calling it twice costs one hash per file.
    Raises :class:`DownloadError` on network errors and hash mismatches (nothing unverified is left behind).
    """
    source = dataset_source(name)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = folder / source.name
    folder.mkdir(parents=True, exist_ok=True)
    if any(f.sha256 is None for f in source.files.values()):
        warnings.warn(
            f"dataset {source.name!r} has no known sha256: its files are not verified "
            f"(computed hashes are written to {folder / 'SHA256SUMS'})",
            stacklevel=2,
        )
    archives: dict[str, Path] = {}
    for split, remote in source.files.items():
        dest = folder / f"{split}.txt"
        url = _remote_url(remote, base_url)
        if remote.member is None:
            download_file(url, dest, remote.sha256, force=force, progress=progress)
            continue
        if dest.exists() and not force and (remote.sha256 is None or sha256_file(dest) == remote.sha256):
            continue
        archive = archives.get(url)
        if archive is None:
            archive = folder / ".archives" / url.rsplit("/", 1)[-1]
            archive.parent.mkdir(exist_ok=True)
            # the archive itself has no known hash; its members are verified one by one below
            download_file(url, archive, None, force=force, progress=progress)
            archives[url] = archive
        part = dest.with_name(dest.name + ".part")
        try:
            _extract_member(archive, remote.member, part, url)
            _verify_and_commit(part, dest, remote.sha256, f"{url} (member {remote.member})")
        except DownloadError:
            part.unlink(missing_ok=True)
            archive.unlink(missing_ok=True)  # a corrupted archive must not be reused
            raise
    for archive in archives.values():
        archive.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (folder / ".archives").rmdir()
    _write_checksums(folder)
    return folder


def _write_checksums(folder: Path) -> None:
    from kgreason.io import atomic_open

    with atomic_open(folder / "SHA256SUMS", "w", encoding="utf-8") as fh:
        for split in SPLITS:
            fh.write(f"{sha256_file(folder / f'{split}.txt')}  {split}.txt\n")
