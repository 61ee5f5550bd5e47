"""The five benchmark KGs of shared/data: counts of its README, SHA256SUMS, loading reports and statistics.

Uses the ``shared_data`` fixture (KGREASON_DATA_DIR, default ../shared/data; fails in CI when missing). Each
dataset is loaded once per module (fb15k-237 takes ~2 s).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kgreason.data import SPLITS, Dataset
from kgreason.data import download as dl
from kgreason.data.registry import find_dataset, load_dataset
from kgreason.data.statistics import dataset_statistics

pytestmark = pytest.mark.realdata

# shared/data/README.md: entities (unique labels over all three splits), relations, train, valid, test
README = {
    "umls": (135, 46, 5216, 652, 661),
    "kinship": (104, 25, 8544, 1068, 1074),
    "nations": (14, 55, 1592, 199, 201),
    "wn18rr": (40943, 11, 86835, 3034, 3134),
    "fb15k-237": (14541, 237, 272115, 17535, 20466),
}
NAMES = list(README)


@pytest.fixture(scope="module")
def datasets(shared_data: Path) -> dict[str, Dataset]:
    return {name: load_dataset(name, data_dir=shared_data) for name in NAMES}


def read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("name", NAMES)
def test_counts_match_the_readme(shared_data: Path, datasets: dict[str, Dataset], name: str) -> None:
    n_ent, n_rel, *n_split = README[name]
    folder = shared_data / name
    lines = {s: read_lines(folder / f"{s}.txt") for s in SPLITS}
    assert [len(lines[s]) for s in SPLITS] == n_split
    labels = {x for s in SPLITS for line in lines[s] for x in line.split("\t")[::2]}
    assert len(labels) == n_ent

    ds = datasets[name]
    assert ds.name == name and ds.metadata["source"] == "data_dir"
    assert ds.num_relations == n_rel
    # our vocabulary is train-only; valid/test triples with unseen entities are dropped and reported
    train_entities = {x for line in lines["train"] for x in line.split("\t")[::2]}
    assert ds.num_entities == len(train_entities) <= n_ent
    for split, expected in zip(SPLITS, n_split):
        rep = ds.reports[split]
        assert rep.num_triples == len(ds.split(split))
        assert rep.num_triples + rep.num_duplicates + rep.num_dropped_unseen == expected
        assert len(rep.dropped_lines) == rep.num_dropped_unseen
    assert ds.reports["train"].num_dropped_unseen == 0 and len(ds.train) == n_split[0]
    if name in ("umls", "kinship", "nations"):  # dense: every entity is seen in train
        assert ds.num_entities == n_ent and all(ds.reports[s].num_dropped_unseen == 0 for s in SPLITS)


def test_unseen_entities_of_the_sparse_graphs(datasets: dict[str, Dataset]) -> None:
    """What dropping unseen entities does (the README asks us to report it)."""
    wn, fb = datasets["wn18rr"], datasets["fb15k-237"]
    assert wn.num_entities == 40559
    assert (wn.reports["valid"].num_dropped_unseen, wn.reports["test"].num_dropped_unseen) == (210, 210)
    assert fb.num_entities == 14505
    assert (fb.reports["valid"].num_dropped_unseen, fb.reports["test"].num_dropped_unseen) == (9, 28)


def parse_sha256sums(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        digest, fname = line.split(maxsplit=1)
        out[fname.lstrip("*")] = digest
    return out


def test_sha256sums(shared_data: Path) -> None:
    sums = parse_sha256sums(shared_data / "SHA256SUMS")
    assert sorted(sums) == sorted(f"{n}/{s}.txt" for n in NAMES for s in SPLITS)
    for fname, digest in sums.items():
        assert hashlib.sha256((shared_data / fname).read_bytes()).hexdigest() == digest, fname


def test_download_sources_carry_the_same_hashes(shared_data: Path) -> None:
    sums = parse_sha256sums(shared_data / "SHA256SUMS")
    for name in NAMES:
        for split, remote in dl.DATASET_SOURCES[name].files.items():
            assert remote.sha256 == sums[f"{name}/{split}.txt"], (name, split)


@pytest.mark.parametrize("name", NAMES)
def test_statistics_are_sane(datasets: dict[str, Dataset], name: str) -> None:
    ds = datasets[name]
    st = dataset_statistics(ds)
    assert st.num_triples == {s: len(ds.split(s)) for s in SPLITS}
    assert st.degree_mean == pytest.approx(2 * len(ds.train) / ds.num_entities)
    assert st.degree_min >= 1  # the vocabulary is train-only: every entity has a training edge
    assert st.degree_min <= st.degree_median <= st.degree_max
    assert len(st.relations) == ds.num_relations
    assert sum(r.num_train for r in st.relations) == len(ds.train)
    for r in st.relations:
        assert r.tails_per_query >= 1.0 and r.heads_per_query >= 1.0
        assert r.to_many == (r.tails_per_query > 1.5)


def test_known_values(datasets: dict[str, Dataset]) -> None:
    umls = dataset_statistics(datasets["umls"])
    assert umls.degree_mean == pytest.approx(2 * 5216 / 135)
    assert dataset_statistics(datasets["wn18rr"]).degree_median <= 3  # sparse (README: median degree 2)
    # MultiHopKG Table 4 (dev split share of to-many examples): UMLS 99.1%, Kinship 100%, FB15k-237 76.6%,
    # WN18RR 52.8%. Our ξ uses all splits after dropping unseen entities, so allow a few points.
    assert umls.to_many_fraction["valid"] == pytest.approx(0.991, abs=0.01)
    assert dataset_statistics(datasets["kinship"]).to_many_fraction["valid"] == 1.0
    assert dataset_statistics(datasets["fb15k-237"]).to_many_fraction["valid"] == pytest.approx(
        0.766, abs=0.03
    )
    assert dataset_statistics(datasets["wn18rr"]).to_many_fraction["valid"] == pytest.approx(0.528, abs=0.05)


def test_registry_finds_the_shared_folder(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGREASON_DATA_DIR", str(shared_data))
    entry = find_dataset("FB15K-237")
    assert entry.source == "data_dir" and entry.path == shared_data / "fb15k-237"


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", root
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def test_real_source_definitions_download_offline(shared_data: Path, file_server, tmp_path: Path) -> None:
    """The archive (nations) and raw-file (wn18rr) source entries work on the exact benchmark files."""
    url, root = file_server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:  # laid out like ConvE's nations.tar.gz
        for split in SPLITS:
            tar.add(shared_data / "nations" / f"{split}.txt", arcname=f"{split}.txt")
    (root / "nations.tar.gz").write_bytes(buf.getvalue())
    folder = dl.download_dataset("nations", cache_dir=tmp_path / "cache", base_url=url, progress=False)
    for split in SPLITS:
        assert (folder / f"{split}.txt").read_bytes() == (
            shared_data / "nations" / f"{split}.txt"
        ).read_bytes()
    assert not (folder / ".archives").exists()

    (root / "wn").mkdir()
    for split in SPLITS:
        (root / "wn" / f"{split}.txt").write_bytes((shared_data / "wn18rr" / f"{split}.txt").read_bytes())
    folder = dl.download_dataset("wn18rr", cache_dir=tmp_path / "cache", base_url=f"{url}/wn", progress=False)
    loaded = load_dataset(str(folder))
    assert len(loaded.train) == 86835
