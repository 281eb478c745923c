"""--instructions on the command line: an optional value, also right before IMAGE."""

from __future__ import annotations

import pytest

from benchrun import options
from benchrun.cli.main import build_parser
from benchrun.cli.run_options import restore_positional, run_options
from benchrun.errors import ConfigError


def _parse(argv: list[str]):
    args = build_parser(argv[0]).parse_args(argv)
    restore_positional(args)
    return args


@pytest.mark.parametrize(
    "argv,mode,rest",
    [
        (["run", "--instructions", "img", "cmd", "x"], "count", ["img", "cmd", "x"]),
        (["run", "--instructions", "img"], "count", ["img"]),
        (["run", "--instructions=cache", "img", "cmd"], "cache", ["img", "cmd"]),
        (["run", "--instructions", "sections", "img"], "sections", ["img"]),
        (["run", "--instructions", "--json", "img"], "count", ["img"]),
        (["run", "img", "cmd", "--instructions"], None, ["img", "cmd", "--instructions"]),
    ],
)
def test_optional_value_and_the_image(argv, mode, rest):
    args = _parse(argv)
    assert args.instructions == mode
    assert args.args == rest
    assert run_options(args).get("instructions") == mode
    assert args.args == rest  # idempotent


def test_python_values():
    parse = options.BY_NAME["instructions"].parse
    assert parse(True, "instructions") == "count"
    assert parse(False, "instructions") == ""
    assert parse("cache", "instructions") == "cache"
    with pytest.raises(ConfigError):
        parse(3, "instructions")
    with pytest.raises(ConfigError, match="expected count, cache or sections"):
        options.core_spec({"instructions": "cycles"})


def test_campaign_variants_carry_it_locally_and_to_a_job_server():
    from benchrun.campaign.runner import _check_remote, _submit
    from benchrun.campaign.spec import Campaign, Variant

    v = Variant.from_dict({"name": "a", "image": "busybox", "instructions": "cache"})
    assert v.options == {"instructions": "cache"}
    _check_remote(Campaign("c", [v]))  # a job spec key: allowed through a job server

    class FakeClient:
        def submit(self, *args, **kwargs):
            self.kwargs = kwargs
            return {"id": "j1"}

    client = FakeClient()
    assert _submit(client, "proj", v) == "j1"
    assert client.kwargs["instructions"] == "cache"
