"""The deep family's options categorical and embedding_sizes: through training, the saved model and predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multitask.config import RunConfig
from multitask.errors import ConfigError
from multitask.runs import load_run, predict, train


def city_data(path: Path, n: int = 400) -> Path:
    rng = np.random.default_rng(0)
    city = rng.choice([f"c{i}" for i in range(6)], n)
    frame = pd.DataFrame({"a": rng.normal(size=n), "city": city})
    frame["y"] = np.isin(city, ["c1", "c3"]).astype(int)
    frame.to_csv(path, index=False)
    return path


def run(tmp_path: Path, name: str, **options: object) -> Path:
    cfg = RunConfig(data=str(city_data(tmp_path / "d.csv")), tasks=["y:binary"], model_options=options,
                    train={"epochs": 2, "progress": False}, out=str(tmp_path / name))
    return train(cfg).run_dir


def test_embedding_option_reaches_the_saved_model_and_predict(tmp_path: Path) -> None:
    out = run(tmp_path, "emb", categorical="embedding", embedding_sizes={"city": 3})
    inputs = json.loads((out / "model.json").read_text())["inputs"]
    assert inputs["data"]["categories"] == [{"column": "city", "position": 1, "levels": 6, "size": 3}]
    new = pd.DataFrame({"a": [0.0, 1.0], "city": ["c1", "never-seen"]})
    new.to_csv(tmp_path / "new.csv", index=False)
    first = predict(out, str(tmp_path / "new.csv"))
    again = predict(load_run(out), str(tmp_path / "new.csv"))
    pd.testing.assert_frame_equal(first, again)


def test_onehot_is_the_default_and_writes_the_description_of_before(tmp_path: Path) -> None:
    out = run(tmp_path, "plain")
    assert json.loads((out / "model.json").read_text())["inputs"] == {"data": {"dim": 7}}


@pytest.mark.parametrize(("options", "message"), [
    ({"categorical": "bogus"}, "categorical must be one of onehot, embedding"),
    ({"categorical": "embedding", "embedding_sizes": {"a": 2}}, "'a' is not a categorical column"),
])
def test_bad_options_are_named(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run(tmp_path, "bad", **options)
