"""The evaluation notebook runs end to end on a tiny trained water run, offline."""

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from water_fock_run import DATA, water_fock_run

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_evaluation_notebook.py"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"reference data folder {DATA} is absent")


def _generator():
    spec = importlib.util.spec_from_file_location("make_evaluation_notebook", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_notebook_is_what_the_script_writes():
    generator = _generator()
    committed = nbformat.read(generator.NOTEBOOK, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in generator.build_notebook().cells]


@pytest.mark.slow
def test_notebook_executes_on_a_trained_run(tmp_path_factory, monkeypatch):
    run = water_fock_run(tmp_path_factory)
    monkeypatch.setenv("NHAMIL_RUN_DIR", str(run))
    notebook = nbformat.read(_generator().NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path_factory.mktemp("cwd"))}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") for output in outputs)
    assert "fock_orthogonal in def2-svp, 2 test frames" in text
    assert "largest eigenvalue difference after rotation" in text
    assert any("image/png" in output.get("data", {}) for output in outputs)
