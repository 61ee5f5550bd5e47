from __future__ import annotations

from pathlib import Path

import pytest

from kgreason.data import Dataset
from kgreason.data import registry as reg
from kgreason.data.registry import (
    DatasetEntry,
    DatasetNotDownloadedError,
    find_dataset,
    list_datasets,
    load_dataset,
)
from kgreason.registry import Registry, UnknownNameError

TRAIN = "a\tr\tb\nb\tr\tc\nc\ts\ta\n"


def make_dataset(
    root: Path, name: str, train: str = TRAIN, valid: str = "a\tr\tc\n", test: str = "b\ts\ta\n"
) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "train.txt").write_text(train)
    (d / "valid.txt").write_text(valid)
    (d / "test.txt").write_text(test)
    return d


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An empty KGREASON_DATA_DIR and KGREASON_CACHE_DIR (the user's real ones are never touched)."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    cache.mkdir()
    monkeypatch.setenv("KGREASON_DATA_DIR", str(data))
    monkeypatch.setenv("KGREASON_CACHE_DIR", str(cache))
    return data, cache


def by_name(entries: list[DatasetEntry]) -> dict[str, DatasetEntry]:
    return {e.name: e for e in entries}


def test_list_datasets_sources_and_precedence(dirs: tuple[Path, Path]) -> None:
    data, cache = dirs
    make_dataset(data, "toy")
    make_dataset(data, "umls")  # shadows the downloadable benchmark
    make_dataset(cache, "toy")  # shadowed by the data_dir copy
    make_dataset(cache, "wn18rr")
    (data / "incomplete").mkdir()  # no split files: not a dataset
    (data / "incomplete" / "train.txt").write_text(TRAIN)
    entries = list_datasets()
    names = [e.name for e in entries]
    assert len(names) == len(set(names))
    e = by_name(entries)
    assert e["toy"] == DatasetEntry("toy", "data_dir", data / "toy")
    assert e["umls"].source == "data_dir"
    assert e["wn18rr"] == DatasetEntry("wn18rr", "cache", cache / "wn18rr")
    assert e["family"] == DatasetEntry("family", "builtin", None)
    assert e["fb15k-237"].source == "downloadable" and e["nell-995"].source == "downloadable"
    assert "incomplete" not in e
    sources = [x.source for x in entries]
    assert sources == sorted(sources, key=["data_dir", "cache", "builtin", "downloadable"].index)


def test_data_dir_argument_overrides_environment(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    make_dataset(other, "elsewhere")
    assert "elsewhere" not in by_name(list_datasets())
    assert by_name(list_datasets(other))["elsewhere"].source == "data_dir"
    ds = load_dataset("elsewhere", data_dir=other)
    assert ds.name == "elsewhere" and ds.metadata["source"] == "data_dir"


def test_environment_is_read_at_call_time(dirs: tuple[Path, Path], tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(UnknownNameError):
        find_dataset("late")
    later = tmp_path / "later"
    make_dataset(later, "late")
    monkeypatch.setenv("KGREASON_DATA_DIR", str(later))
    assert find_dataset("late").path == later / "late"


def test_load_by_name_is_case_and_dash_insensitive(dirs: tuple[Path, Path]) -> None:
    data, _ = dirs
    make_dataset(data, "FB-Toy", valid="a\tr\tc\nz\tr\ta\n")
    ds = load_dataset("fb_toy")
    assert isinstance(ds, Dataset) and ds.name == "FB-Toy"
    assert ds.entities.labels == ["a", "b", "c"] and ds.train.shape == (3, 3)
    assert ds.reports["valid"].num_dropped_unseen == 1
    assert ds.metadata == {"source": "data_dir", "path": str((data / "FB-Toy").resolve())}
    with pytest.raises(ValueError, match="not seen in the training split"):
        load_dataset("FB-Toy", unseen="error")


def test_column_order_is_passed_through(dirs: tuple[Path, Path]) -> None:
    data, _ = dirs
    make_dataset(data, "mhkg", train="a\tb\tr\nb\tc\tr\n", valid="a\tc\tr\n", test="c\ta\tr\n")
    ds = load_dataset("mhkg", column_order="htr")
    assert ds.relations.labels == ["r"] and ds.entities.labels == ["a", "b", "c"]


def test_load_by_path(dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_dataset(tmp_path / "somewhere", "mine")
    assert load_dataset(str(folder)).name == "mine"
    assert load_dataset(folder).metadata["source"] == "path"
    monkeypatch.chdir(tmp_path / "somewhere")
    assert load_dataset("./mine").name == "mine"
    assert load_dataset("mine").name == "mine"  # a bare folder name in the working directory
    with pytest.raises(FileNotFoundError, match="missing valid.txt, test.txt"):
        (tmp_path / "half").mkdir()
        (tmp_path / "half" / "train.txt").write_text(TRAIN)
        load_dataset(tmp_path / "half")
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_dataset(tmp_path / "nope")


def test_unknown_name_suggests_and_lists(dirs: tuple[Path, Path]) -> None:
    data, _ = dirs
    make_dataset(data, "toy")
    with pytest.raises(UnknownNameError) as info:
        load_dataset("kinshp")
    msg = str(info.value)
    assert "Unknown dataset 'kinshp'" in msg and "Did you mean: 'kinship'" in msg
    assert "Known:" in msg and "toy" in msg and "family" in msg and "fb15k-237" in msg
    assert str(data) in msg


def test_downloadable_needs_download_flag(dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, cache = dirs
    with pytest.raises(DatasetNotDownloadedError, match=r"'nations' is not in the cache .*download=True"):
        load_dataset("nations")
    calls: list[str] = []

    def fake_download(name: str) -> Path:  # stands in for the network; test_download covers the real one
        calls.append(name)
        return make_dataset(cache, name)

    monkeypatch.setattr(reg, "download_dataset", fake_download)
    ds = load_dataset("Nations", download=True)
    assert calls == ["nations"] and ds.name == "nations" and ds.metadata["source"] == "cache"
    assert find_dataset("nations").source == "cache"
    load_dataset("nations", download=True)  # now cached: no second download
    assert calls == ["nations"]


def test_builtin_factories_get_their_kwargs(dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    data, _ = dirs
    fake = Registry("built-in dataset")
    seen: list[dict] = []

    def tiny(**kwargs: object) -> Dataset:
        import torch

        seen.append(kwargs)
        t = torch.tensor([[0, 0, 1]])
        return Dataset.from_tensors("tiny", t, t, t)

    fake.add("tiny", tiny)
    monkeypatch.setattr(reg, "BUILTIN_DATASETS", fake)
    ds = load_dataset("TINY", size=3, seed=7)
    assert seen == [{"size": 3, "seed": 7}] and ds.metadata["source"] == "builtin"
    make_dataset(data, "toy")
    with pytest.raises(TypeError, match="size only apply to built-in"):
        load_dataset("toy", size=3)


def test_family_builtin(dirs: tuple[Path, Path]) -> None:
    pytest.importorskip("kgreason.data.family", reason="kgreason.data.family not written yet")
    a = load_dataset("family", size="tiny", seed=0)
    b = load_dataset("Family", size="tiny", seed=0)
    assert a.num_entities > 0 and a.num_relations > 0 and len(a.train) > 0
    assert a.metadata["source"] == "builtin"
    assert a.train.equal(b.train)  # deterministic for a seed


def test_generated_names_load_their_generator(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``family-tiny`` -- the name ``build_family_dataset("tiny")`` gives its dataset -- loads that dataset again,
    so runs trained on a generated dataset can be re-evaluated by the name in their config."""
    from kgreason.data.registry import sized_builtin

    assert sized_builtin("family-tiny") == ("family", "tiny")
    assert sized_builtin("Family-300") == ("family", 300)
    assert (
        sized_builtin("family") is None
        and sized_builtin("fb15k-237") is None
        and sized_builtin("family-") is None
    )
    fake = Registry("built-in dataset")
    seen: list[dict] = []

    def gen(**kwargs: object) -> Dataset:
        import torch

        seen.append(kwargs)
        t = torch.tensor([[0, 0, 1]])
        return Dataset.from_tensors(f"gen-{kwargs.get('size')}", t, t, t)

    fake.add("gen", gen)
    monkeypatch.setattr(reg, "BUILTIN_DATASETS", fake)
    assert find_dataset("gen-small").source == "builtin"
    ds = load_dataset("gen-small", seed=3)
    assert seen == [{"size": "small", "seed": 3}] and ds.name == "gen-small"
    load_dataset("gen-40")
    assert seen[-1] == {"size": 40}
    with pytest.raises(UnknownNameError):
        load_dataset("other-small")
