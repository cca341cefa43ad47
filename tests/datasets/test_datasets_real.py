"""The loaders on the real data in ../shared/data (skipped, with the reason, where that folder is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multitask.datasets import census_income, multimnist, sarcos, school
from multitask.errors import ConfigError

pytestmark = pytest.mark.shared_data


def test_school_whole(shared_data: Path) -> None:
    data = school(shared_data, download=False)
    spec = data.train
    frame = spec.sources["school"].frame
    assert data.test is None
    assert frame.shape == (15_362, 29)
    assert (
        len(spec.tasks) == 139 and spec.task_names[0] == "school_001" and spec.task_names[-1] == "school_139"
    )
    assert {t.kind for t in spec.tasks} == {"regression"}
    assert len(spec.feature_columns("school")) == 27 and "bias" not in frame.columns
    assert spec.task_rows["school_042"] == ("school", 42)
    assert sorted(frame["school"].unique()) == list(range(1, 140))


def test_school_split(shared_data: Path) -> None:
    data = school(shared_data, split=3, download=False)
    assert data.test is not None
    assert len(data.train.sources["school"].frame) == 11_521
    assert len(data.test.sources["school"].frame) == 3_841
    assert data.test.task_names == data.train.task_names
    with pytest.raises(ConfigError, match=r"split must be 1\.\.10"):
        school(shared_data, split=11)


def test_sarcos(shared_data: Path) -> None:
    whole = sarcos(shared_data, download=False)
    assert whole.train.sources["sarcos"].frame.shape == (6_228, 23)
    assert whole.train.task_names == [f"torque_{j}" for j in range(1, 8)]
    split = sarcos(shared_data, split=10, download=False)
    assert split.test is not None
    train, test = split.train.sources["sarcos"].frame, split.test.sources["sarcos"].frame
    assert (len(train), len(test)) == (4_671, 1_557)
    assert sorted(train["joint"].unique()) == list(range(1, 8))
    assert split.train.feature_columns("sarcos")[:2] == ["pos_1", "pos_2"]


def test_census_income(shared_data: Path) -> None:
    data = census_income(shared_data, download=False)
    spec = data.train
    frame = spec.sources["census"].frame
    assert len(frame) == 99_762 and data.test is None
    assert 0.04 < frame["income"].mean() < 0.09
    assert 0.35 < frame["never_married"].mean() < 0.5
    features = spec.feature_columns("census")
    assert len(features) == 39
    assert not {"marital_stat", "income_class", "instance_weight", "income", "never_married"} & set(features)
    assert "marital_stat" not in frame.columns and "income_class" not in frame.columns
    assert pd.api.types.is_string_dtype(frame["education"]) and frame["age"].dtype.kind == "i"
    assert pd.api.types.is_string_dtype(frame["detailed_industry_recode"])
    assert frame["class_of_worker"].iloc[0] == frame["class_of_worker"].iloc[0].strip()


def test_census_income_subset_is_seeded(shared_data: Path) -> None:
    a = census_income(shared_data, max_rows=500, seed=1).train.sources["census"].frame
    b = census_income(shared_data, max_rows=500, seed=1).train.sources["census"].frame
    c = census_income(shared_data, max_rows=500, seed=2).train.sources["census"].frame
    assert len(a) == 500 and a.equals(b) and not a.equals(c)


def test_multimnist(shared_data: Path) -> None:
    data = multimnist(shared_data, n_images=64, seed=3, download=False)
    source = data.train.sources["images"]
    assert source.image_shape == (1, 28, 28)
    assert source.frame.shape == (64, 786)
    pixels = source.frame[data.train.feature_columns("images")].to_numpy()
    assert pixels.dtype == np.float32 and pixels.min() >= 0.0 and pixels.max() <= 1.0 and pixels.max() > 0.9
    for task in ("left", "right"):
        labels = source.frame[task].to_numpy()
        assert labels.dtype == np.int64 and set(labels) <= set(range(10))
    again = multimnist(shared_data, n_images=64, seed=3).train.sources["images"].frame
    assert again.equals(source.frame)
    other = multimnist(shared_data, n_images=64, seed=4).train.sources["images"].frame
    assert not other.equals(source.frame)
