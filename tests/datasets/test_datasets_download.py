"""Where data files come from: local folders, the cache, and checked downloads from a local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.io import savemat

from multitask.datasets import _sarcos, _school, sarcos, school
from multitask.datasets._download import DataFile
from multitask.errors import DataError


@dataclass
class Server:
    """A static file server on 127.0.0.1 over ``root``; ``hits`` lists the paths requested."""

    root: Path
    url: str = ""
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    state = Server(root)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _school_csv(n_per_school: int = 4, n_schools: int = 3) -> bytes:
    rng = np.random.default_rng(0)
    lines = []
    for s in range(1, n_schools + 1):
        for _ in range(n_per_school):
            features = [*rng.integers(0, 2, 27).tolist(), 1]
            lines.append(",".join(str(v) for v in [*features, int(rng.integers(1, 60)), s]))
    return ("\n".join(lines) + "\n").encode()


def _serve_school(
    monkeypatch: pytest.MonkeyPatch, server: Server, content: bytes, sha256: str | None = None
) -> str:
    (server.root / "school.csv").write_bytes(content)
    url = f"{server.url}/school.csv"
    sha = sha256 or hashlib.sha256(content).hexdigest()
    monkeypatch.setitem(_school.FILES, "school/school.csv", DataFile("school/school.csv", (url,), sha))
    return url


def test_download_is_checked_and_cached(
    monkeypatch: pytest.MonkeyPatch, server: Server, tmp_path: Path
) -> None:
    _serve_school(monkeypatch, server, _school_csv())
    cache = tmp_path / "cache"
    data = school(cache_dir=cache)
    assert server.hits == ["/school.csv"]
    assert (cache / "school" / "school.csv").read_bytes() == _school_csv()
    frame = data.train.sources["school"].frame
    assert frame.shape == (12, 29)
    assert data.test is None
    again = school(cache_dir=cache)
    assert server.hits == ["/school.csv"]  # served from the cache
    assert again.train.sources["school"].frame.equals(frame)


def test_checksum_mismatch_names_url_and_hashes_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, server: Server, tmp_path: Path
) -> None:
    content = _school_csv()
    url = _serve_school(monkeypatch, server, content, sha256="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        school(cache_dir=cache)
    message = str(err.value)
    assert url in message and "0" * 64 in message and hashlib.sha256(content).hexdigest() in message
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_missing_file_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"school/school\.csv.*--data-dir.*MULTITASK_DATA"):
        school(cache_dir=tmp_path / "empty", download=False)


def test_mirrors_are_tried_in_order(monkeypatch: pytest.MonkeyPatch, server: Server, tmp_path: Path) -> None:
    content = _school_csv()
    (server.root / "school.csv").write_bytes(content)
    urls = (f"{server.url}/missing.csv", f"{server.url}/school.csv")
    file = DataFile("school/school.csv", urls, hashlib.sha256(content).hexdigest())
    monkeypatch.setitem(_school.FILES, "school/school.csv", file)
    school(cache_dir=tmp_path / "cache")
    assert server.hits == ["/missing.csv", "/school.csv"]


def test_local_folder_gzip_copy_is_checked_decompressed(
    monkeypatch: pytest.MonkeyPatch, server: Server, tmp_path: Path
) -> None:
    content = _school_csv()
    _serve_school(monkeypatch, server, content)
    folder = tmp_path / "data"
    (folder / "school").mkdir(parents=True)
    (folder / "school" / "school.csv.gz").write_bytes(gzip.compress(content))
    data = school(folder, cache_dir=tmp_path / "cache", download=False)
    assert len(data.train.sources["school"].frame) == 12
    assert server.hits == []

    other = tmp_path / "other"
    (other / "school").mkdir(parents=True)
    (other / "school" / "school.csv.gz").write_bytes(gzip.compress(content + b"0," * 28 + b"7,1\n"))
    with pytest.raises(DataError, match=r"school\.csv\.gz: sha256 of its decompressed content"):
        school(other, cache_dir=tmp_path / "cache")
    school(other, cache_dir=tmp_path / "cache", verify=False)  # unchecked, on request


def test_data_dir_over_env_over_cache(
    monkeypatch: pytest.MonkeyPatch, server: Server, tmp_path: Path
) -> None:
    small, big = _school_csv(2), _school_csv(5)
    _serve_school(monkeypatch, server, small)
    for name, content in (("env", small), ("explicit", small), ("cache", small)):
        (tmp_path / name / "school").mkdir(parents=True)
        (tmp_path / name / "school" / "school.csv").write_bytes(content)
    monkeypatch.setenv("MULTITASK_DATA", str(tmp_path / "env"))
    assert school(cache_dir=tmp_path / "cache").train.sources["school"].path.startswith(str(tmp_path / "env"))
    explicit = school(tmp_path / "explicit", cache_dir=tmp_path / "cache")
    assert explicit.train.sources["school"].path.startswith(str(tmp_path / "explicit"))
    monkeypatch.delenv("MULTITASK_DATA")
    assert (
        school(cache_dir=tmp_path / "cache").train.sources["school"].path.startswith(str(tmp_path / "cache"))
    )
    monkeypatch.setenv("MULTITASK_CACHE", str(tmp_path / "cache"))
    assert school().train.sources["school"].path.startswith(str(tmp_path / "cache"))
    assert server.hits == []
    assert big != small


def test_sarcos_split_is_converted_from_the_published_mat(
    monkeypatch: pytest.MonkeyPatch, server: Server, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    sizes = {"train": [3, 2, 2, 1, 2, 2, 3], "test": [1, 1, 1, 1, 1, 1, 2]}
    mat: dict[str, np.ndarray] = {}
    expected: dict[str, bytes] = {}
    for part, counts in sizes.items():
        inputs = np.empty((1, 7), dtype=object)
        outputs = np.empty((1, 7), dtype=object)
        lines = []
        for t, n in enumerate(counts):
            x = np.round(rng.standard_normal((n, 21)), 3)
            y = np.round(rng.standard_normal((n, 1)) * 10, 2)
            inputs[0, t], outputs[0, t] = x, y
            lines += [",".join(f"{v:g}" for v in [*x[i], y[i, 0]]) + f",{t + 1}\n" for i in range(n)]
        mat[f"{part}_input"], mat[f"{part}_output"] = inputs, outputs
        expected[part] = "".join(lines).encode()
    savemat(server.root / "re2.mat", mat)
    mat_sha = hashlib.sha256((server.root / "re2.mat").read_bytes()).hexdigest()
    key = "sarcos/splits/sarcos_re2.mat"
    monkeypatch.setitem(_sarcos.FILES, key, DataFile(key, (f"{server.url}/re2.mat",), mat_sha))
    for part in ("train", "test"):
        path = f"sarcos/splits/{part}_2.csv"
        monkeypatch.setitem(
            _sarcos.DERIVED, path, DataFile(path, (), hashlib.sha256(expected[part]).hexdigest())
        )
    cache = tmp_path / "cache"
    data = sarcos(split=2, cache_dir=cache)
    assert (cache / "sarcos" / "splits" / "train_2.csv").read_bytes() == expected["train"]
    assert len(data.train.sources["sarcos"].frame) == 15
    assert data.test is not None and len(data.test.sources["sarcos"].frame) == 8
    assert data.train.sources["sarcos"].frame.groupby("joint").size().tolist() == sizes["train"]
    sarcos(split=2, cache_dir=cache)
    assert server.hits == ["/re2.mat"]  # the converted splits are cached


def test_failed_downloads_name_every_address_and_leave_nothing(
    monkeypatch: pytest.MonkeyPatch, server: Server, tmp_path: Path
) -> None:
    urls = (f"{server.url}/missing.csv", "http://127.0.0.1:9/closed.csv")  # a 404, then a refused connection
    monkeypatch.setitem(_school.FILES, "school/school.csv", DataFile("school/school.csv", urls, "0" * 64))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"school/school\.csv: could not be downloaded") as err:
        school(cache_dir=cache)
    assert all(url in str(err.value) for url in urls)
    assert server.hits == ["/missing.csv"]
    assert [p for p in cache.rglob("*") if p.is_file()] == []
