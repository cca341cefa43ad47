"""Generated impression → click → conversion funnel with known click and conversion rates (no files)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from multitask.data.spec import BuiltinData, DataSpec, Source
from multitask.errors import ConfigError
from multitask.tasks import Task

#: the funnel's tasks, in funnel order: both labelled on every impression
TASKS = ("click", "conversion")
#: the intercepts of the click and conversion-given-click logits (about 10% of impressions are clicked, 12% of
#: clicks convert)
CLICK_BIAS, CONVERSION_BIAS = -4.0, -2.0


def funnel_rates(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The true ``(P(click | x), P(conversion | click, x))`` of impressions with features ``x`` ``(n, d ≥ 8)``.

    ``logit P(click) = −4 + 1.2 x0 + 0.9 x1 + 1.0 x2 + 0.8 x0 x1 + 0.5 x3²``;
    ``logit P(conversion | click) = −2 − 0.8 x2 + 1.0 x4 + 0.9 x5 + 0.7 x4 x6 − 0.6 |x7|``.
    Click is driven by ``x0..x3``, conversion given a click by ``x4..x7`` — and ``x2`` raises clicks but
    lowers conversion (an enticing ad that disappoints), so the clicked rows are a biased sample of ``x2``.
    """
    click = CLICK_BIAS + 1.2 * x[:, 0] + 0.9 * x[:, 1] + 1.0 * x[:, 2] + 0.8 * x[:, 0] * x[:, 1] + 0.5 * x[:, 3] ** 2
    convert = (
        CONVERSION_BIAS - 0.8 * x[:, 2] + 1.0 * x[:, 4] + 0.9 * x[:, 5] + 0.7 * x[:, 4] * x[:, 6] - 0.6 * np.abs(x[:, 7])
    )
    return 1.0 / (1.0 + np.exp(-click)), 1.0 / (1.0 + np.exp(-convert))


def funnel(
    n_rows: int = 100_000, *, n_features: int = 16, n_test: int | None = None, seed: int = 0
) -> BuiltinData:
    """Funnel: impressions, their clicks and their conversions (``click``, ``conversion``: click and convert).

    Generated, needs no files. Inputs ``x0..x{d-1}`` are standard normal (``x8`` on are noise). Each
    impression is clicked with probability ``P(click | x)`` and, if clicked, converts with probability
    ``P(conversion | click, x)`` (:func:`funnel_rates`); a conversion is never observed without a click.
    Two binary tasks labelled on every impression, in funnel order: ``click`` and ``conversion`` (1 where the
    impression was clicked and converted — the CTCVR label of ESMM). About 10% of impressions are clicked
    and 1.2% convert. Wide layout: one source ``"impressions"``; the test part (``n_test`` rows, default
    ``n_rows // 4``) comes from the same distribution. Use it with ``--model esmm`` or ``--model aitm``.

    Args:
        n_rows: training impressions (default 100,000).
        n_features: input dimension ``d`` (default 16, at least 8).
        n_test: test impressions (default ``n_rows // 4``; 0 for no test part).
        seed: seed of the inputs and of the clicks and conversions drawn (default 0).
    """
    if n_rows < 1 or n_features < 8:
        raise ConfigError(f"funnel: need n_rows >= 1 and n_features >= 8, got {n_rows} and {n_features}")
    n_test = n_rows // 4 if n_test is None else n_test
    if n_test < 0:
        raise ConfigError(f"funnel: n_test must be >= 0, got {n_test}")
    rng = np.random.default_rng([seed, 7])
    n = n_rows + n_test
    x = rng.standard_normal((n, n_features))
    p_click, p_convert = funnel_rates(x)
    click = rng.random(n) < p_click
    conversion = click & (rng.random(n) < p_convert)
    features = [f"x{i}" for i in range(n_features)]
    frame = pd.DataFrame(x, columns=features)
    frame["click"] = click.astype(np.float64)
    frame["conversion"] = conversion.astype(np.float64)
    train = DataSpec(
        tasks=[Task(name, "binary") for name in TASKS],
        sources={"impressions": Source("impressions", frame.iloc[:n_rows].reset_index(drop=True), features,
                                       path="<funnel>")},
        task_source=dict.fromkeys(TASKS, "impressions"),
        target_column={name: name for name in TASKS},
    )
    test = None
    if n_test > 0:
        test = train.with_frames({"impressions": frame.iloc[n_rows:].reset_index(drop=True)})
    description = (
        f"Funnel: impression -> click -> conversion; {n_rows} training impressions "
        f"({click[:n_rows].mean():.1%} clicked, {conversion[:n_rows].mean():.2%} converted), "
        f"{n_test} test impressions, seed {seed}"
    )
    return BuiltinData("funnel", train, test, description)
