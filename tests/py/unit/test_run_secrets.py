"""benchrun.run_secrets: parsing --secret / run(secrets=...) and redacting a Result (no run)."""

from __future__ import annotations

import pytest

from benchrun.errors import ConfigError
from benchrun.run_secrets import MAX_BYTES, MAX_NAME, parse_secrets, redact
from benchrun.runner import Result

VALUE = b"s3cr3t-value-7f1c"


def test_dict_of_bytes_and_paths(tmp_path):
    f = tmp_path / "tok"
    f.write_bytes(b"from-a-file\n")
    assert parse_secrets({"a": VALUE, "b.txt": str(f), "c": f}) == (
        ("a", VALUE),
        ("b.txt", b"from-a-file\n"),
        ("c", b"from-a-file\n"),
    )


def test_cli_entries_file_and_environment(tmp_path):
    f = tmp_path / "tok"
    f.write_bytes(VALUE)
    env = {b"BENCHRUN_SECRET_api": b"from-env"}
    assert parse_secrets([f"tok={f}", "api"], environ=env) == (("tok", VALUE), ("api", b"from-env"))
    with pytest.raises(ConfigError, match="BENCHRUN_SECRET_other is not set"):
        parse_secrets(["other"], environ=env)


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "../x", "a b", "x\0y", "é", "n" * (MAX_NAME + 1)]
)
def test_bad_names_refused(name):
    with pytest.raises(ConfigError, match="secret name"):
        parse_secrets({name: VALUE})


def test_limits_and_errors_never_show_the_value(tmp_path):
    with pytest.raises(ConfigError, match="larger than") as e:
        parse_secrets({"big": VALUE * (MAX_BYTES // len(VALUE) + 1)})
    assert VALUE.decode() not in str(e.value)
    with pytest.raises(ConfigError, match="given twice"):
        parse_secrets(["a=/etc/hostname", "a=/etc/hostname"])
    with pytest.raises(ConfigError, match="cannot read") as e:
        parse_secrets([f"a={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError, match="at most 64"):
        parse_secrets({f"n{i}": b"x" for i in range(65)})
    with pytest.raises(ConfigError, match="expected bytes"):
        parse_secrets({"a": 12})
    with pytest.raises(ConfigError, match="expected a dict or a list"):
        parse_secrets("a=b")


def _result(**kw):
    base = dict(
        exit_code=0,
        signal=0,
        stdout=b"",
        stderr=b"",
        stdout_truncated=False,
        stderr_truncated=False,
        outputs={},
        missing_outputs={},
        timed_out=False,
        oom_killed=False,
        image_digest="sha256:" + "0" * 64,
        backend="sandbox",
        start_time=0.0,
        end_time=1.0,
    )
    base.update(kw)
    return Result(**base)


def test_redaction_of_streams_outputs_and_notices():
    r = _result(
        stdout=b"a " + VALUE + b" b " + VALUE,
        stderr=b"err " + VALUE + b"-long",
        outputs={"/tmp/o": b"x" + VALUE, "/tmp/clean": b"nothing"},
        notices=("kept",),
    )
    out = redact(r, (("tok", VALUE), ("other", b"absent")))
    assert out.stdout == b"a *** b ***" and out.stderr == b"err ***-long"
    assert out.outputs == {"/tmp/o": b"x***", "/tmp/clean": b"nothing"}
    assert out.notices[0] == "kept"
    assert out.notices[1] == (
        "secret 'tok' appeared in stdout, stderr, output /tmp/o: redacted as ***"
    )
    assert all(VALUE.decode() not in n for n in out.notices)
    assert len(out.notices) == 2  # 'other' was not found: no notice


def test_redaction_longest_value_first_and_nothing_to_do():
    r = _result(stdout=b"<" + VALUE + b">")
    out = redact(r, (("short", VALUE[:6]), ("long", VALUE)))
    assert out.stdout == b"<***>"
    assert [n for n in out.notices if "'long'" in n] and not [
        n for n in out.notices if "'short'" in n
    ]
    clean = _result(stdout=b"nothing here")
    assert redact(clean, (("tok", VALUE), ("empty", b""))) is clean
