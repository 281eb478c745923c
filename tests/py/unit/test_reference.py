"""Reference normalisation as the Python API exposes it."""

import pytest

from benchrun import ConfigError
from benchrun.image import normalize_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,want", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("myorg/app", "docker.io/myorg/app:latest"),
    ("docker://localhost:5000/app:1", "localhost:5000/app:1"),
    (f"127.0.0.1:5000/x:1@{D}", f"127.0.0.1:5000/x@{D}"),
])
def test_normalize(text, want):
    assert normalize_reference(text) == want


def test_oci_layout_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalize_reference("oci:layout:v1") == f"oci:{tmp_path}/layout:v1"


@pytest.mark.parametrize("bad", ["Upper/Case", "a" * 64, "", "busybox:", "x@sha256:1234"])
def test_bad_references_are_config_errors(bad):
    with pytest.raises(ConfigError):
        normalize_reference(bad)
