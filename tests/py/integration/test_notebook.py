"""notebooks/analysis.ipynb executes top to bottom on the kernel it names, found as a user's Jupyter
started from the venv finds it (the kernelspec scripts/venv.sh registers), and produces its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")
pytest.importorskip("ipykernel")

import benchrun  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "analysis.ipynb"

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # connection files
    monkeypatch.delenv("MPLBACKEND", raising=False)
    return nbformat.read(NOTEBOOK, as_version=4)


def test_notebook_names_the_registered_benchrun_kernel(notebook):
    name = notebook.metadata.kernelspec.name
    assert name == "benchrun"
    try:
        spec = kernelspec.KernelSpecManager().get_kernel_spec(name)
    except kernelspec.NoSuchKernel:
        pytest.fail(f"no '{name}' kernelspec for {sys.prefix}: `source scripts/venv.sh` registers it")
    # The kernel imports the benchrun this test imports: same interpreter environment.
    where = subprocess.run(
        [spec.argv[0], "-c", "import benchrun, sys; print(sys.prefix); print(benchrun.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    assert where[:2] == [sys.prefix, benchrun.__file__], spec.resource_dir


def test_analysis_notebook_runs_and_plots(notebook, tmp_path: Path):
    nb = notebook
    # The checked-in notebook carries no outputs: its results are what this run produces.
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    # No kernel_name: nbclient starts the kernel the notebook's metadata names, as Jupyter does.
    client = nbclient.NotebookClient(
        nb, timeout=600, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    assert client.kernel_name == "benchrun"

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
