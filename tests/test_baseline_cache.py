"""Cached baselines are the computed ones (to PySCF's round-off: two computations of one
baseline differ by ~1e-15 Ha) and are read back bit for bit; they are computed once, in parallel or
not; a damaged or misplaced file is named and computed again, never read."""

import logging

import h5py
import numpy as np
import pytest
import torch
from water_fock_run import WATER

from nhamil.config import compose_config
from nhamil.errors import InputError
from nhamil.model import HamiltonianModel
from nhamil.orbitals import AtomicBasis
from nhamil.reference import ScfSettings, read_frames
from nhamil.reference import baseline_cache as cache_module
from nhamil.reference.baseline import Baseline
from nhamil.reference.baseline_cache import baseline_folder, cached_baselines
from nhamil.train import train

pytestmark = pytest.mark.usefixtures("one_thread")
WATER_BASIS = AtomicBasis.from_pyscf("def2-svp", [1, 8])


def _stage(orthogonal: bool = True, name: str = "minao") -> Baseline:
    return Baseline(name, WATER_BASIS, orthogonal, ScfSettings())


def _same(first, second, tolerance: float = 0.0) -> bool:
    """Equal matrices and overlaps, to ``tolerance`` Ha (0: bit for bit)."""
    return all(
        np.abs(a - b).max() <= tolerance
        for field in ("matrices", "overlaps")
        for a, b in zip(getattr(first, field), getattr(second, field), strict=True)
    )


@pytest.mark.parametrize("orthogonal", [True, False])
def test_cached_baselines_equal_the_computed_ones_and_are_read_the_second_time(tmp_path, monkeypatch, orthogonal):
    frames = read_frames(WATER, ":3")
    stage = _stage(orthogonal)
    first = cached_baselines(stage, frames, tmp_path)
    assert _same(first, stage.compute(frames), tolerance=1e-12)
    assert (first.name, first.orthogonal) == ("minao", orthogonal)
    monkeypatch.setattr(cache_module, "baseline_fock", _must_not_compute)
    assert _same(cached_baselines(stage, frames, tmp_path), first)


def _must_not_compute(*args):
    raise AssertionError("a cached baseline was computed again")


def test_two_workers_give_what_one_gives(tmp_path):
    frames = read_frames(WATER, ":4")
    parallel = cached_baselines(_stage(), frames, tmp_path / "two", n_workers=2)
    assert _same(parallel, cached_baselines(_stage(), frames, tmp_path / "one"), tolerance=1e-12)


def test_one_worker_advances_the_progress_bar_after_each_structure(tmp_path, monkeypatch):
    events = []
    compute = cache_module._compute_and_store

    def computed(*args):
        events.append("computed")
        return compute(*args)

    class Bar(cache_module.tqdm):
        def update(self, n=1):
            events.append("shown")
            return super().update(n)

    monkeypatch.setattr(cache_module, "_compute_and_store", computed)
    monkeypatch.setattr(cache_module, "tqdm", Bar)
    cached_baselines(_stage(), read_frames(WATER, ":3"), tmp_path, progress=True)
    assert events == ["computed", "shown"] * 3


def test_each_baseline_and_level_has_its_own_folder(tmp_path):
    folders = {
        baseline_folder(tmp_path, _stage(name="minao")),
        baseline_folder(tmp_path, _stage(name="sap")),
        baseline_folder(tmp_path, Baseline("minao", WATER_BASIS, True, ScfSettings(method="rks", xc="pbe"))),
    }
    assert len(folders) == 3
    assert baseline_folder(tmp_path, _stage(orthogonal=False)) == baseline_folder(tmp_path, _stage())


def test_a_damaged_file_is_named_and_computed_again(tmp_path, caplog):
    frames = read_frames(WATER, ":2")
    first = cached_baselines(_stage(), frames, tmp_path)
    damaged = sorted(baseline_folder(tmp_path, _stage()).glob("*.h5"))[0]
    with h5py.File(damaged, "r+") as file:
        file["fock"][0, 0] += 1.0
    with caplog.at_level(logging.WARNING):
        again = cached_baselines(_stage(), frames, tmp_path)
    assert f"{damaged} is damaged" in caplog.text
    assert _same(again, first, tolerance=1e-12)


def test_a_file_of_another_structure_is_named_and_computed_again(tmp_path, caplog):
    frames = read_frames(WATER, ":2")
    first = cached_baselines(_stage(), frames, tmp_path)
    folder = baseline_folder(tmp_path, _stage())
    a, b = (folder / f"{cache_module.geometry_hash(f.numbers, f.positions)}.h5" for f in frames)
    b.write_bytes(a.read_bytes())
    with caplog.at_level(logging.WARNING):
        again = cached_baselines(_stage(), frames, tmp_path)
    assert f"{b} holds another structure" in caplog.text
    assert _same(again, first, tolerance=1e-12)


def test_a_fit_given_its_baselines_equals_one_that_computes_them_and_refuses_others(tmp_path):
    frames = read_frames(WATER, ":6")
    targets = [torch.as_tensor(m) * 1.1 for m in _stage().compute(frames).matrices]
    fitted = [
        HamiltonianModel(WATER_BASIS, [1, 8], target="fock_orthogonal", baseline="minao").fit(
            frames, targets, progress=False, baselines=given
        )
        for given in (None, cached_baselines(_stage(), frames, tmp_path))
    ]
    first, second = (model.predict(frames[:1])[0] for model in fitted)
    assert (first - second).abs().max() < 1e-10
    model = HamiltonianModel(WATER_BASIS, [1, 8], target="fock_orthogonal", baseline="minao")
    with pytest.raises(InputError, match="do not belong to a model with baseline 'minao'"):
        model.fit(frames, targets, progress=False, baselines=cached_baselines(_stage(name="sap"), frames, tmp_path))


def test_a_run_keeps_its_baselines_in_the_cache_and_the_next_run_reads_them(tmp_path, monkeypatch):
    overrides = [
        "+experiment=water_fock",
        "baseline=minao",
        "split.train=[0,6]",
        "split.test=[10,12]",
        f"data.frames={WATER}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.n_workers=1",
        "features.density.max_radial=2",
        "features.density.max_angular=2",
    ]
    first = train(compose_config(overrides), tmp_path / "first")
    assert len(list((tmp_path / "cache" / "baselines").glob("*/*.h5"))) == 8
    assert first["baseline_seconds"] > 0
    monkeypatch.setattr(cache_module, "baseline_fock", _must_not_compute)
    second = train(compose_config(overrides), tmp_path / "second")
    assert second["hamiltonian_mae_uha"] == pytest.approx(first["hamiltonian_mae_uha"], rel=1e-9)
