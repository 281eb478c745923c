"""Options and helpers shared by the CLI's subcommand modules: the job server connection.

Kept light (no client or HTTP library at import): `benchrun run` builds every parser.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from benchrun.errors import ConfigError

if TYPE_CHECKING:
    from benchrun.client import Client


def add_server_options(p: argparse.ArgumentParser, *, help_server: str = "") -> None:
    """--server URL and --token-file FILE (defaults: $BENCHRUN_SERVER, $BENCHRUN_TOKEN)."""
    p.add_argument(
        "--server",
        default=os.environ.get("BENCHRUN_SERVER"),
        metavar="URL",
        help=help_server or "job server URL (default $BENCHRUN_SERVER)",
    )
    p.add_argument(
        "--token-file", metavar="FILE", help="file holding the API token (default $BENCHRUN_TOKEN)"
    )


def client_from_args(args: argparse.Namespace) -> Client:
    """A job server client from --server and --token-file (or $BENCHRUN_TOKEN)."""
    from benchrun.client import Client

    if not args.server:
        raise ConfigError("no job server: pass --server URL or set BENCHRUN_SERVER")
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    else:
        token = os.environ.get("BENCHRUN_TOKEN", "")
    if not token:
        raise ConfigError("no API token: pass --token-file FILE or set BENCHRUN_TOKEN")
    return Client(args.server, token)


def project_from_args(args: argparse.Namespace) -> str:
    """The project from --project or $BENCHRUN_PROJECT."""
    project = args.project or os.environ.get("BENCHRUN_PROJECT")
    if not project:
        raise ConfigError("no project: pass --project ID or set BENCHRUN_PROJECT")
    return str(project)
