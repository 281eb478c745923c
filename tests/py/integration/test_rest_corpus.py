"""REST request bodies from the hostile-input corpus (tests/corpus/rest/) and a bounded, seeded
Hypothesis fuzz, sent to a real `benchrun serve` (SQLite): every answer must be a 2xx or a 4xx with
the documented {"error": ...} body, never a 500 or a dropped connection.

File names say the route: projects-*, tokens-*, runners-*, jobs-* (POST /v0/projects/{p}/jobs).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from support.jobs import JobServer

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "rest"

hypothesis = pytest.importorskip("hypothesis", reason="python3-hypothesis (scripts/bootstrap.sh)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("rest-corpus")
    s = JobServer(work, f"sqlite:///{work / 'jobs.db'}")
    s.project = s.client().create_project("corpus")["id"]
    yield s
    s.stop()


def post(server: JobServer, path: str, body: bytes) -> tuple[int, Any]:
    req = urllib.request.Request(
        server.url + path,
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {server.admin_token}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def route(server: JobServer, name: str) -> str:
    kind = name.split("-")[0]
    return {
        "projects": "/v0/projects",
        "tokens": "/v0/tokens",
        "runners": "/v0/runners",
        "jobs": f"/v0/projects/{server.project}/jobs",
    }[kind]


def assert_handled(status: int, doc: Any, what: str) -> None:
    assert status < 500, f"{what}: HTTP {status}: {doc}"
    if status >= 400:
        assert isinstance(doc, dict) and isinstance(doc.get("error"), str), f"{what}: {doc}"


@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda p: p.name)
def test_rest_corpus(server, path: Path) -> None:
    status, doc = post(server, route(server, path.name), path.read_bytes())
    assert_handled(status, doc, path.name)


def test_rest_deep_nesting(server) -> None:
    status, doc = post(server, "/v0/projects", b'{"name":' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert_handled(status, doc, "deep nesting")


FIELDS = [
    "name",
    "role",
    "projects",
    "image",
    "spec",
    "config",
    "entrypoint",
    "cmd",
    "env",
    "timeout",
    "cpu",
    "memory",
    "disk",
    "outputs",
    "backend",
    "iterations",
    "vcpus",
    "testbed",
    "branch",
    "adapter",
]
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=16),
        st.sampled_from(["user", "admin", "busybox", "localhost:1/x:y", "/bin/true"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=5),
    ),
    max_leaves=20,
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    kind=st.sampled_from(["projects", "tokens", "runners", "jobs"]),
    body=st.one_of(
        st.dictionaries(st.sampled_from(FIELDS), values, max_size=6).map(json.dumps),
        values.map(json.dumps),
        st.text(max_size=64),
    ),
)
def test_rest_fuzz(server, kind: str, body: str) -> None:
    status, doc = post(server, route(server, kind), body.encode())
    assert_handled(status, doc, f"{kind} {body[:200]}")
