"""Every C++ error type reaches Python as its named class, with its structured attributes."""

import errno

import pytest

import benchrun
from benchrun import _core, errors

CASES = [
    ("SysError", errors.SysError),
    ("ConfigError", errors.ConfigError),
    ("RegistryError", errors.RegistryError),
    ("AuthError", errors.AuthError),
    ("ImageError", errors.ImageError),
    ("DigestMismatch", errors.DigestMismatch),
    ("UnsafeLayerError", errors.UnsafeLayerError),
    ("ImageTooLarge", errors.ImageTooLarge),
    ("ImageNotFound", errors.ImageNotFound),
    ("SandboxError", errors.SandboxError),
    ("VmError", errors.VmError),
    ("RuntimeUnavailable", errors.RuntimeUnavailable),
    ("ProtocolError", errors.ProtocolError),
    ("DeadlineExceeded", errors.DeadlineExceeded),
    ("InstructionCountError", errors.InstructionCountError),
    ("ValgrindNotFound", errors.ValgrindNotFound),
    ("Error", errors.BenchrunError),
]


@pytest.mark.parametrize("kind,cls", CASES)
def test_cpp_error_maps_to_python_class(kind, cls):
    with pytest.raises(cls) as info:
        _core._raise_for_test(kind)
    assert type(info.value) is cls
    assert isinstance(info.value, benchrun.BenchrunError)


def test_structured_attributes():
    with pytest.raises(errors.SysError) as e:
        _core._raise_for_test("SysError")
    assert e.value.errno == errno.ENOENT and e.value.op == "open" and e.value.path == "/nonexistent"
    assert isinstance(e.value, OSError)
    assert "open '/nonexistent'" in str(e.value)
    with pytest.raises(errors.RegistryError) as r:
        _core._raise_for_test("RegistryError")
    assert r.value.http_status == 503
    with pytest.raises(errors.AuthError) as a:
        _core._raise_for_test("AuthError")
    assert a.value.http_status == 401 and isinstance(a.value, errors.RegistryError)
    with pytest.raises(errors.SandboxError) as s:
        _core._raise_for_test("SandboxError")
    assert s.value.stage == "pivot_root"
    with pytest.raises(errors.RuntimeUnavailable) as u:
        _core._raise_for_test("RuntimeUnavailable")
    assert u.value.runtime == "crun" and u.value.reason == "unsupported-host"
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.DeadlineExceeded, TimeoutError)
    assert issubclass(errors.DigestMismatch, errors.ImageError)
