"""`benchrun report`'s host line: the host measurement state the campaign's runs recorded
(Result.facts["host_state"] -> runs.host "state" -> host_state_* columns)."""

from __future__ import annotations

import json

import pandas as pd

from benchrun.report import host_lines
from benchrun.results import host_columns


def frame(states: list) -> pd.DataFrame:
    rows = []
    for i, state in enumerate(states):
        host = {"cpu_model": "x"} if state is None else {"cpu_model": "x", "state": state}
        for measure in ("wall_time", "cpu_user"):  # two metric rows per run
            rows.append({"run": f"c#{i}", "campaign": "c", "campaign_name": "camp",
                         "started": 100.0 + i, "measure": measure,
                         **host_columns(json.dumps(host))})  # fmt: skip
    return pd.DataFrame(rows)


TUNED = {"tuned": True, "differs": [], "cpus": [1], "journal": True,
         "noise": {"score": 0.012, "measured_at": 1.0, "age_s": 3 * 3600.0}}  # fmt: skip
UNTUNED = {"tuned": False, "differs": ["aslr", "thp_enabled"], "cpus": None, "journal": False,
           "noise": None}  # fmt: skip


def test_tuned_with_noise():
    assert host_lines(frame([TUNED, TUNED])) == ["host: tuned (cpus 1) · noise 1.2% (3 h old)"]


def test_not_tuned():
    assert host_lines(frame([UNTUNED, UNTUNED])) == ["host: NOT tuned: aslr, thp_enabled"]
    assert host_lines(frame([TUNED, UNTUNED])) == [
        "host: NOT tuned in 1 of 2 runs: aslr, thp_enabled"
    ]


def test_no_state_recorded():
    assert host_lines(frame([None, None])) == []
