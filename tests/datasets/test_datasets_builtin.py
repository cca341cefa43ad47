"""Synthetic data, the MultiMNIST construction on generated digits, and the registry entries."""

from __future__ import annotations

import gzip
import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from multitask.datasets import _multimnist, multimnist, synthetic
from multitask.datasets._download import DataFile
from multitask.datasets._synthetic import true_weights
from multitask.errors import ConfigError, DataError
from multitask.registry import DATASETS


def test_synthetic_is_deterministic_and_fast() -> None:
    start = time.perf_counter()
    a = synthetic(seed=5)
    assert time.perf_counter() - start < 1.0
    b, c = synthetic(seed=5), synthetic(seed=6)
    frame = a.train.sources["table"].frame
    assert frame.equals(b.train.sources["table"].frame)
    assert not frame.equals(c.train.sources["table"].frame)
    assert a.test is not None and b.test is not None
    assert a.test.sources["table"].frame.equals(b.test.sources["table"].frame)


def test_synthetic_layout_and_missing_labels() -> None:
    data = synthetic(400, n_features=8, n_test=100, missing=0.25, seed=0)
    spec = data.train
    frame = spec.sources["table"].frame
    assert frame.shape == (400, 8 + 6)
    assert spec.feature_columns("table") == [f"x{i}" for i in range(8)]
    assert [t.kind for t in spec.tasks] == [
        "regression",
        "regression",
        "binary",
        "regression",
        "binary",
        "regression",
    ]
    for task in spec.task_names:
        assert 0.15 < frame[task].isna().mean() < 0.35
    assert set(frame["a3"].dropna().unique()) == {0.0, 1.0}
    assert data.test is not None
    test = data.test.sources["table"].frame
    assert len(test) == 100 and not test[spec.task_names].isna().any().any()
    assert synthetic(50, n_test=0).test is None
    with pytest.raises(ConfigError, match="missing"):
        synthetic(missing=1.0)


def test_synthetic_task_structure() -> None:
    w = true_weights(20, seed=0)

    def cos(a: str, b: str) -> float:
        return float(w[a] @ w[b] / np.linalg.norm(w[a]) / np.linalg.norm(w[b]))

    assert min(cos("a1", "a2"), cos("a1", "a3"), cos("b1", "b2")) > 0.8
    assert max(abs(cos("a1", "b1")), abs(cos("a1", "unrelated")), abs(cos("b2", "unrelated"))) < 0.3


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_multimnist_construction(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    images[0] = 255  # a full square
    labels = np.array([7, 1, 2, 3], dtype=np.uint8)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    _idx(folder / "images.gz", images)
    _idx(folder / "labels.gz", labels)
    for name, key in (
        ("images.gz", "mnist/t10k-images-idx3-ubyte.gz"),
        ("labels.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
    ):
        (folder / name).rename(folder / key.split("/")[1])
        sha = hashlib.sha256((folder / key.split("/")[1]).read_bytes()).hexdigest()
        monkeypatch.setitem(_multimnist.FILES, key, DataFile(key, ("http://127.0.0.1:9/unused",), sha))
    data = multimnist(tmp_path / "data", n_images=12, seed=0, download=False)
    frame = data.train.sources["images"].frame
    pixels = frame[data.train.feature_columns("images")].to_numpy().reshape(-1, 28, 28)
    left, right = frame["left"].to_numpy(), frame["right"].to_numpy()
    assert len(frame) == 12
    assert not np.any((left == right) & (left != 7) & (right != 7) & (left == 0))  # labels are MNIST labels
    full_left = left == 7
    assert (
        full_left.any() and (right == 7).any() and not np.any(full_left & (right == 7))
    )  # two different digits
    # the full square top-left covers 28/36 of the canvas: the resized top-left is lit, the bottom-right corner dark
    assert np.all(pixels[full_left][:, :20, :20] > 0.99) and np.all(pixels[full_left][:, 24:, 24:] < 0.01)
    # placed bottom-right, it lights the bottom-right corner and leaves the top-left corner dark
    full_right = right == 7
    assert np.all(pixels[full_right][:, 8:, 8:] > 0.99) and np.all(pixels[full_right][:, :4, :4] < 0.01)


def test_read_idx_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"not an idx file"))
    with pytest.raises(DataError, match=r"bad\.gz: not an idx file"):
        _multimnist.read_idx(bad)


@pytest.mark.parametrize("name", DATASETS.names())
def test_registry_entries_resolve_with_a_summary(name: str) -> None:
    loader = DATASETS.get(name)
    assert callable(loader)
    assert DATASETS.entry(name).summary
