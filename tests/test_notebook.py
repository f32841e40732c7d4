"""The evaluation notebook runs end to end the usual ways, offline: ``jupyter nbconvert --execute``
from the repository root on the session's trained run, and ``jupyter execute`` from ``scripts/``
where it trains its own small run first (packaged data, no absolute paths in the notebook)."""

import importlib.util
import os
import subprocess
from pathlib import Path

import nbformat
import pytest
from water_fock_run import reference_cache, water_fock_run

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_evaluation_notebook.py"


def _generator():
    spec = importlib.util.spec_from_file_location("make_evaluation_notebook", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _environment(run_dir: Path, cache_dir: Path) -> dict[str, str]:
    """The kernel imports this checkout's nhamil, evaluates ``run_dir`` and reuses the session's
    reference cache."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "PYTHONPATH": path,
        "NHAMIL_RUN_DIR": str(run_dir),
        "NHAMIL_CACHE_DIR": str(cache_dir),
        "OPENBLAS_NUM_THREADS": "1",
    }


def test_committed_notebook_is_what_the_script_writes():
    generator = _generator()
    committed = nbformat.read(generator.NOTEBOOK, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in generator.build_notebook().cells]


@pytest.mark.slow
def test_nbconvert_executes_it_from_the_repository_root(tmp_path_factory, tmp_path):
    run = water_fock_run(tmp_path_factory)
    executed = tmp_path / "executed.ipynb"
    subprocess.run(
        [
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "scripts/evaluate_water.ipynb",
            "--output",
            str(executed),
        ],
        cwd=REPO,
        env=_environment(run, reference_cache(tmp_path_factory)),
        check=True,
        capture_output=True,
        timeout=600,
    )
    notebook = nbformat.read(executed, as_version=4)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") for output in outputs)
    assert "fock_orthogonal in def2-svp, 2 test frames" in text
    assert "largest eigenvalue difference after rotation" in text
    assert any("image/png" in output.get("data", {}) for output in outputs)


def test_jupyter_execute_from_scripts_trains_its_own_run(tmp_path_factory, tmp_path):
    run = tmp_path / "fresh-run"
    result = subprocess.run(
        ["jupyter", "execute", "evaluate_water.ipynb"],
        cwd=REPO / "scripts",
        env=_environment(run, reference_cache(tmp_path_factory)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "model.pt").is_file()
    assert "${nhamil.data:water_coords_1000.xyz}" in (run / ".hydra" / "config.yaml").read_text()
