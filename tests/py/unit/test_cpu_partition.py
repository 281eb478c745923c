"""benchrun.host.partition on a fake cgroup v2 tree (plain files laid out like cgroupfs): the
Python API and the status it returns; the real hierarchy is tests/py/integration/
test_cpu_isolation.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchrun.errors import ConfigError
from benchrun.host import partition


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "online").write_text("0-3\n")
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    part = tmp_path / "bench"
    part.mkdir()
    (part / "cpuset.cpus").write_text("")
    (part / "cpuset.cpus.partition").write_text("member\n")
    return tmp_path


def kw(tree: Path) -> dict:
    return dict(name="bench", root=str(tree), version="v2", online=str(tree / "online"))


def test_create_status_remove(tree: Path):
    assert not partition.status(**kw(tree)).exists
    st = partition.create("2-3", **kw(tree))
    assert st.exists and st.exclusive and st.mode == "isolated" and st.version == "v2"
    assert st.cpus == (2, 3) and st.housekeeping == (0, 1)
    assert st.to_dict()["cpus"] == "2-3" and st.to_dict()["housekeeping"] == "0-1"
    assert (tree / "bench" / "cpuset.cpus").read_text() == "2-3"
    assert partition.create([3], isolated=False, **kw(tree)).mode == "root"
    partition.remove(**kw(tree))
    assert not partition.status(**kw(tree)).exists
    assert (tree / "bench" / "cpuset.cpus.partition").read_text() == "member"


def test_bad_input_is_a_config_error(tree: Path):
    with pytest.raises(ConfigError, match="no housekeeping CPU"):
        partition.create("0-3", **kw(tree))
    with pytest.raises(ConfigError, match="not online"):
        partition.create("7", **kw(tree))
    with pytest.raises(ConfigError, match="cpus"):
        partition.create("two", **kw(tree))
    with pytest.raises(ConfigError, match="must match"):
        partition.status(name="../x", root=str(tree), version="v2")


def test_cpu_list_helpers():
    assert partition.parse_cpus("0-2,5") == (0, 1, 2, 5)
    assert partition.parse_cpus([3, 1, 3]) == (1, 3)
    assert partition.format_cpus((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
    with pytest.raises(ConfigError):
        partition.parse_cpus([-1])
