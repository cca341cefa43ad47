"""Runs to report on: one of each kind of task, trained once per session, and a reader of report pages."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multitask.cli import main
from tests.conftest import make_wide


class Page(HTMLParser):
    """The figures of a report page: ``{section id: [alt text of each img.figure]}``, and the body's attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.figures: dict[str, list[str]] = {}
        self.sources: list[str] = []
        self.body: dict[str, str | None] = {}
        self._section: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self._section = a.get("id") or ""
            self.figures.setdefault(self._section, [])
        elif tag == "body":
            self.body = a
        elif tag == "img" and "figure" in (a.get("class") or "").split():
            assert self._section is not None, "a figure outside any section"
            self.figures[self._section].append(a.get("alt") or "")
            self.sources.append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None


def train(*args: str, deep: bool = True) -> None:
    assert main(["train", *(("--quiet", "--epochs", "2", "--batch-size", "64") if deep else ()), *args]) == 0


@pytest.fixture(scope="session")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deep run of a regression, a binary and a multiclass task, weighted by uncertainty weighting, with two baselines and
    the report written by ``train --report``."""
    folder = tmp_path_factory.mktemp("mixed")
    make_wide(240).to_csv(folder / "wide.csv", index=False)
    out = folder / "run"
    train("--data", str(folder / "wide.csv"), "--task", "y1:regression", "--task", "y2:binary",
          "--task", "cls:multiclass", "--balancer", "uncertainty", "--baseline", "stl,gbdt",
          "--out", str(out), "--report")
    return out


@pytest.fixture(scope="session")
def multilabel_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deep run of a multilabel task and a regression task, no baseline."""
    folder = tmp_path_factory.mktemp("multilabel")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 3))
    labels = np.array(["a", "b", "c"])
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2"])
    frame["tags"] = ["|".join(labels[row > 0]) or np.nan for row in x]
    frame["y"] = x.sum(axis=1)
    frame.to_csv(folder / "tags.csv", index=False)
    out = folder / "run"
    train("--data", str(folder / "tags.csv"), "--task", "tags:multilabel", "--task", "y:regression",
          "--out", str(out))
    return out
