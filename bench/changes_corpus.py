#!/usr/bin/env python3
"""The labelled corpus for benchrun.changes: precision, recall, false alarms and detection delay of
change point detection and of the seven threshold models (docs/regressions.md has the table).

    source scripts/venv.sh                          # benchrun installed in .venv
    python bench/changes_corpus.py                  # the table (synthetic + stored real series)
    python bench/changes_corpus.py --collect-real   # re-measure the real series on this machine
    python bench/changes_corpus.py --timing         # also time change_points on 10,000 points

Synthetic series (numpy default_rng(SEED), so the table is reproducible): 60-400 points, noise
normal or log-normal at CV 1, 2, 5 or 10 %, 1-3 steps of 1-30 % (either sign, segments >= 20
points), some with outliers (1 % of the points x1.5-3) and some with a slow drift on top; A/A
series (no change, the same noise families, with and without outliers); pure drift series
(5-20 % over the series, no step). Real series: bench/data/changes_real.json, CPU times of
bench/cpuloop.c run repeatedly on this machine (round robin over the series) with its work
scaled at known points.

Methods: change_points (benchrun.changes), three ablations of it (E-divisive on raw values with
hunter's Welch t-test at the split; on raw values with benchrun's calibrated rank test; benchrun's
without the final re-location pass), and the seven threshold models.

Scoring. A labelled change point is found when a detection lies within +-3 points of it (each
detection matches at most one label); precision = matched detections / all detections on the
step series without drift ("precision >=4σ": on those whose every shift is >= 4 sigma; the step
series with a drift on top are scored apart: a drift is a change too); recall per shift-size
class (|shift| / noise sigma, all step series); false alarms per 1,000
points on the A/A series; drift series report detections per 1,000 points separately (a drift
is a real change, but no step). Detection delay: for change points, the points appended after
the change until the incremental detector (ChangePointDetector) first reports it (median over
the found ones, on a subset); for thresholds, the first alert at or after the change minus
its index. Threshold models replay each series point by point (thresholds.scan) with window 64
and min_sample 10, boundaries: percentage 10 %, z_score / t_test / log_normal 0.99, iqr and
delta_iqr 3.0; static with limits +-10 % of the median of the first 20 points; an alert counts
as a detection (every alerting point: a step alerts on each point until the window absorbs it,
which is the false-alert flood thresholds are known for; the rows "1st per 64" keep only an
alert with no kept alert in the 64 points before it, as a user who ignores repeats would). On the real series, detections away
from the induced steps are "other"; in parentheses those within 5 points of a change point of
the real A/A series, i.e. of a shift of the host itself that every series saw.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from benchrun.changes import ChangePointDetector, Threshold, change_points, detect, energy
from benchrun.changes import significance, thresholds

HERE = Path(__file__).resolve().parent
SEED = 20261203
TOL = 3
REAL = HERE / "data" / "changes_real.json"


@dataclass
class Series:
    kind: str  # "step", "aa", "drift", "real"
    values: np.ndarray
    cps: list[int]
    shifts_sigma: list[float] = field(default_factory=list)  # |shift| / sigma per change point
    name: str = ""


def _noise(rng: np.random.Generator, n: int, cv: float, family: str) -> np.ndarray:
    if family == "normal":
        return rng.normal(1.0, cv, n)
    s = np.sqrt(np.log(1 + cv * cv))  # log-normal with mean 1 and this CV
    return rng.lognormal(-s * s / 2, s, n)


def synthetic(rng: np.random.Generator) -> list[Series]:
    out: list[Series] = []
    cvs = (0.01, 0.02, 0.05, 0.10)
    shifts = (0.01, 0.02, 0.05, 0.10, 0.20, 0.30)
    for i in range(480):  # labelled steps
        n = int(rng.integers(100, 401))
        k = int(rng.integers(1, 4))
        cv = float(rng.choice(cvs))
        fam = "normal" if i % 2 == 0 else "lognormal"
        while True:
            cps = sorted(int(c) for c in rng.choice(np.arange(20, n - 19), k, replace=False))
            if all(b - a >= 20 for a, b in zip([0, *cps], [*cps, n])):
                break
        level = np.ones(n)
        sig = []
        for c in cps:
            s = float(rng.choice(shifts)) * float(rng.choice([-1, 1]))
            level[c:] *= 1 + s
            sig.append(abs(s) / cv)
        x = level * _noise(rng, n, cv, fam)
        if i % 5 == 0:  # outliers
            idx = rng.choice(n, max(1, n // 100), replace=False)
            x[idx] *= rng.uniform(1.5, 3.0, idx.size)
        kind = "step"
        if i % 7 == 0:  # a slow drift on top (2 % over the series)
            x *= np.linspace(1.0, 1.02, n)
            kind = "stepdrift"
        out.append(Series(kind, 100 * x, cps, sig, f"{kind}-{fam}-cv{cv:g}"))
    for i in range(200):  # A/A
        n = int(rng.integers(100, 501))
        cv = float(rng.choice(cvs))
        fam = "normal" if i % 2 == 0 else "lognormal"
        x = _noise(rng, n, cv, fam)
        if i % 4 == 0:
            idx = rng.choice(n, max(1, n // 100), replace=False)
            x[idx] *= rng.uniform(1.5, 3.0, idx.size)
        out.append(Series("aa", 100 * x, [], [], f"aa-{fam}-cv{cv:g}"))
    for i in range(40):  # slow drifts, no step
        n = int(rng.integers(150, 401))
        cv = float(rng.choice(cvs))
        total = float(rng.uniform(0.05, 0.20))
        x = np.linspace(1.0, 1.0 + total, n) * _noise(rng, n, cv, "lognormal")
        out.append(Series("drift", 100 * x, [], [], f"drift-{total:.2f}-cv{cv:g}"))
    return out


# --- real series ------------------------------------------------------------------------------

REAL_PLAN: dict[str, tuple[int, dict[int, float]]] = {  # name: (length, {index: factor})
    "real-aa-1": (400, {}),
    "real-aa-2": (400, {}),
    "real-steps-5-3": (300, {100: 1.05, 200: 1.02}),
    "real-step-2": (300, {150: 1.02}),
    "real-step-10": (300, {120: 1.10}),
    "real-up-down-20": (300, {80: 1.20, 220: 1.0}),
}


def collect_real() -> None:
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    exe = out_dir / "cpuloop"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(HERE / "cpuloop.c")], check=True)

    def run(n: int) -> float:
        """The run's CPU time (user + system, from wait4's rusage): on a shared machine the wall
        time mostly measures the other tenants; the CPU time is what the work costs."""
        p = subprocess.Popen([str(exe), str(n)], stdout=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise RuntimeError(f"cpuloop exited with {p.returncode}")
        return ru.ru_utime + ru.ru_stime

    base = 2_000_000
    t = np.median([run(base) for _ in range(5)])
    base = int(base * 0.020 / t)  # ~20 ms of CPU a run
    series: dict[str, list[float]] = {name: [] for name in REAL_PLAN}
    longest = max(n for n, _ in REAL_PLAN.values())
    for i in range(longest):  # round robin: the machine's drift reaches every series alike
        for name, (n, steps) in REAL_PLAN.items():
            if i >= n:
                continue
            factor = 1.0
            for at in sorted(steps):
                if i >= at:
                    factor = steps[at]
            series[name].append(run(int(base * factor)))
    doc = {
        "what": "CPU time (s, user + system) of bench/cpuloop.c runs, work scaled by the factor "
        "from each index",
        "host": platform.node(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "collected": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "iterations": base,
        "series": [
            {
                "name": name,
                "values": [round(v, 7) for v in series[name]],
                "change_points": sorted(k for k in steps),
                "factors": {str(k): v for k, v in steps.items()},
            }
            for name, (n, steps) in REAL_PLAN.items()
        ],
    }
    REAL.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {REAL}", file=sys.stderr)


def real() -> list[Series]:
    if not REAL.exists():
        return []
    doc = json.loads(REAL.read_text())
    out = []
    for s in doc["series"]:
        x = np.asarray(s["values"], dtype=float)
        cps = list(s["change_points"])
        factors = {int(k): v for k, v in s["factors"].items()}
        # sigma from the first segment's MAD (robust: the host's noise bursts are outliers)
        first = x[: cps[0]] if cps else x
        sigma = (
            1.4826 * float(np.median(np.abs(first - np.median(first)))) / float(np.median(first))
        )
        sig, prev = [], 1.0
        for c in cps:
            sig.append(abs(factors[c] / prev - 1) / sigma)
            prev = factors[c]
        out.append(Series("real" if cps else "real-aa", x, cps, sig, s["name"]))
    return out


# --- scoring ----------------------------------------------------------------------------------


def match(dets: list[int], cps: list[int]) -> tuple[int, list[bool]]:
    """(matched detections, found flag per change point), greedy nearest within TOL."""
    used = set()
    found = []
    for c in cps:
        best = None
        for j, d in enumerate(dets):
            if (
                j not in used
                and abs(d - c) <= TOL
                and (best is None or abs(d - c) < abs(dets[best] - c))
            ):
                best = j
        if best is not None:
            used.add(best)
        found.append(best is not None)
    return len(used), found


CLASSES = ((0, 1), (1, 2), (2, 4), (4, float("inf")))


def klass(s: float) -> str:
    for lo, hi in CLASSES:
        if lo <= s < hi:
            return f"{lo}-{hi:g}σ" if hi != float("inf") else f">={lo}σ"
    return "?"


def thresholds_models(series: Series) -> dict[str, Threshold]:
    first = float(np.median(series.values[:20]))
    return {
        "static": Threshold("static", upper=first * 1.1, lower=first * 0.9),
        "percentage": Threshold("percentage", upper=0.10, lower=0.10, window=64, min_sample=10),
        "z_score": Threshold("z_score", upper=0.99, lower=0.99, window=64, min_sample=10),
        "t_test": Threshold("t_test", upper=0.99, lower=0.99, window=64, min_sample=10),
        "log_normal": Threshold("log_normal", upper=0.99, lower=0.99, window=64, min_sample=10),
        "iqr": Threshold("iqr", upper=3.0, lower=3.0, window=64, min_sample=10),
        "delta_iqr": Threshold("delta_iqr", upper=3.0, lower=3.0, window=64, min_sample=10),
    }


# Ablations of change_points (what each of its choices buys), scored as the real thing:
#   "raw + t-test"     E-divisive on the values, kept when Welch's t-test at the split has p <
#                      alpha (hunter's significance test: blind to the search over splits)
#   "raw + rank test"  E-divisive on the values, benchrun's calibrated rank test
#   "no refine"        benchrun's without the final re-location pass
ABLATIONS = ("raw + t-test", "raw + rank test", "no refine")
METHODS = ("change_points", *ABLATIONS) + thresholds.MODELS


def _bisect(x: np.ndarray, alpha: float, min_size: int, split: Any) -> list[int]:
    found, stack = [], [(0, x.size)]
    while stack:
        lo, hi = stack.pop()
        got = split(x[lo:hi], min_size)
        if got is None or got[1] >= alpha:
            continue
        found.append(lo + got[0])
        stack += [(lo, lo + got[0]), (lo + got[0], hi)]
    return sorted(found)


def _raw_split(test: str) -> Any:
    from scipy import stats as sst

    def split(x: np.ndarray, min_size: int) -> Optional[tuple[int, float]]:
        if x.size < 2 * min_size:
            return None
        q = energy.split_statistic(x, min_size)
        if not np.any(np.isfinite(q)) or np.nanmax(q) <= 0:
            return None
        t = int(np.nanargmax(q))
        if test == "t":
            return t, float(sst.ttest_ind(x[:t], x[t:], equal_var=False).pvalue)
        z = float(significance.z_scores(x, min_size)[t])
        return t, significance.p_value(z, x.size, min_size)

    return split


def detections(method: str, s: Series) -> list[int]:
    if method == "change_points":
        return change_points(s.values)
    if method == "raw + t-test":
        return _bisect(s.values, 0.01, 5, _raw_split("t"))
    if method == "raw + rank test":
        return _bisect(s.values, 0.01, 5, _raw_split("rank"))
    if method == "no refine":
        return _bisect(s.values, 0.01, 5, detect.best_split)
    return thresholds.scan(thresholds_models(s)[method], s.values)


def delay_cp(s: Series) -> list[int]:
    """Points after each change until the incremental detector reports it (found ones only)."""
    d = ChangePointDetector()
    pending = list(s.cps)
    delays = []
    for t, v in enumerate(s.values):
        cps = d.append(float(v))
        for c in list(pending):
            if t - c > 60:
                pending.remove(c)
            elif any(abs(x - c) <= TOL for x in cps):
                delays.append(t - c)
                pending.remove(c)
        if not pending and t > s.cps[-1] + 60:
            break
    return delays


def delay_threshold(dets: list[int], cps: list[int], n: int) -> list[int]:
    out = []
    bounds = [*cps[1:], n]
    for c, nxt in zip(cps, bounds):
        after = [d for d in dets if c <= d < nxt]
        if after and after[0] - c <= 60:
            out.append(after[0] - c)
    return out


def streaming_aa(corpus: list[Series], count: int) -> tuple[int, int, int]:
    """(change points ever reported while the series grew, still reported at the end, points)
    over the first ``count`` A/A series fed point by point to ChangePointDetector: a point an
    alerting system would have seen (and a confirmation run would have to clear)."""
    ever = final = pts = 0
    for s in [s for s in corpus if s.kind == "aa"][:count]:
        d = ChangePointDetector()
        seen: list[int] = []
        for v in s.values:
            for c in d.append(float(v)):
                if not any(abs(c - x) <= TOL for x in seen):
                    seen.append(c)
        ever += len(seen)
        final += len(d.change_points)
        pts += s.values.size
    return ever, final, pts


def host_shifts(corpus: list[Series]) -> list[int]:
    """Change points of the real A/A series: the host's own level shifts (the real series were
    measured round robin, so a host shift reaches every series at about the same index)."""
    return sorted(c for s in corpus if s.kind == "real-aa" for c in change_points(s.values))


def first_per_window(ds: list[int], gap: int = 64) -> list[int]:
    """The alerts that have no kept alert in the ``gap`` points before them: a user who reads an
    alert and ignores its repeats until the window has moved past the change."""
    kept: list[int] = []
    for d in ds:
        if not kept or d - kept[-1] >= gap:
            kept.append(d)
    return kept


def score(corpus: list[Series], dets: dict[int, list[int]], shifts: list[int], delay_of) -> dict:  # type: ignore[no-untyped-def]
    tp = det = 0
    rec: dict[str, list[int]] = {klass(lo): [0, 0] for lo, _ in CLASSES}
    big_tp = big_det = sd_tp = sd_det = 0
    aa_fa = aa_pts = dr_fa = dr_pts = 0
    real_found = real_total = real_fa = real_host = 0
    delays: list[int] = []
    for i, s in enumerate(corpus):
        ds = dets[i]
        if s.kind in ("step", "stepdrift", "real"):
            matched, found = match(ds, s.cps)
            if s.kind == "stepdrift":
                sd_tp += matched
                sd_det += len(ds)
            if s.kind in ("step", "stepdrift"):
                if s.kind == "step":
                    tp += matched
                    det += len(ds)
                for f, sg in zip(found, s.shifts_sigma):
                    rec[klass(sg)][0] += f
                    rec[klass(sg)][1] += 1
                if min(s.shifts_sigma) >= 4 and s.kind == "step":
                    big_tp += matched
                    big_det += len(ds)
                delays += delay_of(i, s, ds)
            else:
                real_found += sum(found)
                real_total += len(found)
                extra = [d for d in ds if all(abs(d - c) > TOL for c in s.cps)]
                real_fa += len(extra)
                real_host += sum(any(abs(d - h) <= 5 for h in shifts) for d in extra)
        elif s.kind == "aa":
            aa_fa += len(ds)
            aa_pts += s.values.size
        elif s.kind == "real-aa":
            real_fa += len(ds)
            real_host += sum(any(abs(d - h) <= 5 for h in shifts) for d in ds)
        else:
            dr_fa += len(ds)
            dr_pts += s.values.size
    return {
        "precision": tp / det if det else float("nan"),
        "recall": {k: (v[0] / v[1] if v[1] else float("nan")) for k, v in rec.items()},
        "precision_4sigma": big_tp / big_det if big_det else float("nan"),
        "precision_stepdrift": sd_tp / sd_det if sd_det else float("nan"),
        "aa_per_1000": 1000 * aa_fa / aa_pts,
        "drift_per_1000": 1000 * dr_fa / dr_pts if dr_pts else float("nan"),
        "delay_median": float(np.median(delays)) if delays else float("nan"),
        "real_recall": f"{real_found}/{real_total}",
        "real_false": f"{real_fa} ({real_host})",
    }


def evaluate(corpus: list[Series], delay_subset: int) -> dict:
    rows = {}
    shifts = host_shifts(corpus)
    steps = [i for i, s in enumerate(corpus) if s.kind in ("step", "stepdrift")][:delay_subset]

    def cp_delay(i: int, s: Series, ds: list[int]) -> list[int]:
        return delay_cp(s) if i in steps else []

    def th_delay(i: int, s: Series, ds: list[int]) -> list[int]:
        return delay_threshold(ds, s.cps, s.values.size)

    for m in METHODS:
        dets = {i: detections(m, s) for i, s in enumerate(corpus)}
        if m == "change_points":
            rows[m] = score(corpus, dets, shifts, cp_delay)
            continue
        if m in ABLATIONS:
            rows[f"ablation: {m}"] = score(corpus, dets, shifts, lambda i, s, ds: [])
            continue
        rows[m] = score(corpus, dets, shifts, th_delay)
        first = {i: first_per_window(d) for i, d in dets.items()}
        rows[f"{m}, 1st per 64"] = score(corpus, first, shifts, th_delay)
    return rows


def table(rows: dict, corpus: list[Series]) -> str:
    kinds = ("step", "stepdrift", "aa", "drift", "real", "real-aa")
    n_pts = {k: sum(s.values.size for s in corpus if s.kind == k) for k in kinds}
    n_ser = {k: sum(1 for s in corpus if s.kind == k) for k in kinds}
    classes = [klass(lo) for lo, _ in CLASSES]
    head = [
        "method",
        "precision",
        *[f"recall {c}" for c in classes],
        "precision ≥4σ",
        "precision step+drift",
        "A/A FA/1000",
        "drift det/1000",
        "delay (median)",
        "real: found",
        "real: other (host shift)",
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(v: float, pct: bool = True) -> str:
        return "–" if v != v else (f"{v:.3f}" if pct else f"{v:.1f}")

    for m, r in rows.items():
        out.append(
            "| "
            + " | ".join(
                [
                    m,
                    f(r["precision"]),
                    *[f(r["recall"][c]) for c in classes],
                    f(r["precision_4sigma"]),
                    f(r["precision_stepdrift"]),
                    f(r["aa_per_1000"], False),
                    f(r["drift_per_1000"], False),
                    f(r["delay_median"], False),
                    r["real_recall"],
                    str(r["real_false"]),
                ]
            )
            + " |"
        )
    out.append("")
    out.append(
        f"corpus: {n_ser['step']} step series ({n_pts['step']} points), {n_ser['stepdrift']} "
        f"step series with a 2 % drift on top ({n_pts['stepdrift']} points), {n_ser['aa']} A/A "
        f"({n_pts['aa']} points), {n_ser['drift']} drift ({n_pts['drift']} points), "
        f"{n_ser['real']} real with steps + {n_ser['real-aa']} real A/A; seed {SEED}, ±{TOL} points"
    )
    return "\n".join(out)


def timing() -> str:
    rng = np.random.default_rng(1)
    lines = []
    for name, x in (
        ("A/A", 100 * rng.lognormal(0, 0.05, 10_000)),
        (
            "10 steps",
            100 * rng.lognormal(0, 0.05, 10_000) * np.repeat(1 + 0.1 * (np.arange(10) % 2), 1000),
        ),
    ):
        significance._null_max.cache_clear()
        cold = _timed(lambda: change_points(x))  # simulates the significance nulls it needs
        best = min(_timed(lambda: change_points(x)) for _ in range(3))
        lines.append(
            f"change_points, 10,000 points ({name}): {cold * 1000:.0f} ms cold (empty null "
            f"cache), {best * 1000:.0f} ms warm (best of 3)"
        )
    d = ChangePointDetector()
    d.extend(100 * rng.lognormal(0, 0.05, 10_000))
    best = min(_timed(lambda: d.append(100.0)) for _ in range(5))
    lines.append(f"ChangePointDetector.append on a 10,000-point history: {best * 1000:.0f} ms")
    return "\n".join(lines)


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collect-real", action="store_true", help="re-measure the real series")
    ap.add_argument("--timing", action="store_true", help="also time 10,000-point series")
    ap.add_argument(
        "--delay-subset",
        type=int,
        default=60,
        help="step series replayed point by point for the change point delay",
    )
    ap.add_argument(
        "--streaming",
        type=int,
        default=40,
        metavar="N",
        help="A/A series replayed point by point for the streaming false alarms",
    )
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()
    if args.collect_real:
        collect_real()
    corpus = synthetic(np.random.default_rng(SEED)) + real()
    t = time.perf_counter()
    rows = evaluate(corpus, args.delay_subset)
    print(table(rows, corpus))
    print(f"(evaluated in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
    if args.streaming:
        ever, final, pts = streaming_aa(corpus, args.streaming)
        print(
            f"\nchange_points, incremental on {args.streaming} A/A series ({pts} points): "
            f"{ever} change points reported at some update ({1000 * ever / pts:.2f} per 1,000 "
            f"points), {final} still reported at the end"
        )
    if args.timing:
        print()
        print(timing())
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
