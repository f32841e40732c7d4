"""Molecules from SMILES (nhamil.sources), the molecules experiment and density fitting."""

import json
import logging

import ase.db
import ase.io
import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from paper_data import WATER

from nhamil import sources
from nhamil.config import check_known_keys, compose_config
from nhamil.errors import DataFileError, InputError
from nhamil.orbitals import AtomicBasis
from nhamil.reference import ProjectionSettings, ScfSettings, read_frames
from nhamil.reference.baseline import baseline_fock
from nhamil.reference.hartree import HartreeSettings
from nhamil.reference.scf import run_scf
from nhamil.reference.store import settings_hash
from nhamil.sources import MoleculeSource, build_molecules, embed, molecules_file, read_smiles, select
from nhamil.train import hartree_settings, train

#: Index 0-8: kept (ethanol, methylamine, formamide), charged, two fragments, chlorine, 13 heavy
#: atoms, a comment line, a radical; the SMILES file of most tests.
SMILES = """CCO ethanol
CN methylamine
C[N+](C)(C)C tetramethylammonium
CC.O mixture
CCCl chloroethane
CCCCCCCCCCCCC tridecane
# a comment
NC=O formamide
C[CH2] ethyl
"""


@pytest.fixture
def smiles_file(tmp_path):
    path = tmp_path / "molecules.smi"
    path.write_text(SMILES)
    return path


def test_embedding_adds_hydrogens_relaxes_and_repeats_with_the_seed():
    first, again = embed("CCO", seed=3), embed("CCO", seed=3)
    assert first.get_chemical_formula() == "C2H6O"
    np.testing.assert_array_equal(first.positions, again.positions)
    carbon, oxygen = (int(np.flatnonzero(first.numbers == z)[k]) for z, k in ((6, 1), (8, 0)))
    assert 1.38 < first.get_distance(carbon, oxygen) < 1.46  # MMFF94's C-O single bond, not ETKDG's raw guess
    assert not np.allclose(embed("CCO", seed=4).positions, first.positions)


def test_filter_keeps_neutral_single_fragment_molecules_of_the_elements_and_size(smiles_file):
    kept = select(read_smiles(smiles_file), MoleculeSource(smiles=str(smiles_file), seed=0))
    assert sorted(entry.name for entry in kept) == ["ethanol", "formamide", "methylamine"]
    assert {entry.name: entry.index for entry in kept}["formamide"] == 7  # line index, comments counted
    wide = MoleculeSource(smiles=str(smiles_file), elements=("H", "C", "N", "O", "Cl"), heavy_atoms=(1, 13))
    assert {"chloroethane", "tridecane"} <= {entry.name for entry in select(read_smiles(smiles_file), wide)}
    assert len(select(read_smiles(smiles_file), MoleculeSource(smiles=str(smiles_file), max_molecules=2))) == 2


def test_the_seed_shuffles_the_order_so_index_ranges_are_a_seeded_split():
    orders = [
        [entry.index for entry in select(read_smiles(MoleculeSource().smiles_path()), MoleculeSource(seed=seed))]
        for seed in (0, 0, 1)
    ]
    assert len(orders[0]) == 1042  # the count of neutral H/C/N/O NCI molecules of <= 12 heavy atoms
    assert orders[0] == orders[1] != orders[2]
    assert orders[0] != sorted(orders[0])


def test_a_molecule_that_does_not_embed_is_named_and_skipped(tmp_path, caplog):
    path = tmp_path / "boron.smi"
    path.write_text("CCO ethanol\nCB(C)C trimethylborane\nC1CC broken\n")
    source = MoleculeSource(smiles=str(path), elements=("H", "B", "C", "O"))
    with caplog.at_level(logging.WARNING):
        frames, skipped = build_molecules(source)
    assert [atoms.info["name"] for atoms in frames] == ["ethanol"]
    assert skipped == [{"index": 1, "smiles": "CB(C)C", "name": "trimethylborane", "reason": skipped[0]["reason"]}]
    assert "MMFF94" in skipped[0]["reason"]
    assert "CB(C)C" in caplog.text and "trimethylborane" in caplog.text
    assert "2 C1CC" in caplog.text  # the SMILES RDKit cannot parse, by line index


def test_structures_are_cached_with_smiles_and_index_and_keyed_by_the_settings(smiles_file, tmp_path, monkeypatch):
    source = MoleculeSource(smiles=str(smiles_file))
    path = molecules_file(source, tmp_path / "cache")
    frames = read_frames(path)
    assert {atoms.info["smiles"]: atoms.info["index"] for atoms in frames} == {"CCO": 0, "CN": 1, "NC=O": 7}
    assert json.loads(path.with_suffix(".skipped.json").read_text()) == []
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, path.with_suffix(".skipped.json").name])

    def no_embedding(*args, **kwargs):
        raise AssertionError("a cached source was embedded again")

    monkeypatch.setattr(sources, "embed", no_embedding)
    assert molecules_file(source, tmp_path / "cache") == path
    with pytest.raises(AssertionError, match="embedded again"):
        molecules_file(MoleculeSource(smiles=str(smiles_file), seed=1), tmp_path / "cache")


def test_bad_sources_are_refused_with_the_setting_named(tmp_path, smiles_file):
    with pytest.raises(DataFileError, match="does not exist"):
        read_smiles(tmp_path / "missing.smi")
    (tmp_path / "empty.smi").write_text("# nothing\n\n")
    with pytest.raises(DataFileError, match="holds no molecule"):
        read_smiles(tmp_path / "empty.smi")
    with pytest.raises(InputError, match="heavy_atoms"):
        MoleculeSource(heavy_atoms=(5, 2))
    with pytest.raises(InputError, match="element symbols"):
        MoleculeSource(elements=("H", "Xx"))
    with pytest.raises(InputError, match="max_molecules"):
        MoleculeSource(max_molecules=0)
    with pytest.raises(InputError, match="no molecule"):
        build_molecules(MoleculeSource(smiles=str(smiles_file), heavy_atoms=(20, 30)))


def test_an_ase_database_reads_like_a_structure_file(tmp_path):
    frames = read_frames(WATER, ":3")
    with ase.db.connect(tmp_path / "waters.db") as database:
        for atoms in frames:
            database.write(atoms)
    for read, written in zip(read_frames(tmp_path / "waters.db"), frames, strict=True):
        np.testing.assert_array_equal(read.numbers, written.numbers)
        np.testing.assert_allclose(read.positions, written.positions)


def test_density_fitting_is_a_setting_that_leaves_existing_cache_hashes_alone():
    assert "density_fit" not in ScfSettings().to_dict()
    projection = ProjectionSettings()
    assert settings_hash(ScfSettings(density_fit=True), projection) != settings_hash(ScfSettings(), projection)
    water = read_frames(WATER, "0")[0]
    exact, fitted = run_scf(water, ScfSettings()), run_scf(water, ScfSettings(density_fit=True))
    assert 0 < np.abs(fitted.fock - exact.fock).max() < 1e-3  # RI-JK error of def2-universal-jkfit: sub-mHa
    assert abs(fitted.e_tot - exact.e_tot) < 1e-4


def test_sap_baseline_covers_nitrogen():
    """The SAP baseline is most of the Fock matrix for an N-containing molecule too."""
    atoms = embed("NC=O")
    basis = AtomicBasis.from_pyscf("def2-svp", [1, 6, 7, 8])
    fock = run_scf(atoms, ScfSettings()).fock
    baseline, _ = baseline_fock("sap", atoms, basis)
    assert np.linalg.norm(fock - baseline) < 0.2 * np.linalg.norm(fock)


def test_molecules_experiment_composes_with_the_nci_source():
    cfg = compose_config(["+experiment=molecules"])
    assert (cfg.target, cfg.baseline, cfg.reference.density_fit) == ("fock_orthogonal", "minao", True)
    assert list(cfg.data.molecules.heavy_atoms) == [1, 12] and list(cfg.data.extrapolation.heavy_atoms) == [13, 30]
    assert compose_config(["+experiment=molecules_saph"]).target == "saph"
    assert hartree_settings(compose_config(["+experiment=molecules_hartree"])) == HartreeSettings()
    assert hartree_settings(cfg) is None
    with pytest.raises(ConfigCompositionException, match="max_heavy"):
        compose_config(["+experiment=molecules", "data.molecules.max_heavy=3"])
    with pytest.raises(InputError, match="data.molecules.max_heavy"):
        check_known_keys(compose_config(["+experiment=molecules", "+data.molecules.max_heavy=3"]))


def test_molecules_run_reports_the_extrapolation_set_apart(tmp_path):
    path = tmp_path / "small.smi"
    path.write_text("C\nO\nCC\nCO\nC=O\nCCO\nCOC\nCC=O\nCCC\nC=C\nCCCO propanol\n")
    cfg = compose_config(
        [
            "+experiment=molecules",
            f"data.molecules.smiles={path}",
            "data.molecules.heavy_atoms=[1,3]",
            f"data.extrapolation.smiles={path}",
            "data.extrapolation.heavy_atoms=[4,4]",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.n_workers=1",
            "split.train=[0,8]",
            "split.test=[8,10]",
            "features.density.max_radial=3",
            "features.density.max_angular=2",
        ]
    )
    metrics = train(cfg, tmp_path / "run")
    assert metrics["n_train"] == 8 and metrics["extrapolation/n_test"] == 1
    assert metrics["extrapolation/fock_ao_mae_uha"] > 0 and np.isfinite(
        metrics["extrapolation/occupied_energy_mae_mev"]
    )
    assert metrics["extrapolation/n_out_of_domain"] in (0, 1)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["extrapolation/n_test"] == 1
