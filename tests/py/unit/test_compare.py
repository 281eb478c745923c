"""benchrun.changes.compare(): the A/B verdict on known samples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchrun import power
from benchrun.changes import compare
from benchrun.errors import ConfigError


def test_known_slowdown() -> None:
    a = [10.0, 10.1, 9.9, 10.2, 9.8, 10.0, 10.1, 9.9]
    b = [11.0, 11.1, 10.9, 11.2, 10.8, 11.0, 11.1, 10.9]
    c = compare(a, b)
    assert c.median_a == 10.0 and c.median_b == 11.0
    assert c.change == pytest.approx(0.1)
    assert c.ci[0] <= 0.1 <= c.ci[1] and c.ci[0] > 0
    assert c.test == "Mann-Whitney U"
    assert c.p_value < 0.001  # complete separation, 8 + 8 samples (ties: normal approximation)
    assert c.verdict == "slower" and c.significant
    assert (c.n_a, c.n_b) == (8, 8)
    cv = math.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2) / np.mean(a)
    assert c.mdc == pytest.approx(power.minimum_detectable_change(8, cv))
    assert compare(b, a).verdict == "faster"
    assert compare(a, b, higher_is_better=True).verdict == "faster"  # throughput went up
    doc = c.to_json()
    assert json.loads(json.dumps(doc))["verdict"] == "slower" and doc["ci"] == list(c.ci)
    assert doc["significant"] is True and doc["p_value"] == c.p_value


def test_no_significant_change() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(100, 5, 20), rng.normal(100, 5, 20)
    c = compare(a, b)
    assert c.verdict == "no significant change" and not c.significant
    assert c.ci[0] < 0 < c.ci[1]
    assert 0.02 < c.mdc < 0.1  # ~0.9 sd at n = 20, cv 5 %
    same = compare([5.0] * 4, [5.0] * 4)
    assert same.p_value == 1.0 and same.change == 0.0 and same.verdict == "no significant change"


def test_small_and_bad_samples() -> None:
    c = compare([1.0], [2.0])
    assert math.isnan(c.mdc) and c.to_json()["mdc"] is None
    assert c.verdict == "no significant change"
    with pytest.raises(ConfigError, match="A: no samples"):
        compare([], [1.0])
    with pytest.raises(ConfigError, match="B: non-finite"):
        compare([1.0], [math.nan])
    with pytest.raises(ConfigError, match="confidence"):
        compare([1.0], [1.0], confidence=95)
    z = compare([0.0, 0.0], [1.0, 1.0])
    assert math.isnan(z.change) and z.verdict == "no significant change"


def test_reproducible_with_seed() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.lognormal(0, 0.1, 15), rng.lognormal(0.05, 0.1, 15)
    assert compare(a, b, seed=3) == compare(a, b, seed=3)


def test_report_lists_change_points_in_run_order() -> None:
    import pandas as pd

    from benchrun import report

    rng = np.random.default_rng(4)
    values = np.r_[rng.normal(1.0, 0.01, 30), rng.normal(1.1, 0.01, 30)]  # +10 % at run 30
    rows = [
        {"variant": v, "benchmark": "b", "measure": "t", "value": x, "plan_index": 2 * i + k}
        for k, v in enumerate(("shifted", "steady"))
        for i, x in enumerate(values if v == "shifted" else rng.normal(1.0, 0.01, 60))
    ]
    lines = report.change_point_lines(pd.DataFrame(rows))
    assert len(lines) == 1 and lines[0].startswith("shifted b/t: runs 0-29 | 30-59 (+"), lines
    assert 9.0 < float(lines[0].rpartition("(+")[2].rstrip("%)")) < 11.0
