"""Model selection: the score, the folds, --search (Optuna), --model auto, the ensemble, resume."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from multitask import models, selection
from multitask.config import RunConfig
from multitask.errors import ConfigError, TrainingDivergedError
from multitask.models._ensemble import ENSEMBLE_FILE, Ensemble
from multitask.models._linear import Linear
from multitask.registry import FAMILIES
from multitask.runs import Prepared, load_run, prepare, train
from multitask.selection import (
    CANDIDATES,
    ENSEMBLE,
    apply,
    caruana,
    greedy_weights,
    relative_skill,
    row_losses,
    scoring_plan,
    select,
)
from multitask.tasks import Task

QUIET = {"progress": False}
DEEP = {"epochs": 2, "batch_size": 32, "progress": False}


def long_table(path: Path, sizes: dict[str, int], fn: Any = None, noise: float = 0.01, k: int = 5,
               seed: int = 0) -> Path:
    """Long form: task ``t`` has ``sizes[t]`` rows; ``y = fn(x)`` shared, else a linear function per task."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(k)
    parts = []
    for name, n in sizes.items():
        x = rng.standard_normal((n, k))
        y = fn(x) if fn is not None else x @ (base + 0.3 * rng.standard_normal(k))
        part = pd.DataFrame(x, columns=[f"x{i}" for i in range(k)])
        part["task"] = name
        part["y"] = y + noise * rng.standard_normal(n)
        parts.append(part)
    pd.concat(parts, ignore_index=True).to_csv(path, index=False)
    return path


def config(path: Path, **options: Any) -> RunConfig:
    options.setdefault("train", DEEP if options.get("model", "hard-sharing") in ("auto", "hard-sharing") else QUIET)
    return RunConfig(data=str(path), task_column="task", target="y", **options)


def score_of(cfg: RunConfig, p: Prepared) -> float:
    plan = scoring_plan(p, cfg.train.seed, cfg.valid_fraction)
    value = plan.score(plan.predictions(lambda: models.make(cfg)))
    assert value is not None
    return value


# ---- the score ----------------------------------------------------------------------------------------------------
KIND_CASES = [
    (Task("r", "regression"), np.array([0.0, 1.0, 3.0, -2.0]), None),
    (Task("b", "binary"), np.array([0.0, 1.0, 1.0, 0.0]), None),
    (Task("m", "multiclass"), np.array([0, 2, 1, 2]), 3),
    (Task("l", "multilabel"), np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=float), 2),
]


def perfect(task: Task, y: np.ndarray, size: int | None) -> np.ndarray:
    if task.kind == "multiclass":
        assert size is not None
        return np.eye(size)[y]
    return y.astype(float)


@pytest.mark.parametrize(("task", "y", "size"), KIND_CASES, ids=lambda c: getattr(c, "kind", ""))
def test_a_perfect_model_scores_1_and_the_constant_0(task: Task, y: np.ndarray, size: int | None) -> None:
    const = selection.constant_prediction(task, y, size or 1)
    const_rows = np.broadcast_to(const, (len(y), *np.shape(const)))
    c = float(row_losses(task, y, const_rows).mean())
    assert relative_skill(float(row_losses(task, y, perfect(task, y, size)).mean()), c) == pytest.approx(1.0, abs=1e-4)
    assert relative_skill(c, c) == 0.0
    assert relative_skill(1e9, c) == selection.SKILL_FLOOR


def test_the_regression_skill_does_not_depend_on_the_targets_units() -> None:
    task = Task("r", "regression")
    rng = np.random.default_rng(0)
    y, pred = rng.standard_normal(50), rng.standard_normal(50)
    skill = relative_skill(float(row_losses(task, y, pred).mean()), float(row_losses(task, y, np.full(50, y.mean())).mean()))
    scaled = relative_skill(float(row_losses(task, 1000 * y + 7, 1000 * pred + 7).mean()),
                            float(row_losses(task, 1000 * y + 7, np.full(50, 1000 * y.mean() + 7)).mean()))
    assert scaled == pytest.approx(skill, rel=1e-9)


def test_a_runs_score_does_not_depend_on_the_targets_units(tmp_path: Path) -> None:
    path = long_table(tmp_path / "a.csv", {"a": 40, "b": 50}, noise=0.5)
    frame = pd.read_csv(path)
    frame["y"] = frame["y"] * 1000.0 + 12.0
    frame.to_csv(tmp_path / "scaled.csv", index=False)
    cfg = config(path, model="linear:independent")
    scaled = config(tmp_path / "scaled.csv", model="linear:independent")
    assert score_of(scaled, prepare(scaled, hold_out_test=True)) == pytest.approx(
        score_of(cfg, prepare(cfg, hold_out_test=True)), abs=1e-6)


def test_the_score_weights_tasks_by_their_weight() -> None:
    tasks = [Task("a", "regression", weight=3.0), Task("b", "binary", weight=1.0), Task("c", "regression")]
    assert selection.weighted_score(tasks, {"a": 1.0, "b": 0.0, "c": None}) == pytest.approx(0.75)
    assert selection.weighted_score(tasks, {"a": None, "b": None, "c": None}) is None


# ---- the folds ---------------------------------------------------------------------------------------------------
def test_cross_validation_folds_score_each_row_once_by_a_model_not_fitted_on_it(tmp_path: Path) -> None:
    path = long_table(tmp_path / "a.csv", {"a": 30, "b": 20, "one": 1, "two": 2, "three": 3})
    p = prepare(config(path, model="linear:independent"), hold_out_test=True)
    plan = scoring_plan(p, 0)
    assert len(plan.folds) == selection.FOLDS
    source = next(iter(plan.pool.sources))
    seen = np.zeros(plan.pool.n_rows(source), dtype=int)
    for fold in plan.folds:
        seen[fold.rows[source]] += 1
        fitted = {tuple(r) for r in fold.fit.inputs[source]}
        assert not fitted & {tuple(r) for r in plan.pool.inputs[source][fold.rows[source]]}
        for t in p.tasks:  # every task keeps a training row in every fold, for either kind of model
            assert fold.fit.n_labelled(t.name) >= 1 and fold.train.n_labelled(t.name) >= 1, t.name
    assert seen.max() == 1
    assert len(plan.scored["one"]) == 0  # a task with one labelled row is never scored
    n_both = {t.name: p.train.n_labelled(t.name) + p.valid.n_labelled(t.name) for t in p.tasks}
    assert len(plan.scored["a"]) == n_both["a"]


def test_large_data_is_scored_on_the_validation_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selection, "CV_ROWS", 10)
    path = long_table(tmp_path / "a.csv", {"a": 40, "b": 40})
    p = prepare(config(path, model="linear:independent"), hold_out_test=True)
    plan = scoring_plan(p, 0)
    assert len(plan.folds) == 1 and plan.folds[0].fit is p.train
    assert plan.pool is p.valid
    assert len(plan.scored["a"]) == p.valid.n_labelled("a")


# ---- search --------------------------------------------------------------------------------------------------------
def noisy_table(tmp_path: Path) -> Path:
    """Few rows, many features, loud noise: ridge's best alpha lies inside its search range."""
    rng = np.random.default_rng(0)
    parts = []
    for t in range(3):
        x = rng.standard_normal((40, 15))
        part = pd.DataFrame(x, columns=[f"x{i}" for i in range(15)])
        part["task"] = f"t{t}"
        part["y"] = x @ (0.3 * rng.standard_normal(15)) + rng.standard_normal(40)
        parts.append(part)
    pd.concat(parts).to_csv(tmp_path / "noisy.csv", index=False)
    return tmp_path / "noisy.csv"


def test_search_beats_a_bad_start_and_both_ends_of_the_range(tmp_path: Path) -> None:
    cfg = config(noisy_table(tmp_path), model="linear:independent", model_options={"alpha": 1e-4}, search=8)
    p = prepare(cfg)
    space = Linear.search_space("linear:independent", p.tasks)
    fixed = {q.path: q.choices[0] for q in space if q.choices is not None and len(q.choices) == 1}
    (param,) = [q for q in space if q.path not in fixed]
    ends = [score_of(apply(cfg, {**fixed, param.path: v}), p) for v in (param.low, param.high)]
    chosen = select(cfg, p, tmp_path / "out", resume=False)
    best = max(r["score"] for r in chosen.leaderboard)
    assert len(chosen.leaderboard) == 8 and all(r["status"] == "ok" for r in chosen.leaderboard)
    assert best >= max(ends)
    assert best > score_of(cfg, p)  # the start, alpha = 1e-4
    assert score_of(chosen.cfg, p) == pytest.approx(best)
    assert chosen.cfg.model_options["alpha"] == next(r for r in chosen.leaderboard if r["score"] == best)["options"][
        "model_options.alpha"]


def read_selection(out: Path) -> list[dict[str, Any]]:
    def refuse(name: str) -> Any:
        raise AssertionError(f"not strict JSON: {name}")

    frame = pd.read_csv(out / selection.SELECTION_FILE, dtype={"status": str}, keep_default_na=False)
    assert list(frame.columns) == list(selection.COLUMNS)
    rows = frame.to_dict("records")
    for r in rows:
        r["options"] = json.loads(r["options"], parse_constant=refuse)
        r["params"] = json.loads(r["params"], parse_constant=refuse)
    return rows


def test_a_failed_trial_is_recorded_and_the_search_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fit, predict = Linear.fit, Linear.predict

    def diverging_fit(self: Linear, *args: Any, **kwargs: Any) -> Any:
        if self.options["alpha"] > 0.1:
            raise TrainingDivergedError("task 't0': loss is nan at epoch 1")
        return fit(self, *args, **kwargs)

    def nan_predict(self: Linear, data: Any) -> Any:
        out = predict(self, data)
        return {t: np.full_like(v, np.nan) for t, v in out.items()} if self.options["alpha"] < 1e-3 else out

    monkeypatch.setattr(Linear, "fit", diverging_fit)
    monkeypatch.setattr(Linear, "predict", nan_predict)
    cfg = config(noisy_table(tmp_path), model="linear:independent", search=10)
    chosen = select(cfg, prepare(cfg), tmp_path / "out", resume=False)
    rows = read_selection(tmp_path / "out")
    status = {r["number"]: r["status"] for r in rows}
    assert len(rows) == 10
    assert any(s.startswith("failed: task 't0': loss is nan") for s in status.values())
    assert any("non-finite" in s for s in status.values())
    assert any(s == "ok" for s in status.values())
    for r in rows:
        alpha = r["options"]["model_options.alpha"]
        assert (r["status"] == "ok") == (1e-3 <= alpha <= 0.1), r
        assert (r["score"] == "") == (r["status"] != "ok")
    assert 1e-3 <= chosen.cfg.model_options["alpha"] <= 0.1


def test_when_every_trial_fails_the_error_names_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(self: Linear, *args: Any, **kwargs: Any) -> Any:
        raise TrainingDivergedError(f"alpha {self.options['alpha']:.3g} diverged")

    monkeypatch.setattr(Linear, "fit", failing)
    cfg = config(noisy_table(tmp_path), model="linear:independent", search=3)
    with pytest.raises(ConfigError, match=r"^--search: every trial of linear:independent failed; the first: failed: alpha"):
        select(cfg, prepare(cfg), None, resume=False)


def test_resume_does_not_run_finished_trials_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(noisy_table(tmp_path), model="linear:independent", search=6)
    p = prepare(cfg)
    whole = select(cfg, p, tmp_path / "whole", resume=False)

    evaluate = selection._evaluate
    calls: list[dict[str, Any]] = []

    def interrupted(c: RunConfig, plan: Any, trial: Any = None) -> Any:
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(c.model_options)
        return evaluate(c, plan, trial)

    monkeypatch.setattr(selection, "_evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        select(cfg, p, tmp_path / "run", resume=False)
    assert len(read_selection(tmp_path / "run")) == 4
    calls.clear()
    monkeypatch.setattr(selection, "_evaluate", lambda c, plan, trial=None: calls.append(c.model_options) or evaluate(c, plan, trial))
    resumed = select(cfg, p, tmp_path / "run", resume=True)
    assert len(calls) == 2  # only the trials that had not finished
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.leaderboard]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in whole.leaderboard]
    assert resumed.cfg.model_options == whole.cfg.model_options


# ---- auto ---------------------------------------------------------------------------------------------------------
def best_single(leaderboard: list[dict[str, Any]]) -> str:
    rows = [r for r in leaderboard if r["status"] == "ok" and r["model"] != ENSEMBLE]
    return str(max(rows, key=lambda r: r["score"])["model"])


def check_ensemble_rule(chosen: selection.Selection) -> None:
    """The ensemble is chosen exactly when its (cross-fitted) score beats every single candidate's."""
    ok = [r for r in chosen.leaderboard if r["status"] == "ok"]
    ens = [r["score"] for r in ok if r["model"] == ENSEMBLE]
    wins = bool(ens) and ens[0] > max(r["score"] for r in ok if r["model"] != ENSEMBLE)
    assert (chosen.cfg.model == ENSEMBLE) == wins
    assert (chosen.model is not None) == wins


def heaviest(chosen: selection.Selection) -> str:
    if chosen.cfg.model != ENSEMBLE:
        return chosen.cfg.model
    members = chosen.cfg.model_options["members"]
    totals = np.sum(list(chosen.cfg.model_options["weights"].values()), axis=0)
    return str(members[int(np.argmax(totals))]["model"])


def test_auto_picks_a_linear_model_for_linear_data(tmp_path: Path) -> None:
    cfg = config(long_table(tmp_path / "a.csv", {"a": 80, "b": 80, "c": 80}), model="auto")
    chosen = select(cfg, prepare(cfg), tmp_path / "out", resume=False)
    tried = [r["model"] for r in chosen.leaderboard]
    assert tried[: len(CANDIDATES)] == list(CANDIDATES)
    assert models.family_name(best_single(chosen.leaderboard)) == "linear"
    assert models.family_name(heaviest(chosen)) == "linear"
    assert chosen.cfg.model != ENSEMBLE  # the linear candidates predict alike: averaging them does not help
    check_ensemble_rule(chosen)


def test_auto_picks_trees_for_a_shared_step_function(tmp_path: Path) -> None:
    def step(x: np.ndarray) -> np.ndarray:
        return 3.0 * ((x[:, 0] > 0) ^ (x[:, 1] > 0)) + 2.0 * (x[:, 2] > 0.5)

    cfg = config(long_table(tmp_path / "a.csv", {"a": 150, "b": 150, "c": 150}, fn=step, noise=0.05), model="auto")
    chosen = select(cfg, prepare(cfg), None, resume=False)
    assert best_single(chosen.leaderboard) == "gbdt:multitask"
    assert heaviest(chosen) == "gbdt:multitask"
    check_ensemble_rule(chosen)


def test_auto_skips_candidates_that_do_not_fit_the_tasks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((90, 3)), columns=["x0", "x1", "x2"])
    frame["y"] = frame["x0"] + 0.1 * rng.standard_normal(90)
    frame["kind"] = np.where(frame["x1"] > 0.4, "hi", np.where(frame["x1"] < -0.4, "lo", "mid"))
    frame.to_csv(tmp_path / "w.csv", index=False)
    cfg = RunConfig(data=str(tmp_path / "w.csv"), tasks=["y:regression", "kind:multiclass"], model="auto", train=DEEP)
    chosen = select(cfg, prepare(cfg), None, resume=False)
    status = {r["model"]: r["status"] for r in chosen.leaderboard}
    for name in ("linear:independent", "linear:trace-norm"):
        assert status[name].startswith("skipped: task 'kind' is multiclass"), status[name]
    assert status["linear:pooled"].startswith("skipped:")
    assert status["gbdt:multitask"] == "ok" and status["hard-sharing"] == "ok"
    assert models.family_name(heaviest(chosen)) in ("gbdt", "deep")


# ---- the ensemble ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("kind", ["regression", "binary", "multiclass"])
def test_greedy_selection_is_never_worse_than_its_best_member(kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    task = Task("t", kind)
    n = 60
    if kind == "regression":
        y = rng.standard_normal(n)
        preds = [y + s * rng.standard_normal(n) for s in (0.5, 0.7, 1.0)]
    elif kind == "binary":
        y = (rng.random(n) < 0.4).astype(float)
        preds = [np.clip(y * 0.6 + 0.2 + 0.3 * rng.standard_normal(n), 0.01, 0.99) for _ in range(3)]
    else:
        y = rng.integers(0, 3, n)
        preds = [rng.dirichlet(np.ones(3), n) * 0.5 + 0.5 * np.eye(3)[y] * rng.random() for _ in range(3)]
        preds = [q / q.sum(axis=1, keepdims=True) for q in preds]
    w = greedy_weights(task, y, preds)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    ensemble = sum(wm * q for wm, q in zip(w, preds, strict=True))
    loss = row_losses(task, y, ensemble).mean()
    assert loss <= min(row_losses(task, y, q).mean() for q in preds) + 1e-12


def test_caruana_over_a_plan_beats_or_equals_each_member_on_its_rows(tmp_path: Path) -> None:
    cfg = config(long_table(tmp_path / "a.csv", {"a": 60, "b": 60}, fn=lambda x: np.abs(x[:, 0]) + x[:, 1], noise=0.1),
                 model="linear:independent")
    p = prepare(cfg, hold_out_test=True)
    plan = scoring_plan(p, 0)
    members = [plan.predictions(lambda n=n: models.make(cfg.model_copy(update={"model": n})))
               for n in ("linear:independent", "gbdt:multitask")]
    weights = caruana(plan, members)
    averaged = {t: sum(w * m[t] for w, m in zip(weights[t], members, strict=True)) for t in weights}
    score = plan.score(averaged)
    assert score is not None
    assert score >= max(s for m in members if (s := plan.score(m)) is not None) - 1e-12


def ensemble_config(path: Path) -> RunConfig:
    base = config(path, model="linear:independent")
    return base.model_copy(update={"model": ENSEMBLE, "model_options": {
        "members": ["linear:independent", {"model": "gbdt:multitask", "model_options": {"num_leaves": 4}}],
        "weights": {"a": [0.25, 0.75], "b": [1.0, 0.0]},
    }})


def test_the_ensemble_round_trips_through_save_and_load(tmp_path: Path) -> None:
    cfg = ensemble_config(long_table(tmp_path / "a.csv", {"a": 60, "b": 60, "c": 40}))
    p = prepare(cfg, hold_out_test=True)
    model = Ensemble.from_config(cfg).fit(p.tasks, p.pre, p.train, p.valid)
    model.save(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / ENSEMBLE_FILE).read_text(), parse_constant=lambda c: pytest.fail(c))
    assert [m["model"] for m in saved["members"]] == ["linear:independent", "gbdt:multitask"]
    assert saved["weights"] == {"a": [0.25, 0.75], "b": [1.0, 0.0], "c": [1.0, 1.0]}
    assert (tmp_path / "run" / "members" / "000" / "linear.npz").is_file()
    assert (tmp_path / "run" / "members" / "001" / "gbdt.json").is_file()
    loaded = Ensemble.load(ENSEMBLE, tmp_path / "run", p.tasks, p.pre)
    before, after = model.predict(p.test), loaded.predict(p.test)  # type: ignore[arg-type]
    for t in ("a", "b", "c"):
        np.testing.assert_array_equal(before[t], after[t])
    members = [m.predict(p.test) for m in model.members_]  # type: ignore[arg-type]
    np.testing.assert_allclose(before["a"], 0.25 * members[0]["a"] + 0.75 * members[1]["a"])
    np.testing.assert_allclose(before["b"], members[0]["b"])
    np.testing.assert_allclose(before["c"], (members[0]["c"] + members[1]["c"]) / 2)


def test_an_ensemble_refuses_bad_options(tmp_path: Path) -> None:
    cfg = ensemble_config(long_table(tmp_path / "a.csv", {"a": 20, "b": 20}))
    p = prepare(cfg)
    bad = [
        ({"members": []}, "give members"),
        ({"members": ["linear:nope"]}, "unknown model 'linear:nope'"),
        ({"members": ["linear:l21"], "weights": {"a": [1.0, 2.0]}}, "weights of task 'a' must be a list of 1"),
        ({"members": ["linear:l21"], "weights": {"a": [-1.0]}}, "must be finite, >= 0"),
        ({"members": ["linear:l21"], "alpha": 1}, "unknown option 'alpha'"),
    ]
    for options, message in bad:
        with pytest.raises(ConfigError, match=message):
            Ensemble.from_config(cfg.model_copy(update={"model_options": options})).check(p.tasks, p.pre)


def test_the_ensemble_of_auto_is_kept_only_when_its_crossfitted_score_is_higher(tmp_path: Path) -> None:
    mixed_table(tmp_path / "mixed.csv")
    cfg = config(tmp_path / "mixed.csv", model="auto")
    chosen = select(cfg, prepare(cfg), tmp_path / "out", resume=False)
    rows = read_selection(tmp_path / "out")
    ens = [r for r in rows if r["model"] == ENSEMBLE]
    assert len(ens) == 1
    check_ensemble_rule(chosen)
    assert chosen.cfg.model == ENSEMBLE and isinstance(chosen.model, Ensemble)
    members = [m["model"] for m in chosen.cfg.model_options["members"]]
    assert "gbdt:multitask" in members and any(models.family_name(m) == "linear" for m in members)
    for t in ("t0", "t2"):  # the step-function tasks lean on the trees
        assert chosen.cfg.model_options["weights"][t][members.index("gbdt:multitask")] > 0.5


def test_an_ensemble_that_does_not_beat_the_best_single_candidate_is_not_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(long_table(tmp_path / "a.csv", {"a": 60, "b": 60, "c": 60}, noise=0.5), model="auto")
    chosen = select(cfg, prepare(cfg), None, resume=False)
    assert [r["model"] for r in chosen.leaderboard][-1] == ENSEMBLE  # it was built and scored
    check_ensemble_rule(chosen)

    # an ensemble whose honest (cross-fitted) predictions are its weakest member's never wins
    def weakest(plan: Any, members: list[Any], *args: Any, **kwargs: Any) -> Any:
        return min(members, key=lambda m: plan.score(m))

    monkeypatch.setattr(selection, "crossfit_shared", weakest)
    monkeypatch.setattr(selection, "crossfit_ensemble", weakest)
    chosen = select(cfg, prepare(cfg), None, resume=False)
    assert [r["model"] for r in chosen.leaderboard][-1] == ENSEMBLE
    assert chosen.cfg.model != ENSEMBLE


def mixed_table(path: Path) -> Path:
    """Half the tasks linear, half a step function: per task, a different family is best."""
    rng = np.random.default_rng(1)
    parts = []
    for t in range(4):
        x = rng.standard_normal((120, 4))
        y = x @ rng.standard_normal(4) if t % 2 else 3.0 * (x[:, 0] > 0) * (x[:, 1] > 0)
        part = pd.DataFrame(x, columns=[f"x{i}" for i in range(4)])
        part["task"], part["y"] = f"t{t}", y + 0.05 * rng.standard_normal(120)
        parts.append(part)
    pd.concat(parts).to_csv(path, index=False)
    return path


def test_a_resumed_auto_builds_the_same_ensemble_from_saved_predictions(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(mixed_table(tmp_path / "mixed.csv"), model="auto")
    p = prepare(cfg)
    whole = select(cfg, p, tmp_path / "whole", resume=False)
    evaluate = selection._evaluate
    calls: list[str] = []

    def interrupted(c: RunConfig, plan: Any, trial: Any = None) -> Any:
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(c.model)
        return evaluate(c, plan, trial)

    monkeypatch.setattr(selection, "_evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        select(cfg, p, tmp_path / "run", resume=False)
    assert len(list((tmp_path / "run" / selection.PREDICTIONS_DIR).glob("*.npz"))) == 3
    calls.clear()
    monkeypatch.setattr(selection, "_evaluate", lambda c, plan, trial=None: calls.append(c.model) or evaluate(c, plan, trial))
    resumed = select(cfg, p, tmp_path / "run", resume=True)
    assert calls == list(CANDIDATES[3:])  # the first three candidates' predictions were read back
    assert resumed.cfg.model == whole.cfg.model == ENSEMBLE
    assert resumed.cfg.model_options == whole.cfg.model_options
    assert [r["score"] for r in resumed.leaderboard] == pytest.approx([r["score"] for r in whole.leaderboard])


# ---- end to end ----------------------------------------------------------------------------------------------------
TINY = {"a": 40, "b": 40, "one": 1, "two": 2, "three": 3}


@pytest.mark.parametrize("options", [{"model": "auto"}, {"model": "linear:trace-norm", "search": 3},
                                     {"model": "gbdt:multitask", "search": 2}])
def test_tasks_with_one_two_three_rows_pass_search_and_auto(tmp_path: Path, options: dict[str, Any]) -> None:
    cfg = config(long_table(tmp_path / "a.csv", TINY), out=str(tmp_path / "run"), **options)
    result = train(cfg)
    assert result.evaluated_on == "held-out"
    assert result.selection is not None and any(r["status"] == "ok" for r in result.selection)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["selection"] == json.loads(json.dumps(result.selection))
    rows = read_selection(tmp_path / "run")
    assert len(rows) == len(result.selection)
    assert not math.isnan(float(metrics["tasks"]["a"]["rmse"]))


@pytest.mark.skipif("ensemble" not in FAMILIES, reason="the ensemble family is not registered yet")
def test_a_run_that_chose_an_ensemble_is_loaded_and_predicts(tmp_path: Path) -> None:
    cfg = ensemble_config(long_table(tmp_path / "a.csv", {"a": 60, "b": 60}))
    cfg = cfg.model_copy(update={"out": str(tmp_path / "run")})
    result = train(cfg)
    run = load_run(tmp_path / "run")
    p = prepare(cfg)
    assert set(run.predictor(p.valid)) == {"a", "b"}
    assert result.model == ENSEMBLE


# ---- the documentation ------------------------------------------------------------------------------------------
DOC = Path(__file__).parents[1] / "docs" / "selection.md"


def test_the_documented_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {})
    assert "linear:l21" in capsys.readouterr().out


def test_the_docs_list_the_candidates_of_auto_in_order() -> None:
    listed = [line.split("`")[1] for line in DOC.read_text().splitlines() if line.startswith("| `")
              and line.split("`")[1] in models.names()]
    assert listed[: len(CANDIDATES)] == list(CANDIDATES)


def test_monitor_makes_one_task_decide(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=(n, 2))
    frame = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "a": x[:, 0] + 0.1 * rng.normal(size=n),
                          "b": rng.normal(size=n)})
    frame.to_csv(tmp_path / "w.csv", index=False)
    cfg = RunConfig(data=str(tmp_path / "w.csv"), tasks=["a:regression", "b:regression"], model="linear:independent")
    p = prepare(cfg)
    both = scoring_plan(p)
    only_a = scoring_plan(p, monitor="a")
    model = lambda: models.make(cfg)  # noqa: E731
    preds = both.predictions(model)
    skills = both.skills(preds)
    assert only_a.score(only_a.predictions(model)) == pytest.approx(skills["a"])
    assert both.score(preds) == pytest.approx((skills["a"] + skills["b"]) / 2)
    with pytest.raises(ConfigError, match="'c'"):
        scoring_plan(p, monitor="c")


def test_shared_weights_average_two_independent_noisy_models(tmp_path: Path) -> None:
    cfg = config(long_table(tmp_path / "a.csv", {"a": 60, "b": 60, "c": 60}, noise=0.5), model="linear:pooled")
    plan = selection.scoring_plan(prepare(cfg))
    rng = np.random.default_rng(0)
    truth = {t: y.astype(np.float64) for t, y in plan.targets.items()}
    members = [{t: y + rng.normal(scale=0.5, size=y.shape) for t, y in truth.items()} for _ in range(2)]
    w = selection.shared_weights(plan, members)
    assert w == pytest.approx([0.5, 0.5], abs=0.15)
    honest = plan.score(selection.crossfit_shared(plan, members))
    assert honest is not None and honest > max(plan.score(m) or -1.0 for m in members)


def test_deep_trials_scored_on_the_validation_part_are_pruned(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from multitask.models._base import Param
    from multitask.models._deep import Deep

    # enough rows per task that trials are scored on the validation part, where epochs are reported
    monkeypatch.setattr(selection, "CV_ROWS", 100)
    monkeypatch.setattr(Deep, "search_space", classmethod(lambda cls, name, tasks: [
        Param("train.lr", 1e-7, 3e-2, log=True)]))
    cfg = config(long_table(tmp_path / "a.csv", {"a": 300, "b": 300}), model="hard-sharing", search=10,
                 train={**DEEP, "epochs": 8, "patience": None})
    chosen = select(cfg, prepare(cfg), tmp_path / "run", resume=False)
    statuses = [r["status"] for r in chosen.leaderboard]
    assert any(s.startswith("pruned") for s in statuses), statuses
    assert chosen.cfg.train.lr > 1e-4  # a learning rate that learns won
