"""Which registries a project's jobs may name (issue 11, finding 8: server-side request forgery at
submission). Resolving a tag makes the server send requests to the registry a submitter names, and
runners pull from it, so the registry is an allow-list in the server's configuration, checked
before any request, for tags and digest-pinned references alike.

Shape: `--allow-registry HOST[:PORT]` (every project) and `--allow-registry PROJECT=HOST[:PORT]`
(one project, by name or id), repeatable. The default is the empty list: no registry is allowed
until the operator names one, so a fresh server cannot be pointed at its own loopback services,
the cloud metadata address or the internal network. Hosts match exactly (lowercase; port
included; `docker.io`, `index.docker.io` and `registry-1.docker.io` are one registry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from benchrun.errors import ConfigError

_DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io"}
# host, host:port, [ipv6]:port; no userinfo, path or scheme.
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$")


def canonical_host(host: str) -> str:
    h = host.strip().lower()
    return "docker.io" if h in _DOCKER_HUB else h


@dataclass(frozen=True)
class RegistryPolicy:
    """(scope, host) pairs: scope "*" for every project, else a project's name or id."""

    entries: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> "RegistryPolicy":
        out = []
        for spec in specs:
            if not isinstance(spec, str):
                raise ConfigError(f"--allow-registry {spec!r}: expected [PROJECT=]HOST[:PORT]")
            scope, sep, host = spec.rpartition("=") if "=" in spec else ("", "", spec)
            scope = scope.strip() if sep else "*"
            h = canonical_host(host)
            if not scope or not _HOST.match(h) or h.rsplit(":", 1)[-1] == "":
                raise ConfigError(
                    f"--allow-registry '{spec}': expected [PROJECT=]HOST[:PORT] "
                    "(e.g. registry.example.com or team-a=ghcr.io)"
                )
            out.append((scope, h))
        return cls(tuple(dict.fromkeys(out)))

    def allows(self, project_id: str, project_name: str, host: str) -> bool:
        h = canonical_host(host)
        return any(
            host_ == h and scope in ("*", project_id, project_name) for scope, host_ in self.entries
        )

    def describe(self) -> str:
        if not self.entries:
            return "none (every submission is refused until --allow-registry names one)"
        return ", ".join(h if s == "*" else f"{s}={h}" for s, h in self.entries)
