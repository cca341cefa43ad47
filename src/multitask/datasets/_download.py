"""Where built-in data files come from: a local folder, the cache, or a verified download.

Every file a data set reads is a :class:`DataFile`: its path inside a data folder (the layout of
``../shared/data``: ``school/school.csv``, ``census-income/census-income.test.gz``, ``mnist/...``), the
address(es) it is published at, and the sha256 of the bytes published there.

A file is looked for, in order, in

1. the folder given as ``data_dir`` (``--data-dir``), else the folder named by ``$MULTITASK_DATA``;
2. the cache folder: ``cache_dir``, else ``$MULTITASK_CACHE``, else ``~/.cache/multitask``;

and, when found nowhere and ``download=True``, downloaded into the cache by :mod:`pooch`. A file published uncompressed
may also lie in a folder gzip-compressed (``school/school.csv.gz``); it is then checked over its
decompressed bytes. Downloads (:func:`pooch.retrieve`) go to a temporary file next to their destination, are
checked against the sha256 and only then renamed into place, so that a failed or corrupted download leaves
nothing behind.
Local files are checked too (``verify=True``); a file's hash is computed once per process and remembered
by path, size and modification time.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from multitask.errors import DataError

logger = logging.getLogger(__name__)

ENV_DATA = "MULTITASK_DATA"
ENV_CACHE = "MULTITASK_CACHE"
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0

#: remembered hashes: (path, size, mtime_ns, gunzip) -> sha256
_HASHES: dict[tuple[str, int, int, bool], str] = {}


@dataclass(frozen=True)
class DataFile:
    """One published file: its path in a data folder, the addresses it is published at, and its sha256."""

    path: str  # "/"-separated, relative to a data folder
    urls: tuple[str, ...]  # tried in order (mirrors)
    sha256: str  # of the bytes published at ``urls``


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$MULTITASK_CACHE``, else ``~/.cache/multitask``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "multitask"


def data_folders(data_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> list[Path]:
    """Folders searched, in order: ``data_dir`` (else ``$MULTITASK_DATA``), then the cache folder."""
    folders: list[Path] = []
    if data_dir is not None:
        folders.append(Path(data_dir).expanduser())
    elif os.environ.get(ENV_DATA):
        folders.append(Path(os.environ[ENV_DATA]).expanduser())
    folders.append(cache_folder(cache_dir))
    return folders


def sha256_of(path: Path, gunzip: bool = False) -> str:
    """The sha256 of a file's bytes (of its decompressed bytes with ``gunzip``), remembered per process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, gunzip)
    if key not in _HASHES:
        digest = hashlib.sha256()
        try:
            with gzip.open(path, "rb") if gunzip else path.open("rb") as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    digest.update(chunk)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: cannot be read ({e})") from e
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _candidates(folder: Path, file: DataFile) -> Iterable[tuple[Path, bool]]:
    """Where ``file`` may lie in ``folder``: as published, or gzip-compressed (checked decompressed)."""
    yield folder / file.path, False
    if not file.path.endswith(".gz"):
        yield folder / (file.path + ".gz"), True


def find(
    file: DataFile,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    verify: bool = True,
) -> Path | None:
    """The first copy of ``file`` in the data folders (checked when ``verify``), or None."""
    for folder in data_folders(data_dir, cache_dir):
        for path, gunzipped in _candidates(folder, file):
            if not path.is_file():
                continue
            if verify:
                got = sha256_of(path, gunzip=gunzipped)
                if got != file.sha256:
                    what = "decompressed content" if gunzipped else "content"
                    origin = f" (the file published at {file.urls[0]})" if file.urls else ""
                    raise DataError(
                        f"{path}: sha256 of its {what} is {got}, expected {file.sha256}{origin}; "
                        "replace or delete it"
                    )
            logger.debug("using %s", path)
            return path
    return None


def download(file: DataFile, cache_dir: str | Path | None = None) -> Path:
    """Download ``file`` into the cache folder with :func:`pooch.retrieve`, checking its sha256; returns its
    path there. The addresses are tried in order; a download whose hash differs is deleted, not kept."""
    import pooch

    if not file.urls:
        raise DataError(f"{file.path}: no address to download it from")
    target = cache_folder(cache_dir) / file.path
    target.parent.mkdir(parents=True, exist_ok=True)
    pooch.get_logger().setLevel(logging.WARNING)  # this module says what it downloads, at INFO
    errors: list[str] = []
    for url in file.urls:
        logger.info("downloading %s to %s", url, target)
        try:
            path = pooch.retrieve(
                url,
                known_hash=f"sha256:{file.sha256}",
                fname=target.name,
                path=target.parent,
                downloader=pooch.HTTPDownloader(timeout=_TIMEOUT_S, progressbar=False),
            )
            return Path(path)
        except ValueError as e:  # pooch: the downloaded bytes have another hash (it deleted them)
            match = re.search(r"but got ([0-9a-f]{64})", str(e))
            actual = match.group(1) if match else f"other than expected ({e})"
            raise DataError(f"{url}: downloaded file has sha256 {actual}, expected {file.sha256}; not kept") from e
        except OSError as e:  # requests' errors (HTTP status, connection, timeout) are OSErrors
            errors.append(f"{url}: {e}")
            logger.warning("download failed: %s: %s", url, e)
    raise DataError(f"{file.path}: could not be downloaded ({'; '.join(errors)})")


def fetch(
    file: DataFile,
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download_missing: bool = True,
    verify: bool = True,
) -> Path:
    """A local, checked copy of ``file``: found in the data folders, else downloaded into the cache."""
    found = find(file, data_dir, cache_dir, verify)
    if found is not None:
        return found
    searched = ", ".join(str(f) for f in data_folders(data_dir, cache_dir))
    if not download_missing:
        raise DataError(
            f"{file.path}: not found in {searched}, and download=False; point --data-dir (or "
            f"${ENV_DATA}) at a folder holding {file.path} (or {file.path}.gz), or allow the download"
            + (f" from {file.urls[0]}" if file.urls else "")
        )
    return download(file, cache_dir)


def github_raw(repo: str, commit: str, path: str) -> str:
    """The raw.githubusercontent.com address of ``path`` in ``repo`` at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def write_checked(file: DataFile, data: bytes, cache_dir: str | Path | None = None) -> Path:
    """Write ``data`` (a file derived from a download) into the cache as ``file``, checking its sha256."""
    got = hashlib.sha256(data).hexdigest()
    if got != file.sha256:
        raise DataError(f"{file.path}: the converted file has sha256 {got}, expected {file.sha256}; not kept")
    target = cache_folder(cache_dir) / file.path
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return target
