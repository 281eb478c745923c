"""notebooks/analysis.ipynb executes top to bottom on a real Jupyter kernel (Debian's ipykernel,
run by this interpreter) and produces its figures."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "analysis.ipynb"
KERNEL = "benchrun-test"

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec in a temporary JUPYTER_PATH that runs ipykernel with this interpreter (the
    venv's, so the kernel imports the benchrun under test, with this process's PYTHONPATH)."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "benchrun test kernel",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    return KERNEL


def test_analysis_notebook_runs_and_plots(kernel: str, tmp_path: Path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The checked-in notebook carries no outputs: its results are what this run produces.
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel, timeout=600, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert errors == []
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 3, [o.get("data", {}).keys() for o in outputs]
    text = "\n".join(
        o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
        for o in outputs
    )
    assert "CampaignResult(" in text and "failed=0" in text
    assert "sleep-100ms vs sleep-50ms: +" in text and "significant: True" in text
    # The summary table and the comparison table are shown as HTML tables.
    assert sum("text/html" in o.get("data", {}) for o in outputs) >= 3
