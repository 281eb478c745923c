"""The JSON REST API: projects, tokens and runners (admin), job submission, listing, cancel and
results. A token scoped to projects sees only their jobs: anything else is 404, never 403, so job
ids do not leak. Images are pinned to a digest at submission."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
import uuid
from typing import Any, Optional

from aiohttp import web

from benchrun import image as _image
from benchrun.errors import AuthError, ConfigError, ImageError, ImageNotFound, RegistryError
from benchrun.jobs import protocol as p
from benchrun.server import auth
from benchrun.server.config import ServerConfig
from benchrun.server.db.base import Job, Principal, Project, Runner
from benchrun.server.http import http_error, json_response, read_json
from benchrun.server.openapi import Route
from benchrun.server.state import STATE_KEY, ServerState

log = logging.getLogger("benchrun.server")

_CONFIG_KEYS = {
    "entrypoint",
    "cmd",
    "env",
    "timeout",
    "file_paths",
    "iter",
    "allow_failure",
    "detect",
}
# Resources, plus the descriptive fields of upstream's JsonSpec, passed through to runners.
_SPEC_KEYS = {
    "cpu",
    "memory",
    "disk",
    "network",
    "sandbox",
    "instructions",
    "counters",
    "uuid",
    "name",
    "slug",
    "os",
    "architecture",
    "fallback",
    "created",
    "modified",
    "archived",
    "history",  # benchrun: branch/commit of the results (checked by history.ingest)
}
_RUNNER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PRIORITY_RANGE = (0, 1000)
MAX_LIST = 1000


def _state(request: web.Request) -> ServerState:
    return request.app[STATE_KEY]


# --- JSON shapes ----------------------------------------------------------------------------


def job_json(job: Job, *, results: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {
        # status is upstream's integer enum (0 pending ... 6 canceled); status_name spells it.
        "id": job.id,
        "project": job.project,
        "status": job.status,
        "status_name": p.STATUS_NAMES[job.status],
        "priority": job.priority,
        "image": job.config.get("image"),
        "spec": job.spec,
        "config": job.config,
        "timeout": job.timeout,
        "created": job.created,
        "runner": job.runner,
        "claimed": job.claimed,
        "started": job.started,
        "ended": job.ended,
        "last_heartbeat": job.last_heartbeat,
        "error": job.error or None,
        "reason": job.reason,
        "timings": job.timings,
        "host_state": job.host_state,
        "testbed": job.testbed,
        "pin_runner": job.pin_runner,
    }
    if results:
        d["results"] = job.results
    return d


def project_json(pr: Project) -> dict[str, Any]:
    return {"id": pr.id, "name": pr.name, "created": pr.created}


def runner_json(r: Runner) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "projects": list(r.projects),
        "created": r.created,
        "last_seen": r.last_seen,
        "archived": r.archived,
    }


# --- helpers ----------------------------------------------------------------------------------


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise http_error(404, f"{what} '{value[:64]}' not found") from None


async def _project(state: ServerState, principal: Principal, project_id: str) -> Project:
    pid = _uuid(project_id, "project")
    pr = await state.db.get_project(pid) if principal.can_see(pid) else None
    if pr is not None:
        return pr
    raise http_error(404, f"project '{project_id[:64]}' not found")


async def _job(state: ServerState, principal: Principal, job_id: str) -> Job:
    jid = _uuid(job_id, "job")
    job = await state.db.get_job(jid)
    if job is None or not principal.can_see(job.project):
        raise http_error(404, f"job '{job_id[:64]}' not found")
    return job


def _refuse_secrets(doc: dict[str, Any], where: str) -> None:
    """Secrets in a job are not supported yet (docs/security.md "Secrets"): refused by name, the
    values neither stored nor echoed."""
    if isinstance(doc, dict) and "secrets" in doc:
        raise ConfigError(
            f"{where}.secrets: jobs cannot carry secrets yet (coming: per-project secrets "
            "stored encrypted on the server, referenced by name); nothing was stored. Run "
            "locally with `benchrun run --secret` meanwhile"
        )


def _check_keys(doc: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(doc) - allowed
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)}; " f"allowed: {sorted(allowed)}"
        )


def _str_field(doc: dict[str, Any], key: str, where: str, *, max_len: int = 128) -> str:
    v = doc.get(key)
    if not isinstance(v, str) or not v.strip() or len(v) > max_len:
        raise ConfigError(
            f"{where}.{key}: expected a non-empty string of at most {max_len} " "characters"
        )
    return v.strip()


def _query_int(request: web.Request, key: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ConfigError(f"query '{key}': expected an integer, got '{raw[:32]}'") from None
    if not lo <= v <= hi:
        raise ConfigError(f"query '{key}': {v} is outside [{lo}, {hi}]")
    return v


def _status_filter(raw: Optional[str]) -> Optional[int]:
    if raw is None or raw == "":
        return None
    if raw.isdigit() and int(raw) < len(p.STATUS_NAMES):
        return int(raw)
    if raw in p.STATUS_NAMES:
        return p.STATUS_NAMES.index(raw)
    raise ConfigError(f"query 'status': '{raw[:32]}' is not one of {', '.join(p.STATUS_NAMES)}")


def _before(raw: Optional[str]) -> Optional[float]:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"query 'before': expected unix seconds, got '{raw[:32]}'") from None


async def _project_ids(state: ServerState, ids: Any, where: str) -> tuple[str, ...]:
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ConfigError(f"{where}: expected a list of project ids")
    known = {pr.id for pr in await state.db.list_projects()}
    out = []
    for i in ids:
        try:
            pid = str(uuid.UUID(i))
        except ValueError:
            raise ConfigError(f"{where}: '{i[:64]}' is not a project id") from None
        if pid not in known:
            raise ConfigError(f"{where}: no project '{pid}'")
        out.append(pid)
    return tuple(dict.fromkeys(out))


# --- image references ---------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    h = host[1 : host.index("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def registry_url(host: str, insecure: tuple[str, ...] = ()) -> str:
    """The http(s) URL of a registry host; plain HTTP only for loopback registries and those the
    server was told are insecure (which the runners must reach the same way)."""
    if host == "docker.io":
        return "https://registry-1.docker.io"
    scheme = "http" if _is_loopback(host) or host in insecure else "https"
    return f"{scheme}://{host}"


async def pin_image(ref: str, cfg: ServerConfig, project: Project) -> tuple[str, str, str]:
    """ref -> (registry URL, manifest digest, repository@digest). Tags are resolved against the
    registry now, so every run of the job uses the same image. The registry must be on the
    project's allow-list (registries.py) before anything is sent to it, pinned or not; what a
    failed resolution returns to the submitter is generic (the details go to the server log), so
    the server is not a probe that reports what answers at a host:port."""
    if ref.startswith("docker://"):
        ref = ref[len("docker://") :]
    if re.match(r"^(oci|oci-archive|docker-archive|containers-storage):", ref):
        raise ConfigError(
            f"image '{ref[:128]}': jobs need a registry reference, " "not a local transport"
        )
    normalized = _image.normalize_reference(ref)
    name, _, digest = normalized.partition("@")
    last = name.rsplit("/", 1)[-1]
    repo = name.rsplit(":", 1)[0] if ":" in last else name
    host = repo.split("/", 1)[0]
    if not cfg.registries.allows(project.id, project.name, host):
        log.warning(
            "submission to project %s refused: registry '%s' is not allowed",
            project.name,
            host[:128],
        )
        raise ConfigError(
            f"image '{ref[:128]}': registry '{host[:128]}' is not allowed for project "
            f"'{project.name}' (the server's --allow-registry list)"
        )
    if not digest:
        try:
            digest = await asyncio.to_thread(
                _image.resolve_digest,
                normalized,
                insecure_registries=cfg.insecure_registries,
                username=cfg.registry_username,
                password=cfg.registry_password,
                registry_token=cfg.registry_token,
                docker_config=cfg.docker_config,
            )
        except (RegistryError, ImageError, OSError) as e:
            raise _resolve_failed(ref, host, e) from None
    return registry_url(host, cfg.insecure_registries), digest, f"{repo}@{digest}"


def _resolve_failed(ref: str, host: str, e: Exception) -> Exception:
    """What the submitter learns about a failed tag resolution: not found, access denied, or a
    generic failure. The registry's own status and text are logged, never returned."""
    log.warning("resolve '%s' at registry '%s' failed: %s", ref[:256], host[:128], e)
    status = getattr(e, "http_status", 0)
    what = f"image '{ref[:128]}'"
    if isinstance(e, ImageNotFound) or status == 404:
        return ImageNotFound(f"{what}: not found in registry '{host[:128]}'")
    if isinstance(e, AuthError) or status in (401, 403):
        return RegistryError(f"{what}: registry '{host[:128]}' refused access", status)
    return RegistryError(
        f"{what}: could not resolve its digest at registry '{host[:128]}' (the server's log "
        "has the details)"
    )


# --- handlers -------------------------------------------------------------------------------


async def create_project(request: web.Request) -> web.Response:
    state = _state(request)
    await auth.admin(request, state.db)
    body = await read_json(request)
    _check_keys(body, {"name"}, "project")
    pr = await state.db.create_project(_str_field(body, "name", "project"))
    return json_response(project_json(pr), 201)


async def list_projects(request: web.Request) -> web.Response:
    state = _state(request)
    principal = await auth.user(request, state.db)
    return json_response(
        [project_json(pr) for pr in await state.db.list_projects() if principal.can_see(pr.id)]
    )


async def create_token(request: web.Request) -> web.Response:
    state = _state(request)
    await auth.admin(request, state.db)
    body = await read_json(request)
    _check_keys(body, {"name", "admin", "projects"}, "token")
    name = _str_field(body, "name", "token")
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise ConfigError("token.admin: expected a boolean")
    projects = await _project_ids(state, body.get("projects", []), "token.projects")
    secret = await state.db.create_token(name, admin=admin, projects=projects)
    return json_response(
        {"token": secret, "name": name, "admin": admin, "projects": list(projects)}, 201
    )


async def create_runner(request: web.Request) -> web.Response:
    state = _state(request)
    await auth.admin(request, state.db)
    body = await read_json(request)
    _check_keys(body, {"name", "projects"}, "runner")
    name = _str_field(body, "name", "runner", max_len=63)
    if not _RUNNER_NAME.match(name):
        raise ConfigError(f"runner.name '{name}': use lowercase letters, digits and '-'")
    if await state.db.get_runner(name) is not None:
        raise http_error(409, f"runner '{name}' already exists")
    projects = await _project_ids(state, body.get("projects", []), "runner.projects")
    runner, key = await state.db.create_runner(name, projects)
    return json_response({"runner": runner_json(runner), "key": key}, 201)


async def list_runners(request: web.Request) -> web.Response:
    state = _state(request)
    await auth.admin(request, state.db)
    return json_response([runner_json(r) for r in await state.db.list_runners()])


async def rotate_runner_key(request: web.Request) -> web.Response:
    state = _state(request)
    await auth.admin(request, state.db)
    ident = request.match_info["runner"]
    runner = await state.db.get_runner(ident)
    key = await state.db.rotate_runner_key(runner.id) if runner is not None else None
    if runner is None or key is None:
        raise http_error(404, f"runner '{ident[:64]}' not found")
    return json_response({"runner": runner_json(runner), "key": key})


async def delete_runner(request: web.Request) -> web.Response:
    """Archives the runner (its jobs keep pointing at it): its key stops working and its channels,
    in every server process, close at once."""
    state = _state(request)
    await auth.admin(request, state.db)
    ident = request.match_info["runner"]
    runner = await state.db.update_runner(ident, archived=True, at=time.time())
    if runner is None:
        raise http_error(404, f"runner '{ident[:64]}' not found")
    return json_response(runner_json(runner))


async def prepare_job(
    state: ServerState, project: Project, body: dict[str, Any], where: str = "job"
) -> tuple[dict[str, Any], p.JobConfig, int]:
    """A job submission body checked and its image pinned: (spec, config, priority)."""
    _refuse_secrets(body, where)
    _check_keys(body, {"image", "spec", "config", "priority"}, where)
    ref = _str_field(body, "image", where, max_len=1024)
    spec_in = body.get("spec") or {}
    if not isinstance(spec_in, dict):
        raise ConfigError(f"{where}.spec: expected an object")
    _refuse_secrets(spec_in, f"{where}.spec")
    _check_keys(spec_in, _SPEC_KEYS, f"{where}.spec")
    if spec_in.get("instructions") not in (None, "count", "cache", "sections"):
        raise ConfigError(f"{where}.spec.instructions: expected count, cache, sections or null")
    spec = p.parse_spec(spec_in, f"{where}.spec").to_json()
    if spec_in.get("history") is not None:
        # benchrun: where the job's results go in the project's history (docs/history.md).
        from benchrun.server.history.ingest import parse_history_spec

        spec["history"] = parse_history_spec(spec_in["history"], f"{where}.spec.history")
    else:
        spec.pop("history", None)
    cfg_in = body.get("config") or {}
    if not isinstance(cfg_in, dict):
        raise ConfigError(f"{where}.config: expected an object")
    _check_keys(cfg_in, _CONFIG_KEYS, f"{where}.config")
    priority = body.get("priority", 0)
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]
    ):
        raise ConfigError(f"{where}.priority: expected an integer in {list(PRIORITY_RANGE)}")
    cfg = state.config
    timeout = cfg_in.get("timeout", cfg.default_job_timeout)
    # Validate what the user wrote before asking a registry anything.
    p.parse_config(
        {
            **cfg_in,
            "timeout": timeout,
            "registry": "https://x",
            "project": project.id,
            "digest": "sha256:" + "0" * 64,
        },
        f"{where}.config",
    )
    registry, digest, pinned = await pin_image(ref, cfg, project)
    config = p.parse_config(
        {
            **cfg_in,
            "timeout": timeout,
            "registry": registry,
            "project": project.id,
            "digest": digest,
            "image": pinned,
        },
        f"{where}.config",
    )
    return spec, config, priority


async def submit_job(request: web.Request) -> web.Response:
    state = _state(request)
    principal = await auth.user(request, state.db)
    project = await _project(state, principal, request.match_info["project"])
    body = await read_json(request)
    spec, config, priority = await prepare_job(state, project, body)
    job = await state.db.submit_job(
        project.id,
        spec,
        config.to_json(),
        priority=priority,
        timeout=config.timeout,
        at=time.time(),
    )
    return json_response(job_json(job), 201)


async def _list(request: web.Request, projects: Optional[tuple[str, ...]]) -> web.Response:
    state = _state(request)
    runner = request.query.get("runner") or None
    jobs = await state.db.list_jobs(
        projects=projects,
        status=_status_filter(request.query.get("status")),
        runner=runner,
        limit=_query_int(request, "limit", 100, 1, MAX_LIST),
        before=_before(request.query.get("before")),
    )
    return json_response([job_json(j) for j in jobs])


async def list_project_jobs(request: web.Request) -> web.Response:
    state = _state(request)
    principal = await auth.user(request, state.db)
    project = await _project(state, principal, request.match_info["project"])
    return await _list(request, (project.id,))


async def list_jobs(request: web.Request) -> web.Response:
    state = _state(request)
    principal = await auth.user(request, state.db)
    return await _list(request, None if principal.admin else principal.projects)


async def get_job(request: web.Request) -> web.Response:
    state = _state(request)
    principal = await auth.user(request, state.db)
    return json_response(job_json(await _job(state, principal, request.match_info["job"])))


async def cancel_job(request: web.Request) -> web.Response:
    state = _state(request)
    principal = await auth.user(request, state.db)
    job = await _job(state, principal, request.match_info["job"])
    changed, cur = await state.db.transition(
        job.id,
        p.CANCELED,
        from_=(p.PENDING, p.CLAIMED, p.RUNNING),
        at=time.time(),
        reason="canceled_by_user",
        error=f"canceled by {principal.name}",
    )
    if cur is None:
        raise http_error(404, f"job '{job.id}' not found")
    if changed:
        state.request_cancel(job.id)  # the channel executing it here sends `cancel` at once
        request.app.logger.info(
            "job %s: %s -> canceled by %s", job.id, p.STATUS_NAMES[job.status], principal.name
        )
    elif cur.status != p.CANCELED:
        raise http_error(409, f"job '{job.id}' is already {p.STATUS_NAMES[cur.status]}")
    return json_response(job_json(cur))


async def job_results(request: web.Request) -> web.Response:
    state = _state(request)
    principal = await auth.user(request, state.db)
    job = await _job(state, principal, request.match_info["job"])
    return json_response(
        {
            "id": job.id,
            "status": job.status,
            "status_name": p.STATUS_NAMES[job.status],
            "results": job.results,
            "error": job.error or None,
            "reason": job.reason,
            "timings": job.timings,
            "host_state": job.host_state,
            # benchrun: each iteration's metrics and times as the runner measured them.
            "iterations": job.iterations,
            "testbed": job.testbed,
        }
    )


# The runner's attestation of its host (benchrun.host.attestation; null when it sent none).
_HOST_STATE = {
    "type": "object",
    "nullable": True,
    "properties": {
        "tuned": {"type": "boolean", "nullable": True},
        "differs": {"type": "array", "items": {"type": "string"}},
        "cpus": {"type": "array", "items": {"type": "integer"}, "nullable": True},
        "journal": {"type": "boolean"},
        "noise": {"type": "object", "nullable": True},
        "error": {"type": "string"},
    },
}
_STATUS_Q = ("status", "string", "pending|claimed|running|completed|processed|failed|canceled")
_LIST_Q = (
    _STATUS_Q,
    ("limit", "integer", f"at most this many (1..{MAX_LIST}, default 100)"),
    ("before", "number", "only jobs created before these unix seconds (paging)"),
    ("runner", "string", "only jobs claimed by this runner id"),
)

ROUTES = [
    Route(
        "POST",
        "/v0/projects",
        create_project,
        "Create a project",
        "admin",
        201,
        request="ProjectCreate",
        response="Project",
        errors=(400,),
    ),
    Route(
        "GET",
        "/v0/projects",
        list_projects,
        "List the projects this token can see",
        "user",
        response="Project",
        response_array=True,
    ),
    Route(
        "POST",
        "/v0/tokens",
        create_token,
        "Create an API token (admin or project-scoped)",
        "admin",
        201,
        request="TokenCreate",
        response="Token",
        errors=(400,),
    ),
    Route(
        "POST",
        "/v0/runners",
        create_runner,
        "Register a runner; returns its key once",
        "admin",
        201,
        request="RunnerCreate",
        response="RunnerWithKey",
        errors=(400, 409),
    ),
    Route(
        "GET",
        "/v0/runners",
        list_runners,
        "List runners",
        "admin",
        response="Runner",
        response_array=True,
    ),
    Route(
        "POST",
        "/v0/runners/{runner}/key",
        rotate_runner_key,
        "Rotate a runner's key (the old one stops working at once; its channels close)",
        "admin",
        response="RunnerWithKey",
        errors=(404,),
    ),
    Route(
        "DELETE",
        "/v0/runners/{runner}",
        delete_runner,
        "Delete (archive) a runner: its key stops working at once; its channels close",
        "admin",
        response="Runner",
        errors=(404,),
    ),
    Route(
        "POST",
        "/v0/projects/{project}/jobs",
        submit_job,
        "Submit a job (the image is pinned to a digest now)",
        "user",
        201,
        request="JobSubmit",
        response="Job",
        errors=(400, 404, 422),
    ),
    Route(
        "GET",
        "/v0/projects/{project}/jobs",
        list_project_jobs,
        "List a project's jobs, newest first",
        "user",
        response="Job",
        response_array=True,
        query=_LIST_Q,
        errors=(400, 404),
    ),
    Route(
        "GET",
        "/v0/jobs",
        list_jobs,
        "List jobs of every project this token can see",
        "user",
        response="Job",
        response_array=True,
        query=_LIST_Q,
        errors=(400,),
    ),
    Route("GET", "/v0/jobs/{job}", get_job, "Get a job", "user", response="Job", errors=(404,)),
    Route(
        "POST",
        "/v0/jobs/{job}/cancel",
        cancel_job,
        "Cancel a pending, claimed or running job",
        "user",
        response="Job",
        errors=(404, 409),
    ),
    Route(
        "GET",
        "/v0/jobs/{job}/results",
        job_results,
        "Get a job's results",
        "user",
        response="JobResults",
        errors=(404,),
    ),
]

_TS = {"type": "number", "description": "unix seconds", "nullable": True}
_STATUS = {
    "type": "integer",
    "minimum": 0,
    "maximum": 6,
    "description": "0 pending, 1 claimed, 2 running, 3 completed, 4 processed, 5 failed, "
    "6 canceled",
}
_STRS = {"type": "array", "items": {"type": "string"}}
_ITERATION = {
    "type": "object",
    "required": ["exit_code"],
    "properties": {
        "exit_code": {"type": "integer"},
        "stdout": {"type": "string"},
        "stderr": {"type": "string"},
        "output": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

SCHEMAS: dict[str, Any] = {
    "ProjectCreate": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string"}},
    },
    "Project": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "created": _TS,
        },
    },
    "TokenCreate": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "admin": {"type": "boolean"}, "projects": _STRS},
    },
    "Token": {
        "type": "object",
        "properties": {
            "token": {"type": "string"},
            "name": {"type": "string"},
            "admin": {"type": "boolean"},
            "projects": _STRS,
        },
    },
    "RunnerCreate": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": _RUNNER_NAME.pattern},
            "projects": _STRS,
        },
    },
    "Runner": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "projects": _STRS,
            "created": _TS,
            "last_seen": _TS,
            "archived": {"type": "boolean"},
        },
    },
    "RunnerWithKey": {
        "type": "object",
        "properties": {
            "runner": {"$ref": "#/components/schemas/Runner"},
            "key": {"type": "string"},
        },
    },
    "JobSubmit": {
        "type": "object",
        "required": ["image"],
        "additionalProperties": False,
        "properties": {
            "image": {
                "type": "string",
                "description": "registry reference; a tag is " "resolved to a digest at submission",
            },
            "priority": {
                "type": "integer",
                "minimum": PRIORITY_RANGE[0],
                "maximum": PRIORITY_RANGE[1],
            },
            "spec": {
                "type": "object",
                "properties": {
                    "cpu": {"type": "integer"},
                    "memory": {"type": "integer"},
                    "disk": {"type": "integer"},
                    "network": {"type": "boolean"},
                    "sandbox": {"type": "string", "nullable": True},
                    "instructions": {
                        "type": "string",
                        "nullable": True,
                        "enum": ["count", "cache", "sections"],
                    },
                    "counters": _STRS,
                },
            },
            "config": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "entrypoint": _STRS,
                    "cmd": _STRS,
                    "env": {"type": "object", "additionalProperties": {"type": "string"}},
                    "timeout": {"type": "integer"},
                    "file_paths": _STRS,
                    "iter": {"oneOf": [{"type": "integer"}, {"type": "string", "enum": ["auto"]}]},
                    "detect": {"type": "number", "description": "with iter 'auto'"},
                    "allow_failure": {"type": "boolean"},
                },
            },
        },
    },
    "Job": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "project": {"type": "string"},
            "status": _STATUS,
            "status_name": {"type": "string", "enum": list(p.STATUS_NAMES)},
            "priority": {"type": "integer"},
            "image": {"type": "string"},
            "spec": {"type": "object"},
            "config": {"type": "object"},
            "timeout": {"type": "integer"},
            "created": _TS,
            "runner": {"type": "string", "nullable": True},
            "claimed": _TS,
            "started": _TS,
            "ended": _TS,
            "last_heartbeat": _TS,
            "error": {"type": "string", "nullable": True},
            "reason": {"type": "string", "nullable": True},
            "timings": {"type": "object", "additionalProperties": {"type": "number"}},
            "host_state": _HOST_STATE,
        },
    },
    "JobResults": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": _STATUS,
            "status_name": {"type": "string"},
            "results": {"type": "array", "items": _ITERATION, "nullable": True},
            "error": {"type": "string", "nullable": True},
            "reason": {"type": "string", "nullable": True},
            "timings": {"type": "object", "additionalProperties": {"type": "number"}},
            "host_state": _HOST_STATE,
            "iterations": {
                "type": "array",
                "nullable": True,
                "description": "benchrun: one entry per iteration, as the runner measured it",
                "items": {
                    "type": "object",
                    "properties": {
                        "metrics": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "properties": {
                                    "value": {"type": "number"},
                                    "unit": {"type": "string"},
                                },
                            },
                        },
                        "start": {"type": "number"},
                        "end": {"type": "number"},
                    },
                },
            },
            "testbed": {"type": "object", "nullable": True},
        },
    },
    "Event": {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["job", "heartbeat", "submitted", "alert"]},
            "alert": {"type": "string", "description": "kind alert: the alert id"},
            "state": {"type": "string", "description": "kind alert: the alert's state"},
            "job": {"type": "string"},
            "project": {"type": "string"},
            "status": _STATUS,
            "status_name": {"type": "string"},
            "at": {"type": "number"},
        },
    },
}
