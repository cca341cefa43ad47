"""Fixtures for the data-set tests: no data folder leaks in from the environment; the shared data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MULTITASK_DATA", raising=False)
    monkeypatch.setenv("MULTITASK_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data folder {SHARED_DATA} is absent (it holds the real data sets)")
    return SHARED_DATA
