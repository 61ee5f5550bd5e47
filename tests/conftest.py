"""Shared fixtures. Real-data tests read the benchmark KGs from KGREASON_DATA_DIR (default ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("KGREASON_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The benchmark data folder; in CI (``CI`` set) a missing folder fails instead of skipping."""
    path = data_dir()
    if not (path / "umls" / "train.txt").exists():
        if os.environ.get("CI"):
            pytest.fail(f"benchmark data not found at {path} (set KGREASON_DATA_DIR)")
        pytest.skip(f"benchmark data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
