"""benchrun.changes: change points, the incremental detector and the seven threshold models, on
series with known answers (fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchrun.changes import ChangePointDetector, Threshold, change_points, thresholds
from benchrun.changes import detect, energy, significance
from benchrun.errors import ConfigError


def _brute_energy(x: np.ndarray, min_size: int) -> np.ndarray:
    m = x.size
    q = np.full(m + 1, np.nan)
    for t in range(min_size, m - min_size + 1):
        a, b = x[:t], x[t:]
        between = np.abs(a[:, None] - b[None, :]).sum()
        wa = np.abs(a[:, None] - a[None, :]).sum() / 2
        wb = np.abs(b[:, None] - b[None, :]).sum() / 2
        e = 2 * between / (t * (m - t)) - wa / (t * (t - 1) / 2) - wb / ((m - t) * (m - t - 1) / 2)
        q[t] = t * (m - t) / m * e
    return q


def test_energy_statistic_matches_the_definition() -> None:
    # 600 points: more than two blocks of the blocked left-distance computation, with ties.
    x = np.round(np.random.default_rng(3).normal(0, 1, 600), 1)
    np.testing.assert_allclose(energy.split_statistic(x, 5), _brute_energy(x, 5), atol=1e-9)


@pytest.mark.parametrize("at", [40, 100, 250])
@pytest.mark.parametrize("noise", ["normal", "lognormal"])
def test_a_step_is_found_within_one_point(at: int, noise: str) -> None:
    rng = np.random.default_rng(at)
    if noise == "normal":
        x = rng.normal(100, 2, 300)
    else:
        x = 100 * rng.lognormal(0, 0.02, 300)
    x[at:] *= 1.1
    cps = change_points(x)
    assert len(cps) == 1 and abs(cps[0] - at) <= 1, cps


def test_two_steps_and_outliers() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(10, 0.1, 200)
    x[70:140] += 0.6
    x[[20, 100, 180]] = 1000  # outliers: one rank each
    cps = change_points(x)
    assert len(cps) == 2 and abs(cps[0] - 70) <= 1 and abs(cps[1] - 140) <= 1, cps


def test_no_change_point_in_a_random_series() -> None:
    rng = np.random.default_rng(12345)
    assert change_points(rng.normal(100, 3, 2000)) == []
    assert change_points(rng.lognormal(0, 0.5, 500)) == []
    assert change_points(np.full(50, 7.0)) == []
    assert change_points([1.0, 2.0, 3.0]) == []  # too short for two segments of min_size


def test_min_size_and_alpha() -> None:
    x = np.r_[np.zeros(30), np.ones(3) * 10, np.zeros(30)]
    x += np.random.default_rng(4).normal(0, 1e-3, x.size)
    assert change_points(x, min_size=5) == []  # a 3-point blip is no segment
    for bad in (0, 1, 2.5, True):
        with pytest.raises(ConfigError, match="min_size"):
            change_points(x, min_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="alpha"):
        change_points(x, alpha=1.5)
    with pytest.raises(ConfigError, match="non-finite value nan at index 2"):
        change_points([1, 2, math.nan, 4])
    with pytest.raises(ConfigError, match="1-d"):
        change_points([[1, 2], [3, 4]])


def test_significance_null_is_calibrated() -> None:
    # On series with no change the split's p-value is (conservatively) uniform: about alpha of
    # them, not the ~25 % an uncorrected test at the best of 90 splits would give.
    rng = np.random.default_rng(21)
    splits = [detect.best_split(rng.standard_normal(100), 5) for _ in range(400)]
    ps = np.array([1.0 if s is None else s[1] for s in splits])
    assert 0.01 <= np.mean(ps < 0.05) <= 0.08, np.mean(ps < 0.05)
    assert significance.p_value(0.0, 100, 5) == 1.0
    assert significance.p_value(50.0, 100, 5) == pytest.approx(1 / 1001)


def test_incremental_equals_batch() -> None:
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            rng.normal(100, 1, 60),
            rng.normal(108, 1, 50),
            rng.normal(97, 1, 70),
            rng.normal(97, 1, 20),
        ]
    )
    d = ChangePointDetector()
    seen = []
    for i, v in enumerate(x):
        seen.append(d.append(float(v)))
        assert d.change_points == change_points(x[: i + 1]), i
    assert seen[-1] == [60, 110]
    assert len(d) == x.size and d.values[-1] == x[-1]
    e = ChangePointDetector()
    assert e.extend(x[:100]) == change_points(x[:100])
    assert e.extend(x[100:]) == change_points(x) == [60, 110]
    with pytest.raises(ValueError):
        d.values[0] = 1.0  # read-only view


# Hand-computed thresholds: history 100, 102, 98, 104, 96 (mean 100, sd sqrt(10) = 3.1623,
# median 100, quartiles 98 and 102, IQR 4; relative deltas 0.02, 0.03922, 0.06122, 0.07692 with
# quartiles 0.034412, 0.065149, IQR 0.0307374).
H = [100.0, 102.0, 98.0, 104.0, 96.0]


@pytest.mark.parametrize(
    "model,boundary,lower,upper",
    [
        ("static", None, 90.0, 110.0),
        ("percentage", 0.1, 90.0, 110.0),
        ("z_score", 0.975, 100 - 1.959964 * 3.162278, 100 + 1.959964 * 3.162278),
        ("t_test", 0.975, 100 - 2.776445 * 3.162278, 100 + 2.776445 * 3.162278),
        ("iqr", 2.0, 92.0, 108.0),
        ("delta_iqr", 2.0, 100 - 200 * 0.0307374, 100 + 200 * 0.0307374),
    ],
)
def test_threshold_limits_by_hand(model: str, boundary: float, lower: float, upper: float) -> None:
    kw = (
        {"lower": 90.0, "upper": 110.0}
        if model == "static"
        else {"lower": boundary, "upper": boundary}
    )
    th = Threshold(model, **kw)
    r = th.check(H, 100.0)
    assert not r.alert and r.side is None and r.boundary is None and r.n == 5
    assert r.lower_limit == pytest.approx(lower, rel=1e-5)
    assert r.upper_limit == pytest.approx(upper, rel=1e-5)
    hi = th.check(H, upper + 0.01)
    assert hi.alert and hi.side == "upper" and hi.boundary == pytest.approx(upper, rel=1e-5)
    lo = th.check(H, lower - 0.01)
    assert lo.alert and lo.side == "lower" and lo.boundary == pytest.approx(lower, rel=1e-5)


def test_log_normal_threshold_by_hand() -> None:
    lg = np.log(H)
    mu, sigma = lg.mean(), lg.std(ddof=1)
    th = Threshold("log_normal", upper=0.99, lower=0.99)
    r = th.check(H, 120.0)
    assert r.upper_limit == pytest.approx(math.exp(mu + 2.326348 * sigma), rel=1e-6)
    assert r.lower_limit == pytest.approx(math.exp(mu - 2.326348 * sigma), rel=1e-6)
    assert r.alert and r.side == "upper"
    with pytest.raises(ConfigError, match="<= 0"):
        th.check([1.0, 0.0, 2.0], 1.0)


def test_bencher_t_test_example() -> None:
    # bencher.dev: 25 points, mean 100, sd 10, boundary 0.977 -> limits 78.96 and 121.04.
    z = np.random.default_rng(0).normal(size=25)
    h = 100 + 10 * (z - z.mean()) / z.std(ddof=1)
    r = Threshold("t_test", upper=0.977, lower=0.977).check(h, 100)
    assert r.upper_limit == pytest.approx(121.04, abs=0.01)
    assert r.lower_limit == pytest.approx(78.96, abs=0.01)


def test_threshold_window_min_sample_and_errors() -> None:
    th = Threshold("percentage", upper=0.1, window=2, min_sample=2)
    assert th.check([1000.0, 100.0, 100.0], 109.0).alert is False  # the window drops 1000
    assert th.check([1000.0, 100.0, 100.0], 111.0).side == "upper"
    assert Threshold("z_score", upper=0.99, min_sample=10).check(H, 1e9).alert is False
    # A static limit needs no history by default; the statistical models need two points.
    assert Threshold("static", upper=5.0).check([], 6.0).side == "upper"
    assert Threshold("z_score", upper=0.99).min_sample == 2
    assert thresholds.MODELS == (
        "static",
        "percentage",
        "z_score",
        "t_test",
        "log_normal",
        "iqr",
        "delta_iqr",
    )
    with pytest.raises(ConfigError, match="expected one of"):
        Threshold("zscore", upper=1)
    with pytest.raises(ConfigError, match="upper or a lower"):
        Threshold("iqr")
    with pytest.raises(ConfigError, match="between 0.5 and 1"):
        Threshold("t_test", upper=2.0)
    with pytest.raises(ConfigError, match=">= 0"):
        Threshold("percentage", lower=-0.1)
    with pytest.raises(ConfigError, match="window"):
        Threshold("iqr", upper=1, window=0)
    with pytest.raises(ConfigError, match="non-finite"):
        Threshold("iqr", upper=1).check([1.0, math.inf], 1.0)


@pytest.mark.parametrize("model", thresholds.MODELS)
def test_scan_replays_check(model: str) -> None:
    rng = np.random.default_rng(9)
    x = 100 * rng.lognormal(0, 0.03, 160)
    x[90:] *= 1.08
    b = {"static": 104.0, "percentage": 0.05}.get(
        model, 0.95 if model in ("z_score", "t_test", "log_normal") else 1.5
    )
    th = Threshold(model, upper=b, lower=b if model != "static" else 96.0, window=30, min_sample=5)
    expected = [t for t in range(x.size) if th.check(x[:t], x[t]).alert]
    assert thresholds.scan(th, x) == expected
    assert expected  # the shift at 90 is seen by every model


def test_series_plot_marks_change_points_and_alerts() -> None:
    from benchrun import plots

    x = np.r_[np.full(30, 100.0), np.full(30, 110.0)] + np.random.default_rng(2).normal(0, 1, 60)
    fig = plots.series(x, alerts=[31, {"index": 40, "state": "dismissed", "label": "noise"}])
    ax = fig.axes[0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in dashed] == [29.5]  # computed: the step at 30
    assert "+10" in " ".join(t.get_text() for t in ax.texts)  # the relative change of the median
    with pytest.raises(ConfigError, match="change point 60 outside"):
        plots.series(x, change_points=[60])
    with pytest.raises(ConfigError, match="alert index 99"):
        plots.series(x, change_points=[], alerts=[99])
    with pytest.raises(ConfigError, match="3 x labels for 60 points"):
        plots.series(x, change_points=[], x=["a", "b", "c"])
