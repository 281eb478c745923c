"""benchrun.Client: submit jobs to a benchrun job server and read their results (REST, JSON;
docs/jobs.md). Synchronous (requests), one session per client; thread-safe enough for one thread.

    c = benchrun.Client("http://127.0.0.1:8080", token)
    job = c.submit("127.0.0.1:5000/bench/app:1", ["./bench"], project=pid, timeout=60)
    c.wait(job["id"])
    for it in c.results(job["id"]):
        print(it["exit_code"], it.get("stdout", ""))
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from benchrun.errors import AuthError, ConfigError, DeadlineExceeded, JobNotFound, ServerError
from benchrun.jobs.status import STATUS_NAMES, TERMINAL_STATUSES, status_name

TERMINAL = frozenset(STATUS_NAMES[s] for s in TERMINAL_STATUSES)


def _status_name(job: Mapping[str, Any]) -> str:
    return status_name(job.get("status"))


class Client:
    """A job server client. ``token`` is a user API token (``benchrun_user_...``)."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"server URL {url!r}: expected http(s)://host[:port]")
        import requests  # imported here: `import benchrun` stays light

        self._requests = requests
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"Bearer {token}"
        self._http.headers["User-Agent"] = "benchrun-client"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- transport ---
    def _request(
        self, method: str, path: str, body: Any = None, params: Optional[Mapping[str, Any]] = None
    ) -> Any:
        try:
            r = self._http.request(
                method, self.url + path, json=body, params=params, timeout=self.timeout
            )
        except self._requests.RequestException as e:
            raise ServerError(f"{method} {self.url}{path}: {e}") from None
        if r.status_code < 300:
            return r.json() if r.content else None
        try:
            detail = r.json().get("error") or r.text
        except ValueError:
            detail = r.text
        msg = f"{method} {path}: {r.status_code} {detail}".strip()
        if r.status_code in (401, 403):
            raise AuthError(msg, r.status_code)
        if r.status_code == 404:
            raise JobNotFound(msg, 404)
        if r.status_code in (400, 422):
            raise ConfigError(msg)
        raise ServerError(msg, r.status_code)

    # --- administration (admin token) ---
    def create_project(self, name: str) -> dict[str, Any]:
        return self._request("POST", "/v0/projects", {"name": name})

    def projects(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v0/projects")

    def create_token(self, name: str, *, admin: bool = False, projects: Iterable[str] = ()) -> str:
        return self._request(
            "POST", "/v0/tokens", {"name": name, "admin": admin, "projects": list(projects)}
        )["token"]

    def create_runner(self, name: str, projects: Iterable[str]) -> tuple[dict[str, Any], str]:
        """(runner, key): the key is shown once; the server keeps only its hash."""
        d = self._request("POST", "/v0/runners", {"name": name, "projects": list(projects)})
        return d["runner"], d["key"]

    def runners(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v0/runners")

    def rotate_key(self, runner: str) -> str:
        return self._request("POST", f"/v0/runners/{runner}/key")["key"]

    def delete_runner(self, runner: str) -> dict[str, Any]:
        """Deletes (archives) a runner: its key stops working and its channels close at once."""
        return self._request("DELETE", f"/v0/runners/{runner}")

    # --- jobs ---
    def submit(
        self,
        image: str,
        command: Optional[Sequence[str]] = None,
        *,
        project: str,
        entrypoint: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: int = 60,
        outputs: Sequence[str] = (),
        iterations: Union[int, str] = 1,
        allow_failure: bool = False,
        cpus: int = 1,
        memory: Union[int, str, None] = None,
        backend: Optional[str] = None,
        priority: int = 0,
        detect: Optional[float] = None,
        history: Optional[Mapping[str, Any]] = None,
        instructions: Optional[str] = None,
        counters: Union[str, Sequence[str], None] = None,
    ) -> dict[str, Any]:
        """Submits a job; the server pins ``image`` to its current digest. Returns the job.
        ``counters``: the run option (docs/counters.md); None: the agent's default set.
        ``iterations="auto"`` with ``detect`` (0.02 = 2 %): the agent runs as many iterations as
        its host's noise figure says are needed to detect that change (`benchrun host noise`).
        ``history`` ({"branch", "commit", "benchmark"?, "metrics": "run"|"bmf"}) files the
        job's results in the project's history (docs/history.md).
        ``instructions`` ("count", "cache", "sections"): the agent runs it with --instructions
        (docs/instructions.md)."""
        from benchrun.options import parse_memory  # the same size syntax as run()

        config: dict[str, Any] = {
            "timeout": int(timeout),
            "iter": iterations if iterations == "auto" else int(iterations),
            "allow_failure": bool(allow_failure),
        }
        if detect is not None:
            config["detect"] = float(detect)
        if command is not None:
            config["cmd"] = list(command)
        if entrypoint is not None:
            config["entrypoint"] = list(entrypoint)
        if env:
            config["env"] = dict(env)
        if outputs:
            config["file_paths"] = list(outputs)
        spec: dict[str, Any] = {"cpu": int(cpus)}
        if memory is not None:
            spec["memory"] = parse_memory(memory)
        if backend is not None:
            spec["sandbox"] = backend
        if history is not None:
            spec["history"] = dict(history)
        if instructions:
            spec["instructions"] = instructions
        if counters is not None:
            from benchrun.options import parse_counters

            spec["counters"] = parse_counters(counters)
        return self._request(
            "POST",
            f"/v0/projects/{project}/jobs",
            {"image": image, "spec": spec, "config": config, "priority": int(priority)},
        )

    # --- history and alerts (docs/history.md) ---
    def upload(
        self,
        project: str,
        results: Any,
        *,
        branch: str,
        commit: str,
        testbed: Any,
        rerun: Optional[Mapping[str, Any]] = None,
        at: Optional[float] = None,
    ) -> dict[str, Any]:
        """Files BMF results (one document, or a list: one per repetition) of a commit."""
        body: dict[str, Any] = {
            "branch": branch,
            "commit": commit,
            "testbed": testbed,
            "results": results,
        }
        if rerun is not None:
            body["rerun"] = dict(rerun)
        if at is not None:
            body["at"] = float(at)
        return self._request("POST", f"/v0/projects/{project}/history/results", body)

    def testbeds(self, project: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/v0/projects/{project}/history/testbeds")

    def series(self, project: str, **filters: Optional[str]) -> list[dict[str, Any]]:
        """filters: branch, testbed, benchmark, measure."""
        params = {k: v for k, v in filters.items() if v is not None}
        return self._request("GET", f"/v0/projects/{project}/history/series", params=params)

    def series_table(self, project: str, series: str, fmt: str = "json") -> Any:
        """One series as a tidy table: {"series", "testbed", "rows"} (json) or CSV text."""
        path = f"/v0/projects/{project}/history/series/{series}"
        if fmt == "json":
            return self._request("GET", path)
        try:
            r = self._http.request(
                "GET", self.url + path, params={"format": fmt}, timeout=self.timeout
            )
        except self._requests.RequestException as e:
            raise ServerError(f"GET {self.url}{path}: {e}") from None
        if r.status_code >= 300:
            return self._request("GET", path, params={"format": fmt})  # raises the typed error
        return r.text

    def alert_configs(self, project: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/v0/projects/{project}/history/alert-configs")

    def set_alert_config(self, project: str, **config: Any) -> dict[str, Any]:
        """branch, measure, benchmark?, model?, params?, change_points?, repetitions?"""
        return self._request("PUT", f"/v0/projects/{project}/history/alert-configs", config)

    def delete_alert_config(self, project: str, config: str) -> dict[str, Any]:
        return self._request("DELETE", f"/v0/projects/{project}/history/alert-configs/{config}")

    def alerts(
        self, project: str, *, state: Optional[str] = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if state is not None:
            params["state"] = state
        return self._request("GET", f"/v0/projects/{project}/alerts", params=params)

    def alert(self, project: str, alert: str) -> dict[str, Any]:
        return self._request("GET", f"/v0/projects/{project}/alerts/{alert}")

    def dismiss_alert(self, project: str, alert: str) -> dict[str, Any]:
        return self._request("POST", f"/v0/projects/{project}/alerts/{alert}/dismiss")

    def confirm_alert(self, project: str, alert: str) -> dict[str, Any]:
        return self._request("POST", f"/v0/projects/{project}/alerts/{alert}/confirm")

    def job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v0/jobs/{job_id}")

    def jobs(
        self, project: str, *, status: Optional[str] = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        return self._request("GET", f"/v0/projects/{project}/jobs", params=params)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v0/jobs/{job_id}/cancel")

    def results(self, job_id: str) -> list[dict[str, Any]]:
        """The job's per-iteration outputs ({exit_code, stdout?, stderr?, output?}), each with the
        runner's own measurements when it sent them (benchrun agents): "metrics" (name ->
        {value, unit}, as a local Result's) and the workload's "start"/"end" (unix seconds)."""
        d = self._request("GET", f"/v0/jobs/{job_id}/results")
        if not isinstance(d, dict):
            return list(d or [])
        out = [dict(it) for it in d.get("results") or []]
        measured = d.get("iterations")
        if isinstance(measured, list) and len(measured) == len(out):
            for it, m in zip(out, measured):
                if isinstance(m, dict):
                    it.update({k: m[k] for k in ("metrics", "start", "end") if k in m})
        return out

    def wait(
        self, job_id: str, timeout: Optional[float] = None, interval: float = 0.05
    ) -> dict[str, Any]:
        """Polls until the job is completed, failed or canceled and returns it; DeadlineExceeded
        (a TimeoutError) after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = interval
        while True:
            job = self.job(job_id)
            if _status_name(job) in TERMINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(f"job {job_id} still {_status_name(job)} after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)


__all__ = ["Client", "TERMINAL"]
