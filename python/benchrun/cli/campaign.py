"""`benchrun campaign run|show|export`: run a campaign file, list what a results store holds, export
it as a tidy CSV or Parquet table. Registered by benchrun.cli.main (add_parsers); the campaign
machinery is imported only when the command runs."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from benchrun.cli.common import add_server_options, client_from_args, project_from_args
from benchrun.errors import ConfigError

EXIT_RUNS_FAILED = 1  # the campaign ran, and some of its runs failed (they are stored)


def add_parsers(sub: Any) -> None:
    """Adds the `campaign` command (with run, show and export) to a subparsers object."""
    p = sub.add_parser("campaign", help="run benchmark campaigns and read their results store")
    csub = p.add_subparsers(dest="campaign_command", metavar="ACTION")
    csub.required = True

    r = csub.add_parser("run", help="run (or resume) the campaign described by a TOML file")
    r.add_argument("file", help="campaign file (docs/campaigns.md)")
    r.add_argument(
        "--store", metavar="DB", help="results store (default: the file's [campaign] store)"
    )
    r.add_argument("--image-store", metavar="DIR", help="image store (default: benchrun's cache)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_server_options(
        r, help_server="run through this job server (default $BENCHRUN_SERVER; none: locally)"
    )
    r.add_argument("--project", metavar="ID", help="job server project (default $BENCHRUN_PROJECT)")
    r.add_argument(
        "--batch",
        type=int,
        default=8,
        metavar="N",
        help="jobs submitted ahead through a job server (default 8)",
    )
    r.set_defaults(func=cmd_campaign)

    s = csub.add_parser("show", help="list the campaigns of a results store and their runs")
    s.add_argument("store", help="results store (SQLite file)")
    s.set_defaults(func=cmd_campaign)

    e = csub.add_parser("export", help="write a results store as a tidy table (CSV or Parquet)")
    e.add_argument("store", help="results store (SQLite file)")
    e.add_argument("output", help="output file; .parquet writes Parquet (needs pyarrow)")
    e.add_argument("--campaign", metavar="ID|NAME", help="only this campaign")
    e.set_defaults(func=cmd_campaign)


def cmd_campaign(args: argparse.Namespace) -> int:
    action = args.campaign_command
    if action == "run":
        return _run(args)
    if action == "show":
        return _show(args)
    return _export(args)


def _run(args: argparse.Namespace) -> int:
    from benchrun.campaign.spec import Campaign

    campaign = Campaign.from_toml(args.file)
    client = None
    project = None
    if args.server:
        client = client_from_args(args)
        project = project_from_args(args)
    store = args.store or campaign.store
    # Checked before any run: the store opens (and is created) or we stop here.
    from benchrun.campaign.store import ResultsStore

    ResultsStore(store).close()
    res = campaign.run(
        client=client,
        project=project,
        progress=not args.no_progress,
        store=store,
        image_store=args.image_store,
        batch=args.batch,
    )
    print(
        f"campaign {res.campaign_id}: {res.done}/{res.planned} runs done, {res.failed} failed "
        f"({res.skipped} already done) in {res.elapsed:.1f} s; results in {res.store}"
    )
    return 0 if res.failed == 0 else EXIT_RUNS_FAILED


def _show(args: argparse.Namespace) -> int:
    from benchrun.campaign.store import ResultsStore

    if not Path(args.store).exists():
        raise ConfigError(f"results store '{args.store}': no such file")
    with ResultsStore(args.store) as db:
        for c in db.campaigns():
            counts = db.counts(c["id"])
            planned = len(c["spec"].get("plan", []))
            when = dt.datetime.fromtimestamp(c["created"]).strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{c['id']}  created {when}  seed {c['seed']}  "
                f"{counts.get('done', 0)}/{planned} done, {counts.get('failed', 0)} failed  "
                f"host {c['host'].get('hostname', '?')} ({c['host'].get('cpu_model', '?')})"
            )
            for v in c["spec"].get("variants", []):
                print(f"    {v['name']}: {v['image']} {' '.join(v['command'] or [])}".rstrip())
    return 0


def _export(args: argparse.Namespace) -> int:
    from benchrun.campaign.store import export_csv, export_parquet

    fn = export_parquet if str(args.output).endswith(".parquet") else export_csv
    n = fn(args.store, args.output, campaign=args.campaign)
    print(f"wrote {n} rows to {args.output}")
    return 0


__all__ = ["EXIT_RUNS_FAILED", "add_parsers", "cmd_campaign"]
