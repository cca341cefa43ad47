"""The School data set (Inner London Education Authority exam scores): 139 regression tasks, one per school."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from multitask.data.spec import BuiltinData, DataSpec
from multitask.datasets._download import DataFile, fetch, github_raw
from multitask.datasets._long import long_spec, read_headerless
from multitask.errors import ConfigError

_REPO = "squall1988/multi-task-gradient-boosting"
_COMMIT = "4f75588884b587ea3e70639cd08708f6df2c5d76"
N_SCHOOLS = 139
N_SPLITS = 10

#: the 28 feature columns of the MALSAR encoding, in file order (the 28th is the constant 1, dropped).
#: Level names follow the ILEA coding order (years 1985-87; ethnic groups ESWI, African, Arab, Bangladeshi,
#: Caribbean, Greek, Indian, Pakistani, S.E. Asian, Turkish, other; school gender mixed/boys/girls;
#: denomination maintained/Church of England/Roman Catholic); the file itself carries no names.
FEATURES: list[str] = [
    "year_1985",
    "year_1986",
    "year_1987",
    "school_fsm_pct",  # % of the school's pupils eligible for free school meals (that year)
    "school_vr1_pct",  # % of the school's pupils in verbal-reasoning band 1 (that year)
    "gender_1",
    "gender_2",
    "vr_band_1",
    "vr_band_2",
    "vr_band_3",
    "ethnic_eswi",
    "ethnic_african",
    "ethnic_arab",
    "ethnic_bangladeshi",
    "ethnic_caribbean",
    "ethnic_greek",
    "ethnic_indian",
    "ethnic_pakistani",
    "ethnic_se_asian",
    "ethnic_turkish",
    "ethnic_other",
    "school_mixed",
    "school_boys",
    "school_girls",
    "school_maintained",
    "school_church_of_england",
    "school_roman_catholic",
]
_COLUMNS = [*FEATURES, "bias", "score", "school"]


def _file(path: str, upstream: str, sha256: str) -> DataFile:
    return DataFile(path, (github_raw(_REPO, _COMMIT, upstream),), sha256)


_SPLIT_SHA = {
    1: (
        "054d7994c6709726cfb14a57ecbf5d55ba5109dc8ea3965480bffec12e89d942",
        "9ee02a7b460efa7e8024a7683d0679a429e3bcc54625d4eac680e7c10e6e8d55",
    ),
    2: (
        "72b6968e07dc036aebc712c229ce245eef494f4e6e9ac6a46519f1aa3d6159dc",
        "1e78c18865912be5dac982f2a21badd2bc170f81226456f5d202aa7352eb67e5",
    ),
    3: (
        "902719a299b51632f8ef83a45d0fbe61b7c31b1d7eb0a261c74c55f008195572",
        "a79b910d97dbbdf7163cb1ab753676776dad42114788e1b63c14a1d349482f07",
    ),
    4: (
        "c5fab89f86805bec92332f5fb9e4d1641dbcf20ff4c284f608be65a574dfab08",
        "b6ab230384f8cabeaf3c7144def671fac9362e6d455ef655e95baf0c33e9ce13",
    ),
    5: (
        "0d913964159c740feb3d9d2e00b89ce716737260aefef71dfbf3560c220dde45",
        "b4f5d0c0397e67fd60ab25a50a3928997962e05ec79b0c4f1ad2ee71f663f184",
    ),
    6: (
        "432ba56c3a1411a5e2726666ba67351e21e7223d7383bcb1f60efc6490842d6d",
        "ce8b208c051a8996ab6fcc6bf4506ad8050c47389bbc55a8a0d7a836019b07b8",
    ),
    7: (
        "08bbd6cb801f0ace98118e57e9132135feed86b34e1dcccfa9c6a24ee20c087d",
        "11e38d8a3fd93b52b2edab3e4530e916d3fa4e84a3de366ea40945a6b2f8c349",
    ),
    8: (
        "f657f6d0d02347339e81b3258a10c4dd3a1973e5bfc7f384b8c39d96e1705238",
        "56f5740fc35cb45f4c84f52769b7b6fa01bcbef2da17d25c6265f1bd93c12927",
    ),
    9: (
        "21a5c8107b24cdce2a8dc92dcc4a8fa0fa1ecef2581233b37f61bb442c6fd16d",
        "e564253a4f81ff3b7e7aa63f667bd764af1bdfeddd9c4de4183a5fc8b4b9212e",
    ),
    10: (
        "6dbe5e5b6f41313b468b7ab6ed75a43df13fc81b5671d4c558b2effcca3a02c1",
        "fec1878222edd2736c867ac6c91883e38c8ecbad5716097f777c2ef53f479163",
    ),
}

#: every file, by its path in a data folder (sha256 of the uncompressed CSV as published on GitHub)
FILES: dict[str, DataFile] = {
    "school/school.csv": _file(
        "school/school.csv",
        "lightgbm_experiment/data/school.csv",
        "64308cc21283276973da45ef5320e0523f02fef83e46ce1a258e0db05a4267d0",
    ),
}
for _k, (_train_sha, _test_sha) in _SPLIT_SHA.items():
    for _part, _sha in (("train", _train_sha), ("test", _test_sha)):
        _path = f"school/splits/{_part}_{_k}.csv"
        FILES[_path] = _file(_path, f"data/school/school_{_part}_re{_k}.csv", _sha)


def task_name(school_id: int) -> str:
    return f"school_{school_id:03d}"


def _read(path: Path) -> pd.DataFrame:
    return read_headerless(path, _COLUMNS, "school").drop(columns="bias")


def _spec(frame: pd.DataFrame, path: Path) -> DataSpec:
    return long_spec("school", frame, path, FEATURES, "score", "school", range(1, N_SCHOOLS + 1), task_name)


def school(
    data_dir: str | Path | None = None,
    *,
    split: int | None = None,
    download: bool = True,
    cache_dir: str | Path | None = None,
    verify: bool = True,
) -> BuiltinData:
    """School (ILEA exam scores): 139 regression tasks, one per school; 15,362 pupils, 27 features.

    Long layout: one source ``"school"`` with the 27 feature columns of :data:`FEATURES` (the file's 28th
    feature column is the constant 1 and is dropped), the exam score ``"score"`` (the target) and the school
    id ``"school"`` (1..139); task ``school_001`` .. ``school_139`` owns the rows of its school.

    Args:
        data_dir: a folder laid out as ``school/school.csv[.gz]``, ``school/splits/train_K.csv[.gz]``;
            default ``$MULTITASK_DATA``, then the cache.
        split: ``K`` in 1..10 gives the fixed 75/25 split ``K`` of Zhang & Li (CIKM 2019) as train/test
            (11,521/3,841 rows); ``None`` (default) the whole data set as train and no test part.
        download: download missing files into the cache (default True).
        cache_dir: the cache folder (default ``$MULTITASK_CACHE``, else ``~/.cache/multitask``).
        verify: check each file's sha256 (default True).

    References:
        Argyriou, Evgeniou & Pontil, "Convex multi-task feature learning", Machine Learning 2008 (the
        MALSAR encoding); Goldstein, "Multilevel modelling of survey data", 1991 (the ILEA data).
    """

    def get(path: str) -> Path:
        return fetch(
            FILES[path], data_dir=data_dir, cache_dir=cache_dir, download_missing=download, verify=verify
        )

    if split is None:
        path = get("school/school.csv")
        train = _spec(_read(path), path)
        return BuiltinData("school", train, None, _description(None))
    if split not in _SPLIT_SHA:
        raise ConfigError(f"school: split must be 1..{N_SPLITS} or None, got {split!r}")
    train_path = get(f"school/splits/train_{split}.csv")
    test_path = get(f"school/splits/test_{split}.csv")
    train = _spec(_read(train_path), train_path)
    test = train.with_frames({"school": _read(test_path)}, {"school": str(test_path)})
    return BuiltinData("school", train, test, _description(split))


def _description(split: int | None) -> str:
    part = (
        "whole data set, no test part" if split is None else f"fixed split {split} of 10 (75/25 per school)"
    )
    return f"School (ILEA exam scores): 139 regression tasks, one per school; {part}"
