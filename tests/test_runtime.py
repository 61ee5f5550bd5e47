"""Process-level allocator tuning (kgreason.runtime)."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from kgreason.runtime import OPT_OUT_VARIABLE, tune_cpu_allocator


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None, reason="needs Linux libc"
)
def test_tunes_glibc_and_honours_the_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPT_OUT_VARIABLE, raising=False)
    assert tune_cpu_allocator() is True
    assert tune_cpu_allocator() is True  # idempotent
    monkeypatch.setenv(OPT_OUT_VARIABLE, "1")
    assert tune_cpu_allocator() is False


def test_off_linux_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPT_OUT_VARIABLE, raising=False)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert tune_cpu_allocator() is False
