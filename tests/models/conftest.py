"""Fixtures of the model tests: every registered model, with and without inverse relations."""

from __future__ import annotations

import pytest
from kge_helpers import MODEL_NAMES


@pytest.fixture(params=MODEL_NAMES)
def model_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=[False, True], ids=["direct", "inverse"])
def inverse(request: pytest.FixtureRequest) -> bool:
    return request.param
