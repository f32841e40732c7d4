"""Installing from a wheel: the configs (top-level ``configs/``, shipped as ``nhamil.configs``)
and the structure files (``nhamil/data``) travel inside it, so a water experiment trains and is
evaluated from an empty folder, importing nhamil from the install, not from this checkout."""

import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from nhamil.config import config_dir
from nhamil.data import PACKAGED, available

REPO = Path(__file__).resolve().parents[1]
#: ``python -m nhamil.train ARGS`` that first prints where nhamil and its configs come from.
TRAIN = (
    "import runpy, nhamil, nhamil.config; print(nhamil.__file__, nhamil.config.config_dir()); "
    "runpy.run_module('nhamil.train', run_name='__main__')"
)


def _python(*args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("NHAMIL_DATA_DIR", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _source_copy(folder: Path) -> Path:
    """What the build reads (pyproject, README, nhamil/, configs/), copied: building in the
    checkout would leave build/ there, whose stale files a later wheel would ship."""
    folder.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, folder / name)
    for name in ("nhamil", "configs"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__", "local"))
    return folder


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """site-packages-like folder holding nothing but the wheel built from this checkout."""
    root = tmp_path_factory.mktemp("install")
    source = _source_copy(root / "source")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(root / "wheel"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (root / "wheel").glob("nhamil-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nhamil/configs/train.yaml" in names and "nhamil/configs/experiment/water.yaml" in names
    assert {f"nhamil/data/{name}.gz" for name in available(PACKAGED)} | {"nhamil/data/LICENSE"} <= set(names)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(root / "site"), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return root / "site"


def test_wheel_trains_and_evaluates_water_from_an_empty_folder(installed, tmp_path):
    empty, run = tmp_path / "empty", tmp_path / "run"
    empty.mkdir()
    trained = _python(
        "-c",
        TRAIN,
        "+experiment=water",
        "split.train=[0,10]",
        "split.test=[10,14]",
        "data.n_workers=1",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={run}",
        cwd=empty,
        site=installed,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    nhamil_file, configs = trained.stdout.split()[:2]
    assert (nhamil_file, configs) == (str(installed / "nhamil" / "__init__.py"), str(installed / "nhamil" / "configs"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_train"] == 10 and metrics["n_test"] == 4
    assert math.isfinite(metrics["hamiltonian_mae_uha"]) and 0 < metrics["hamiltonian_mae_uha"] < 2000
    assert math.isfinite(metrics["occupied_energy_mae_mev"]) and 0 < metrics["occupied_energy_mae_mev"] < 100
    evaluated = _python(
        "-m", "nhamil.evaluate", str(run), "--output", str(tmp_path / "evaluation"), cwd=empty, site=installed
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())["n_structures"] == 4
    assert list(empty.iterdir()) == []


def test_pyproject_lists_every_package():
    """The packages are listed by hand (find cannot see the mapped nhamil.configs): a new
    subpackage must be added there, or the wheel lacks it."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(path.parent.relative_to(REPO).parts) for path in (REPO / "nhamil").rglob("__init__.py")}
    assert listed == found | {"nhamil.configs"}


def test_the_checkout_uses_its_top_level_configs():
    assert config_dir() == REPO / "configs"
