"""The SARCOS robot-arm inverse-dynamics data set: 7 regression tasks, the torques of joints 1..7."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from multitask.data.spec import BuiltinData, DataSpec
from multitask.datasets._download import DataFile, fetch, find, github_raw, write_checked
from multitask.datasets._long import long_spec, read_headerless
from multitask.errors import ConfigError, DataError

_REPO = "squall1988/multi-task-gradient-boosting"
_COMMIT = "4f75588884b587ea3e70639cd08708f6df2c5d76"
N_JOINTS = 7
N_SPLITS = 10

#: 21 inputs: joint positions, velocities and accelerations of the 7 joints (the GPML ordering)
FEATURES: list[str] = [f"{kind}_{j}" for kind in ("pos", "vel", "acc") for j in range(1, N_JOINTS + 1)]
_COLUMNS = [*FEATURES, "torque", "joint"]

_MAT_SHA = {
    1: "08dac7975765ca0d4364f38b42b34e6f301b869283ebf63d7a39f883841a2d70",
    2: "0fa7a99ae51c863f74bc09e79803bdb0f274d49e103faa13120e47a661679a1a",
    3: "a93fef34b49ec694f729bf104df0bf6a0e08cf14af1d5920db7f5e7889708762",
    4: "799e35c181c2cccea6325a70c12f58fd6fc78b544704689afd437475401ced82",
    5: "ea8c518fe797f56a67e7da0b6232b0f4b1dce6b7d0dccd5c98c735d72d52f7d6",
    6: "18caa89b29d289facbd419bca0435bb2a84efcb83553ea69aa68140d7edaeb88",
    7: "5f8080c2eb4abb9bc840c3fe4e605222995f214958e854a101bb616cf13b0d9a",
    8: "d9bfd2c37755653e4f727b606280a9d0fc71a9ffd214c7b0c4878c913bf33105",
    9: "4a30f56ed90b1cc5aad8e789a9b3ecfd3183887560310bcc714fdf037eadb929",
    10: "fcdfb6558bde90fd4307fe20ccc99af70b56e059ba1dbaddf9de5c5b18ba1ab0",
}
#: sha256 of the CSV splits (train, test) converted from the published .mat files (see :func:`_mat_to_csv`)
_CSV_SHA = {
    1: (
        "326d218cfc6fdaa90d3ff62a877887b442e8dc477cb9a79aa90b1794bc173437",
        "ea931755cc93962e3dbab19656987e6b8538d949825cd20fc7ed1c6ea74b26db",
    ),
    2: (
        "57a5684d4801ea005189454a5db5af497d55e9458e4f2592487d50412451712f",
        "73bd7e1548432dc966266a762473b09abdcbe7dd42068e03ac4e0914d649078d",
    ),
    3: (
        "56bd3f55df6adc0b63d9f80f74536b1c95dc0cb34c166bf6dfa9079670af43c0",
        "6910d107169a6633a635acd16fe87d2bd8e4e25e3df38d54f75473d5365c43ea",
    ),
    4: (
        "cfc1999f8d38729e7f4d5a499c22f67088551ea20b9ecd3d2ac0e60cb3389f50",
        "fbbf77d8270e209ef46e75773cd90cbe37e28757d21c2533c51a466f7f85b81a",
    ),
    5: (
        "df5306d66381931f5c9cdf19d708410adb5adeea19206ab7d966383b84eda90c",
        "b1c18650db27bb90597693a60d87b50c54eaed68060e3d4f24a73480dce9234c",
    ),
    6: (
        "f5574f0deb04035371c6b77b308d0e0484fd87b1b85b4fb3831c80f631a278a9",
        "d3ea5bd7757557a1194d60e169b15add5ebd032f4fe281ae618d40e3cfe5fc67",
    ),
    7: (
        "c0f65f9d29660f35d36a5a7f5234380cc9cf3a1db88bca0818c2fb232ccbf743",
        "2912293c4f5af08d53be02dff8732d1bb4bf0e3f701d59e1c3bdd579eb8596c3",
    ),
    8: (
        "96bdd643023c09cc13592a65d63c128f9639831d9b865769fd0622c263c0a393",
        "9823756bc0741ebb25031ba23a9ebb8f4ca6a895371c56e3961c4c25b95572c1",
    ),
    9: (
        "237f3b116fd5ebfd30fc706db966a925b0b79252d3304d3e84cc3762353d63d0",
        "d6496d47665a09218a5913d0eeb4b147fefd3443ac89abe8317c5afb3c3600b6",
    ),
    10: (
        "90995225e8ced858819ffeeee8e127d3f082af66cdb832b7c0c001215313b08b",
        "dadeaf293a25e7bd2ff8f9e2325d8a5cdd73d2d64ed943b87d6eda7ca749e0f9",
    ),
}

#: published files, by path in a data folder (sha256 of the bytes on GitHub)
FILES: dict[str, DataFile] = {
    "sarcos/sarcos_7task.csv": DataFile(
        "sarcos/sarcos_7task.csv",
        (github_raw(_REPO, _COMMIT, "data/sarcos/sub_sarcos.csv"),),
        "a300157eb958a659e57ce1a67862b2a96c4cac6c7acca6a1a5e8e2893dcafe5e",
    ),
}
for _k, _sha in _MAT_SHA.items():
    _path = f"sarcos/splits/sarcos_re{_k}.mat"
    FILES[_path] = DataFile(_path, (github_raw(_REPO, _COMMIT, f"data/sarcos_mat/sarcos_re{_k}.mat"),), _sha)

#: files derived from the .mat splits (no address of their own), by path in a data folder
DERIVED: dict[str, DataFile] = {
    f"sarcos/splits/{part}_{k}.csv": DataFile(f"sarcos/splits/{part}_{k}.csv", (), sha)
    for k, shas in _CSV_SHA.items()
    for part, sha in zip(("train", "test"), shas, strict=True)
}


def task_name(joint: int) -> str:
    return f"torque_{joint}"


def _mat_to_csv(mat_path: Path) -> dict[str, bytes]:
    """The train and test CSVs of a published ``sarcos_reK.mat``: rows task by task, values as ``%g``.

    The .mat holds cell arrays ``{train,test}_{input,output}`` of 7 tasks; each CSV row is the 21 inputs, the
    torque and the joint id (1..7), which is exactly how the CSV splits in a local data folder were made.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(mat_path)
    except (OSError, ValueError) as e:
        raise DataError(f"{mat_path}: not a readable .mat file ({e})") from e
    out: dict[str, bytes] = {}
    for part in ("train", "test"):
        buf = io.StringIO()
        for t in range(N_JOINTS):
            x = np.asarray(mat[f"{part}_input"][0, t], dtype=np.float64)
            y = np.asarray(mat[f"{part}_output"][0, t], dtype=np.float64).reshape(-1, 1)
            for row in np.hstack([x, y]):
                buf.write(",".join(f"{v:g}" for v in row) + f",{t + 1}\n")
        out[part] = buf.getvalue().encode()
    return out


def _read(path: Path) -> pd.DataFrame:
    return read_headerless(path, _COLUMNS, "joint")


def _spec(frame: pd.DataFrame, path: Path) -> DataSpec:
    return long_spec("sarcos", frame, path, FEATURES, "torque", "joint", range(1, N_JOINTS + 1), task_name)


def sarcos(
    data_dir: str | Path | None = None,
    *,
    split: int | None = None,
    download: bool = True,
    cache_dir: str | Path | None = None,
    verify: bool = True,
) -> BuiltinData:
    """SARCOS (robot-arm inverse dynamics): 7 regression tasks, the torques of joints 1..7; 21 inputs.

    Long layout: one source ``"sarcos"`` with the 21 inputs of :data:`FEATURES` (``pos_1..7``, ``vel_1..7``,
    ``acc_1..7``), the target ``"torque"`` and the task id ``"joint"`` (1..7); task ``torque_J`` owns the
    rows of joint ``J``. Each row carries one joint's torque (the 6,228-row subsample of Zhang & Li).

    Args:
        data_dir: a folder laid out as ``sarcos/sarcos_7task.csv[.gz]``, ``sarcos/splits/train_K.csv[.gz]``
            (or the published ``sarcos/splits/sarcos_reK.mat``); default ``$MULTITASK_DATA``, then the cache.
        split: ``K`` in 1..10 gives the fixed split ``K`` (4,671/1,557 rows in split 1; sizes per joint vary
            by split); ``None`` (default) the whole subsample as train and no test part. The splits are
            published as MATLAB files; downloaded ones are converted to the CSV layout in the cache.
        download: download missing files into the cache (default True).
        cache_dir: the cache folder (default ``$MULTITASK_CACHE``, else ``~/.cache/multitask``).
        verify: check each file's sha256 (default True).

    References:
        Vijayakumar & Schaal, "Locally weighted projection regression", ICML 2000 (the data); Zhang & Li,
        "Multi-task gradient boosting", CIKM 2019 (subsample and splits).
    """

    def get(path: str) -> Path:
        return fetch(
            FILES[path], data_dir=data_dir, cache_dir=cache_dir, download_missing=download, verify=verify
        )

    if split is None:
        path = get("sarcos/sarcos_7task.csv")
        return BuiltinData("sarcos", _spec(_read(path), path), None, _description(None))
    if split not in _MAT_SHA:
        raise ConfigError(f"sarcos: split must be 1..{N_SPLITS} or None, got {split!r}")
    paths: dict[str, Path] = {}
    for part in ("train", "test"):
        derived = DERIVED[f"sarcos/splits/{part}_{split}.csv"]
        found = find(derived, data_dir, cache_dir, verify)
        if found is None:
            csvs = _mat_to_csv(get(f"sarcos/splits/sarcos_re{split}.mat"))
            found = write_checked(derived, csvs[part], cache_dir)
        paths[part] = found
    train = _spec(_read(paths["train"]), paths["train"])
    test = train.with_frames({"sarcos": _read(paths["test"])}, {"sarcos": str(paths["test"])})
    return BuiltinData("sarcos", train, test, _description(split))


def _description(split: int | None) -> str:
    part = "whole subsample, no test part" if split is None else f"fixed split {split} of 10"
    return f"SARCOS (robot-arm inverse dynamics): 7 regression tasks, joint torques; {part}"
