"""The run options' command-line flags, from the one table (benchrun.options.OPTIONS): `benchrun
run` takes all of them, `benchrun submit` the ones a Bencher job spec carries. Light: imports no
native code, so every parser can use it."""

from __future__ import annotations

import argparse
from typing import Any, Iterable, Optional

from benchrun.options import JOB_OPTIONS, OPTIONS

__all__ = [
    "JOB_OPTIONS",
    "add_run_options",
    "entrypoint_arg",
    "restore_positional",
    "run_options",
    "with_flag",
]


def add_run_options(p: argparse.ArgumentParser, only: Optional[Iterable[str]] = None) -> None:
    """A flag per option of the table that has one (or of ``only``); values stay text (None = not
    given) until they are parsed: make_spec parses and validates them all."""
    wanted = set(only) if only is not None else None
    for o in OPTIONS:
        if not o.flags or (wanted is not None and o.name not in wanted):
            continue
        help_text = o.help + (f" ({', '.join(o.choices)})" if o.choices else "")
        extra: dict[str, Any] = {"nargs": "?", "const": o.const} if o.const is not None else {}
        p.add_argument(
            *o.flags,
            dest=o.name,
            metavar=o.metavar,
            help=help_text,
            action="append" if o.repeat else "store",
            **extra,
        )


def restore_positional(args: argparse.Namespace) -> None:
    """A flag whose value is optional (Option.const, e.g. ``--instructions``) takes the next word
    when it is not an option: in ``--instructions IMAGE CMD`` that word is the IMAGE. A value
    that is not one of the flag's choices goes back to the front of the positionals (``args``)
    and the flag gets its bare value. Idempotent."""
    for o in OPTIONS:
        value = getattr(args, o.name, None)
        if o.const is None or value is None or value in o.choices:
            continue
        if isinstance(getattr(args, "args", None), list):  # `run`: IMAGE [CMD...] in one list
            args.args.insert(0, value)
        elif isinstance(getattr(args, "command", None), list) and getattr(args, "image", None):
            args.command.insert(0, args.image)  # `submit`: IMAGE, then CMD...
            args.image = value
        else:
            continue
        setattr(args, o.name, o.const)


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The table's options as given on the command line (by add_run_options)."""
    restore_positional(args)
    given = {o.name: getattr(args, o.name, None) for o in OPTIONS if o.flags}
    given["entrypoint"] = entrypoint_arg(given.get("entrypoint"))
    return {k: v for k, v in given.items() if v is not None}


def with_flag(message: str) -> str:
    """ "--memory: memory '12x': ..." for an error that names an option of the table (both the
    parsers and the native validation start their messages with the option's name)."""
    name = message.replace(":", " ").split(" ", 1)[0]
    opt = next((o for o in OPTIONS if o.name == name and o.flags), None)
    return f"{opt.flags[-1]}: {message}" if opt else message


def entrypoint_arg(value: Optional[str]) -> Optional[list[str]]:
    """As docker's --entrypoint: one executable, not split; "" = no entrypoint; None = the image's."""
    if value is None:
        return None
    return [value] if value else []
