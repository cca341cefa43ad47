"""scikit-learn's estimator checks over every boosted estimator (single-task regression, few rounds)."""

from __future__ import annotations

from typing import Any

from sklearn.utils.estimator_checks import parametrize_with_checks

from multitask.gbdt import ESTIMATORS

INSTANCES: list[Any] = [cls(n_estimators=40, learning_rate=0.2, early_stopping_rounds=10) for cls in ESTIMATORS]


@parametrize_with_checks(INSTANCES)
def test_sklearn_contract(estimator: Any, check: Any) -> None:
    check(estimator)
