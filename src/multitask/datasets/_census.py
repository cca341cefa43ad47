"""The UCI Census-Income (KDD) data set, "test" partition: two binary tasks, income and marital status."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from multitask.data.spec import BuiltinData, DataSpec, Source
from multitask.datasets._download import DataFile, fetch
from multitask.errors import ConfigError, DataError
from multitask.tasks import Task

#: the 42 columns in the UCI order (census-income.names), in snake case
COLUMNS: list[str] = [
    "age",
    "class_of_worker",
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "education",
    "wage_per_hour",
    "enroll_in_edu_inst_last_wk",
    "marital_stat",
    "major_industry_code",
    "major_occupation_code",
    "race",
    "hispanic_origin",
    "sex",
    "member_of_a_labor_union",
    "reason_for_unemployment",
    "full_or_part_time_employment_stat",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "tax_filer_stat",
    "region_of_previous_residence",
    "state_of_previous_residence",
    "detailed_household_and_family_stat",
    "detailed_household_summary_in_household",
    "instance_weight",
    "migration_code_change_in_msa",
    "migration_code_change_in_reg",
    "migration_code_move_within_reg",
    "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt",
    "num_persons_worked_for_employer",
    "family_members_under_18",
    "country_of_birth_father",
    "country_of_birth_mother",
    "country_of_birth_self",
    "citizenship",
    "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin",
    "veterans_benefits",
    "weeks_worked_in_year",
    "year",
    "income_class",
]
#: integer-coded columns that the UCI description lists as nominal: kept as strings, so they are one-hot coded
CODED: list[str] = [
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "own_business_or_self_employed",
    "veterans_benefits",
    "year",
]
#: raw columns that are not features: the survey weight and the two columns the targets are made from
NOT_FEATURES: list[str] = ["instance_weight", "marital_stat", "income_class"]
FEATURES: list[str] = [c for c in COLUMNS if c not in NOT_FEATURES]
N_ROWS = 99_762

#: published file, by path in a data folder; sha256 of the file in the shared data folder, as distributed
FILES: dict[str, DataFile] = {
    "census-income/census-income.test.gz": DataFile(
        "census-income/census-income.test.gz",
        (
            "https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld/census-income.test.gz",
        ),
        "5ac4cacd3ca9f1ecb10de1a0a41e4ac68fdc419e3fec190f5c0c6cc03b2ea659",
    ),
}


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            path, header=None, names=COLUMNS, sep=",", skipinitialspace=True, dtype={c: str for c in CODED}
        )
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: cannot be read as census-income data ({e})") from e
    if frame.shape[1] != len(COLUMNS) or frame["income_class"].isna().any():
        raise DataError(f"{path}: expected {len(COLUMNS)} comma-separated columns on every row")
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].str.strip()
    return frame


def census_income(
    data_dir: str | Path | None = None,
    *,
    max_rows: int | None = None,
    seed: int = 0,
    download: bool = True,
    cache_dir: str | Path | None = None,
    verify: bool = True,
) -> BuiltinData:
    """Census-Income (KDD, UCI): 2 binary tasks, income > 50K and never married; 99,762 people, 39 features.

    The data set of the MMoE paper. Wide layout: one source ``"census"`` with the UCI columns as features
    (strings stay strings; ``"?"`` is kept as its own category; the integer-coded nominal columns of
    :data:`CODED` are strings), and two target columns: ``"income"`` (1.0 when the income class is
    ``50000+.``) and ``"never_married"`` (1.0 when the marital status is ``Never married``). The raw income and
    marital-status columns are removed (they would leak the targets); ``"instance_weight"`` (the survey
    weight) stays in the frame but is not a feature. There is no test part: split it yourself.

    Args:
        data_dir: a folder holding ``census-income/census-income.test.gz``; default ``$MULTITASK_DATA``, then
            the cache.
        max_rows: keep a random subset of this many rows, for quick runs (default: all).
        seed: seed of that subset (default 0); rows keep their file order.
        download: download the file into the cache when missing (default True).
        cache_dir: the cache folder (default ``$MULTITASK_CACHE``, else ``~/.cache/multitask``).
        verify: check the file's sha256 (default True).

    References:
        Ma et al., "Modeling task relationships in multi-task learning with multi-gate mixture-of-experts",
        KDD 2018. Data: UCI Machine Learning Repository, data set 117 (CC BY 4.0).
    """
    if max_rows is not None and max_rows < 1:
        raise ConfigError(f"census_income: max_rows must be >= 1, got {max_rows}")
    key = "census-income/census-income.test.gz"
    path = fetch(FILES[key], data_dir=data_dir, cache_dir=cache_dir, download_missing=download, verify=verify)
    frame = _read(path)
    if max_rows is not None and max_rows < len(frame):
        rows = np.sort(np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False))
        frame = frame.iloc[rows].reset_index(drop=True)
    frame["income"] = (frame["income_class"] == "50000+.").astype("float64")
    frame["never_married"] = (frame["marital_stat"] == "Never married").astype("float64")
    frame = frame.drop(columns=["income_class", "marital_stat"])
    tasks = [Task("income", "binary"), Task("never_married", "binary")]
    train = DataSpec(
        tasks=tasks,
        sources={"census": Source("census", frame, list(FEATURES), path=str(path))},
        task_source={"income": "census", "never_married": "census"},
        target_column={"income": "income", "never_married": "never_married"},
    )
    rows_note = "" if max_rows is None else f" (random subset of {len(frame)} rows, seed {seed})"
    description = f"Census-Income (KDD): binary tasks income > 50K and never married{rows_note}; no test part"
    return BuiltinData("census-income", train, None, description)
