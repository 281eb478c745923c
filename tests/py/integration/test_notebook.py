"""notebooks/analysis.ipynb executes top to bottom on the kernel it names, found as a user's Jupyter
started from the venv finds it (the kernelspec scripts/venv.sh registers), and produces its figures;
the Jupyter front end the README starts offers that kernel."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")
pytest.importorskip("ipykernel")
from jupyter_client import BlockingKernelClient  # noqa: E402

import benchrun  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "analysis.ipynb"

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # connection files
    # The notebook's work directory (tempfile.mkdtemp, kept for the user to look at) goes to the
    # test's tmp_path, not /tmp, where each run would leave one.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
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
    # The verdict itself depends on how loaded the host is (5 runs a side); its shape does not.
    assert "sleep-100ms vs sleep-50ms: +" in text and "significant: " in text
    # The summary table and the comparison table are shown as HTML tables.
    assert sum("text/html" in o.get("data", {}) for o in outputs) >= 3


def test_front_end_from_the_venv_starts_the_notebooks_kernel(notebook, tmp_path: Path):
    """The README's `python -m notebook --allow-root notebooks/analysis.ipynb` (Debian's
    jupyter-notebook, run by the venv's python) lists the kernel the notebook names and starts it
    for the notebook."""
    pytest.importorskip("notebook", reason="Debian's jupyter-notebook (scripts/bootstrap.sh)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "benchrun-test"
    log = tmp_path / "notebook.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "notebook", "--allow-root", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", "--port-retries=0", f"--NotebookApp.token={token}",
         f"--notebook-dir={NOTEBOOK.parent}"],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )

    def api(path: str, body: object = None) -> dict:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                specs = api("kernelspecs")["kernelspecs"]
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the notebook server did not answer in 60 s"
                time.sleep(0.2)
        name = notebook.metadata.kernelspec.name
        assert specs[name]["spec"]["argv"][0] == sys.executable
        # What the page does on opening the notebook: a session on the kernel its metadata names.
        kernel = api("sessions", {"path": NOTEBOOK.name, "type": "notebook",
                                  "kernel": {"name": name}})["kernel"]
        assert kernel["name"] == name
        # That kernel (its connection file is in the server's runtime dir) imports our benchrun.
        conn = Path(os.environ["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel['id']}.json"
        client = BlockingKernelClient(connection_file=str(conn))
        client.load_connection_file()
        client.start_channels(iopub=False, stdin=False)
        try:  # requests wait in ZeroMQ's queue until the kernel is up; replies come on shell
            msg_id = client.execute("import benchrun", user_expressions={"f": "benchrun.__file__"})
            reply = client.get_shell_msg(timeout=120)
        finally:
            client.stop_channels()
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok", reply["content"]
        assert reply["content"]["user_expressions"]["f"]["data"]["text/plain"] == repr(
            benchrun.__file__)
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        server.wait(timeout=30)
