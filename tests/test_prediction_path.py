"""The prediction path: the baseline as a stage of its own, one AO overlap, inputs checked once,
pairs featurized in chunks (the same matrices, the same symmetry law) and the pair cutoff."""

import ase
import numpy as np
import pytest
import torch

import nhamil.evaluate
import nhamil.properties.run
from nhamil.blocks import MatrixLayout
from nhamil.errors import InputError
from nhamil.features import DensitySettings
from nhamil.heads import GatedSettings, GateSettings
from nhamil.model import FeatureSettings, HamiltonianModel, pairs_within
from nhamil.orbitals import AtomicBasis
from nhamil.reference import ScfSettings, baseline, run_scf, scf
from nhamil.reference.scf import overlap_matrix
from nhamil.testing import AOMatrices, assert_equivariant
from nhamil.training import FinetuneSettings

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = FeatureSettings(density=DensitySettings(max_radial=3, max_angular=3))
SVP = AtomicBasis.from_pyscf("def2-svp", [1, 8])
#: Shorter than the O-O and intermolecular O-H distances of the dimers, longer than H-H in a water.
CUTOFF = 2.0


def _random_targets(frames, basis, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [basis.n_ao(atoms.numbers) for atoms in frames]
    return [torch.as_tensor(a + a.T) for a in (rng.normal(size=(n, n)) for n in sizes)]


def _dimers(water, n=4, seed=0):
    """``n`` water dimers, the second copy 3.2 Å along x and randomly turned."""
    rng = np.random.default_rng(seed)
    dimers = []
    for k in range(n):
        first, second = water[k].positions, water[k + n].positions
        turn, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        moved = (second - second.mean(0)) @ turn.T + first.mean(0) + [3.2, 0.0, 0.0]
        dimers.append(ase.Atoms(np.r_[water[k].numbers, water[k + n].numbers], np.r_[first, moved]))
    return dimers


@pytest.fixture(scope="module")
def sap_model(water_saph_data):
    """An AO Fock model with the SAP baseline, fitted on random targets of six water frames."""
    frames = water_saph_data[0]
    model = HamiltonianModel(SVP, [1, 8], target="fock", features=SMALL, baseline="sap")
    return model.fit(frames[:6], _random_targets(frames[:6], SVP), progress=False), frames


@pytest.fixture(scope="module")
def dimer_models(water_saph_data):
    """Models of water dimers (def2-SVP, random targets) with and without the pair cutoff."""
    dimers = _dimers(water_saph_data[0])
    targets = _random_targets(dimers, SVP)
    models = {
        cutoff: HamiltonianModel(SVP, [1, 8], target="fock", features=SMALL, pair_cutoff=cutoff).fit(
            dimers[:3], targets[:3], progress=False
        )
        for cutoff in (None, CUTOFF)
    }
    return models, dimers, targets


def test_given_baselines_are_used_and_pyscf_is_not_run_again(sap_model, monkeypatch):
    model, frames = sap_model
    held = model.baselines(frames[6:9])
    expected = model.predict(frames[6:9], check_domain=False)
    calls = []
    original = baseline.baseline_fock
    monkeypatch.setattr(baseline, "baseline_fock", lambda *args: calls.append(args) or original(*args))
    predicted = model.predict(frames[6:9], baselines=held, check_domain=False)
    assert calls == []
    for a, b in zip(predicted, expected, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert len(held.overlaps) == 3 and np.array_equal(held.overlaps[0], overlap_matrix(frames[6], "def2-svp"))


def test_baselines_of_other_frames_or_models_are_refused(sap_model, water_saph_data):
    model, frames = sap_model
    with pytest.raises(InputError, match="2 baseline matrices for 3 frames"):
        model.predict(frames[6:9], baselines=model.baselines(frames[6:8]), check_domain=False)
    other = baseline.BaselineMatrices("sap", False, [np.zeros((5, 5))], [np.eye(5)])
    with pytest.raises(InputError, match=r"baseline matrix 0 is \(5, 5\).*structure 0 \(H2O\) has 24 AOs"):
        model.predict(frames[6:7], baselines=other, check_domain=False)
    plain = HamiltonianModel(SVP, [1, 8], target="fock", features=SMALL)
    plain.fit(frames[:3], _random_targets(frames[:3], SVP), progress=False)
    with pytest.raises(InputError, match="model with baseline None"):
        plain.predict(frames[6:7], baselines=model.baselines(frames[6:7]), check_domain=False)


def test_one_overlap_function_everywhere():
    """The SCF's overlap, the baseline's and evaluation's are one function's, bit for bit."""
    atoms = ase.Atoms("OH2", [[0.0, 0.0, 0.1], [0.0, 0.76, -0.5], [0.0, -0.76, -0.45]])
    overlap = overlap_matrix(atoms, ScfSettings())
    assert nhamil.evaluate.overlap_matrix is overlap_matrix is scf.overlap_matrix
    assert overlap.dtype == np.float64 and np.array_equal(overlap, overlap.T)
    assert np.array_equal(baseline.baseline_fock("sap", atoms, SVP)[1], overlap)
    assert np.array_equal(run_scf(atoms, ScfSettings()).overlap, overlap)


def test_inputs_are_checked_once_and_the_layout_built_once_per_batch(sap_model, monkeypatch):
    model, frames = sap_model
    layouts, checks = [], []
    build = MatrixLayout.from_numbers.__func__
    monkeypatch.setattr(MatrixLayout, "from_numbers", classmethod(lambda *a, **k: layouts.append(1) or build(*a, **k)))
    check = HamiltonianModel.check_elements
    monkeypatch.setattr(HamiltonianModel, "check_elements", lambda *a: checks.append(1) or check(*a))
    model.predict(frames[6:11], batch_size=2, baselines=model.baselines(frames[6:11]), check_domain=False)
    assert (len(layouts), len(checks)) == (3, 1)


def test_chunks_of_pairs_give_the_same_matrices(dimer_models):
    models, dimers, _ = dimer_models
    for model in models.values():
        whole = model.predict(dimers[3:], pair_chunk=10**6)
        for chunk in (1, 7):
            for a, b in zip(model.predict(dimers[3:], pair_chunk=chunk), whole, strict=True):
                torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cutoff", [None, CUTOFF])
def test_chunked_and_cutoff_predictions_follow_rotation_inversion_and_permutation(dimer_models, cutoff):
    models, dimers, _ = dimer_models
    model = models[cutoff]
    assert_equivariant(
        lambda frames: model.predict(frames, pair_chunk=5), [dimers[3]], law=AOMatrices(SVP), seed=3, atol=1e-10
    )


def test_pairs_beyond_the_cutoff_have_exactly_zero_blocks(dimer_models):
    models, dimers, _ = dimer_models
    atoms = dimers[3]
    (predicted,) = models[CUTOFF].predict([atoms])
    (everything,) = models[None].predict([atoms])
    offsets = SVP.atom_offsets(atoms.numbers)
    far = [(i, j) for i in range(6) for j in range(6) if atoms.get_distance(i, j) > CUTOFF]
    assert len(far) >= 16
    for i, j in far:
        block = (slice(offsets[i], offsets[i + 1]), slice(offsets[j], offsets[j + 1]))
        assert torch.count_nonzero(predicted[block]) == 0
        assert torch.count_nonzero(everything[block]) > 0 or atoms.get_distance(i, j) > SMALL.density.cutoff


def test_a_pair_cutoff_at_the_density_cutoff_leaves_predictions_unchanged(dimer_models):
    """Pair features vanish beyond the density cutoff and pair heads have no constant term: a
    model predicts the same with those pairs left out. (A fit with the cutoff is not the same
    fit: ridge scales features over the samples it is given.)"""
    models, dimers, _ = dimer_models
    everything = models[None]
    state = {**everything.state_dict(), "pair_cutoff": SMALL.density.cutoff}
    torch.testing.assert_close(
        HamiltonianModel.from_state_dict(state).predict(dimers[3:])[0],
        everything.predict(dimers[3:])[0],
        atol=1e-12,
        rtol=0,
    )


def test_the_fit_ignores_targets_of_pairs_beyond_the_cutoff(dimer_models):
    models, dimers, targets = dimer_models
    damaged = [t.clone() for t in targets[:3]]
    for t in damaged:
        t[:24, 24:] = t[24:, :24] = 1e3
    refitted = HamiltonianModel(SVP, [1, 8], target="fock", features=SMALL, pair_cutoff=CUTOFF)
    refitted.fit(dimers[:3], damaged, progress=False)
    torch.testing.assert_close(refitted.predict(dimers[3:])[0], models[CUTOFF].predict(dimers[3:])[0], atol=0, rtol=0)


def test_an_atom_pair_beyond_the_cutoff_needs_no_heads(water_saph_data):
    """A model of single waters has no O-O heads: a dimer is refused without a cutoff, and
    predicted with one that keeps the two waters apart."""
    frames, matrices, basis = water_saph_data
    dimer = _dimers(frames, n=1)
    for cutoff in (None, CUTOFF):
        model = HamiltonianModel(basis, [1, 8], target="saph", features=SMALL, pair_cutoff=cutoff)
        model.fit(frames[:6], matrices[:6], progress=False)
        if cutoff is None:
            with pytest.raises(ValueError, match=r"structure 0 \(H4O2\) has atom pairs .* O-O"):
                model.predict(dimer)
        else:
            assert model.predict(dimer, check_domain=False)[0].shape == (12, 12)


def test_pair_cutoff_is_saved_and_old_checkpoints_load_without_one(dimer_models, tmp_path):
    models, dimers, _ = dimer_models
    models[CUTOFF].save(tmp_path / "model.pt")
    restored = HamiltonianModel.load(tmp_path / "model.pt")
    assert restored.pair_cutoff == CUTOFF
    torch.testing.assert_close(restored.predict(dimers[3:])[0], models[CUTOFF].predict(dimers[3:])[0], atol=0, rtol=0)
    old = {k: v for k, v in models[None].state_dict().items() if k != "pair_cutoff"}
    assert HamiltonianModel.from_state_dict(old).pair_cutoff is None


def test_bad_pair_settings_are_named():
    with pytest.raises(InputError, match="pair_cutoff=0.0"):
        HamiltonianModel(SVP, [1, 8], target="fock", pair_cutoff=0.0)


def test_pairs_within_is_sparse_and_sorted():
    positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.5], [0.0, 0.0, 3.0], [0.0, 0.0, 10.0]])
    assert pairs_within(positions, 1.6).tolist() == [[0, 1], [1, 2]]
    assert pairs_within(positions, 0.5).shape == (0, 2)


def test_gate_settings_have_one_definition():
    assert issubclass(FinetuneSettings, GateSettings) and issubclass(GatedSettings, GateSettings)
    for settings, group in ((FinetuneSettings, "finetune"), (GatedSettings, "head")):
        with pytest.raises(InputError, match=f"{group}.layers=-1"):
            settings(layers=-1)


def test_properties_read_the_level_of_theory_through_scf_settings(monkeypatch):
    from omegaconf import OmegaConf

    calls = []
    monkeypatch.setattr(nhamil.properties.run, "scf_settings", lambda cfg: calls.append(cfg) or ScfSettings())
    node = {"timestep_fs": 0.5, "temperature_K": 300, "friction": 0.01, "chunk_size": 4, "seed": 0}
    settings = nhamil.properties.run.trajectory_settings(OmegaConf.create({**node, "reference": {}}))
    assert len(calls) == 1 and settings.scf == ScfSettings()


def test_chunks_give_the_same_matrices_with_four_body_pairs_and_contractions(water_saph_data):
    """Pair features of order 2 correlate each chunk's own centre atoms, contracted: the same."""
    dimers = _dimers(water_saph_data[0])
    features = FeatureSettings(
        density=DensitySettings(max_radial=2, max_angular=2), pair_correlation_order=2, contraction_channels=6
    )
    model = HamiltonianModel(SVP, [1, 8], target="fock", features=features)
    model.fit(dimers[:3], _random_targets(dimers[:3], SVP), progress=False)
    whole = model.predict(dimers[3:], pair_chunk=10**6)[0]
    torch.testing.assert_close(model.predict(dimers[3:], pair_chunk=2)[0], whole, atol=1e-12, rtol=0)
    assert whole.abs().max() > 1e-3


def test_pair_cutoff_is_a_training_setting():
    """``pair_cutoff=3.5`` on the command line reaches the model that training builds; null keeps
    every pair."""
    from nhamil.config import compose_config
    from nhamil.orbitals import AtomicBasis
    from nhamil.train import _make_model

    basis = AtomicBasis.from_pyscf("def2-svp", [1, 8])
    for override, expected in (([], None), (["pair_cutoff=3.5"], 3.5)):
        cfg = compose_config(["+experiment=water_fock", *override])
        assert _make_model(cfg, basis, [1, 8]).pair_cutoff == expected
