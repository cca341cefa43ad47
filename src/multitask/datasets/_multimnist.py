"""MultiMNIST: two MNIST digits overlaid in one image; tasks "left" and "right" (10 classes each)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from multitask.data.spec import BuiltinData, DataSpec, Source
from multitask.datasets._download import DataFile, fetch
from multitask.errors import ConfigError, DataError
from multitask.tasks import Task

_MIRRORS = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
CANVAS = 36  # the two digits are placed on a 36x36 canvas...
SIZE = 28  # ...which is resized to 28x28
OFFSET = CANVAS - 28  # the second digit's top-left corner: bottom-right of the canvas


def _mnist(name: str, sha256: str) -> DataFile:
    return DataFile(f"mnist/{name}", tuple(m + name for m in _MIRRORS), sha256)


#: published files, by path in a data folder (sha256 of the gzip files as distributed)
FILES: dict[str, DataFile] = {
    "mnist/t10k-images-idx3-ubyte.gz": _mnist(
        "t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "mnist/t10k-labels-idx1-ubyte.gz": _mnist(
        "t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}
PIXELS: list[str] = [f"p{i}" for i in range(SIZE * SIZE)]


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip-compressed) as a uint8 array: ``(n, rows, cols)`` images or ``(n,)`` labels."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path}: not an idx file of unsigned bytes")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims}, but the file holds {body.size} values")
    return body.reshape(dims)


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of linear interpolation between pixel centres (edges clamped)."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    lo = np.clip(np.floor(centres).astype(int), 0, n_in - 1)
    hi = np.clip(lo + 1, 0, n_in - 1)
    frac = np.clip(centres - lo, 0.0, 1.0)
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1.0 - frac
    m[np.arange(n_out), hi] += frac
    return m


def overlay(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``(n, 28, 28)`` float32 in [0, 1]: ``first`` top-left and ``second`` bottom-right on a 36x36 canvas,
    combined by pixel-wise max, then resized (bilinear) to 28x28."""
    n = first.shape[0]
    canvas = np.zeros((n, CANVAS, CANVAS), dtype=np.float64)
    canvas[:, :28, :28] = first / 255.0
    canvas[:, OFFSET:, OFFSET:] = np.maximum(canvas[:, OFFSET:, OFFSET:], second / 255.0)
    r = _resize_matrix(CANVAS, SIZE)
    out = np.einsum("ij,njk,lk->nil", r, canvas, r)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def multimnist(
    data_dir: str | Path | None = None,
    *,
    n_images: int = 10_000,
    seed: int = 0,
    download: bool = True,
    cache_dir: str | Path | None = None,
    verify: bool = True,
) -> BuiltinData:
    """MultiMNIST: two overlaid MNIST digits per 28x28 image; multiclass tasks "left" and "right" (10 each).

    Built from the MNIST test digits as in Sener & Koltun (2018): a digit is put at the top-left of a 36x36
    canvas and another, different one at the bottom-right (offset 8, 8), the two are combined by pixel-wise
    max, and the canvas is resized to 28x28 (bilinear). Task ``"left"`` is the top-left digit's class, task
    ``"right"`` the bottom-right one's. Deterministic for a given ``seed``: the top-left digits are the
    first ``n_images`` of a seeded permutation (drawn with replacement beyond 10,000), the bottom-right
    ones are drawn uniformly among the other digits.

    Wide layout: one source ``"images"`` with float32 pixel columns ``p0..p783`` in [0, 1] (C-order,
    ``image_shape=(1, 28, 28)``) and int64 target columns ``"left"`` and ``"right"``. No test part.

    Args:
        data_dir: a folder holding ``mnist/t10k-images-idx3-ubyte.gz`` and ``mnist/t10k-labels-idx1-ubyte.gz``;
            default ``$MULTITASK_DATA``, then the cache.
        n_images: how many images to build (default 10,000).
        seed: seed of the pairing (default 0).
        download: download missing files into the cache (default True).
        cache_dir: the cache folder (default ``$MULTITASK_CACHE``, else ``~/.cache/multitask``).
        verify: check each file's sha256 (default True).

    References:
        Sener & Koltun, "Multi-task learning as multi-objective optimization", NeurIPS 2018; Sabour, Frosst &
        Hinton, "Dynamic routing between capsules", NeurIPS 2017 (MultiMNIST). MNIST: LeCun, Cortes & Burges
        (CC BY-SA 3.0).
    """
    if n_images < 1:
        raise ConfigError(f"multimnist: n_images must be >= 1, got {n_images}")

    def get(path: str) -> Path:
        return fetch(
            FILES[path], data_dir=data_dir, cache_dir=cache_dir, download_missing=download, verify=verify
        )

    images_path = get("mnist/t10k-images-idx3-ubyte.gz")
    labels_path = get("mnist/t10k-labels-idx1-ubyte.gz")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise DataError(f"{images_path}, {labels_path}: expected (n, 28, 28) images and n labels")
    n = images.shape[0]
    if n < 2:
        raise DataError(f"{images_path}: at least 2 digits are needed, found {n}")
    rng = np.random.default_rng(seed)
    first = rng.permutation(n)[:n_images] if n_images <= n else rng.integers(0, n, n_images)
    second = (first + rng.integers(1, n, first.size)) % n  # uniform among the other digits
    pixels = overlay(images[first], images[second]).reshape(first.size, -1)
    frame = pd.DataFrame(pixels, columns=PIXELS)
    frame["left"] = labels[first].astype(np.int64)
    frame["right"] = labels[second].astype(np.int64)
    tasks = [Task("left", "multiclass"), Task("right", "multiclass")]
    train = DataSpec(
        tasks=tasks,
        sources={
            "images": Source(
                "images", frame, list(PIXELS), image_shape=(1, SIZE, SIZE), path=str(images_path)
            )
        },
        task_source={"left": "images", "right": "images"},
        target_column={"left": "left", "right": "right"},
    )
    description = (
        f"MultiMNIST: {first.size} images of two overlaid MNIST test digits (seed {seed}); no test part"
    )
    return BuiltinData("multimnist", train, None, description)
