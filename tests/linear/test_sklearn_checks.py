"""scikit-learn's estimator checks over every formulation and the cross-validation wrapper."""

from __future__ import annotations

from typing import Any

from sklearn.utils.estimator_checks import parametrize_with_checks

from multitask.linear import L21, MultiTaskCV
from tests.linear._helpers import ESTIMATORS

INSTANCES: list[Any] = [cls() for cls in ESTIMATORS.values()]
INSTANCES.append(MultiTaskCV(L21(), {"alpha": [1e-2, 1e-1]}))


@parametrize_with_checks(INSTANCES)
def test_sklearn_contract(estimator: Any, check: Any) -> None:
    check(estimator)
