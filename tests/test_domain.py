"""The training domain: structures with interatomic distances outside those of the training set
are flagged (a warning from the model, a per-structure flag in the predict command's output),
training structures are not, and the flag does not depend on orientation or atom order."""

import re
import warnings

import ase
import h5py
import numpy as np
import pytest
import torch
from water_fock_run import WATER, water_fock_run

from nhamil.domain import OutOfDomainWarning, TrainingDomain, warn_out_of_domain
from nhamil.errors import DataFileError, InputError
from nhamil.model import HamiltonianModel
from nhamil.orbitals import random_rotation
from nhamil.predict import main as predict_main
from nhamil.reference import read_frames

CUTOFF = 4.0


def _stretched(atoms: ase.Atoms, distance: float = 1.69) -> ase.Atoms:
    """A copy of a water with its first O-H bond (atoms 0-1) stretched to ``distance`` Å."""
    stretched = atoms.copy()
    bond = atoms.positions[1] - atoms.positions[0]
    stretched.positions[1] = atoms.positions[0] + bond / np.linalg.norm(bond) * distance
    return stretched


def _oh_range(frames) -> tuple[float, float]:
    distances = [atoms.get_distance(0, k) for atoms in frames for k in (1, 2)]
    return min(distances), max(distances)


def _moved(atoms: ase.Atoms, seed: int) -> ase.Atoms:
    """Rotated (improperly), translated and with its atoms in reverse order."""
    rotation = random_rotation(torch.Generator().manual_seed(seed), improper=True).numpy()
    return ase.Atoms(atoms.numbers[::-1], (atoms.positions[::-1] + [0.3, -1.2, 2.5]) @ rotation.T)


@pytest.fixture(scope="module")
def frames():
    return read_frames(WATER, ":200")


@pytest.fixture(scope="module")
def domain(frames):
    return TrainingDomain.from_frames(frames[:10], CUTOFF)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return water_fock_run(tmp_path_factory)


def test_training_frames_are_in_domain_and_a_stretched_water_is_not(frames, domain):
    assert all(report.in_domain and report.reason == "" for report in domain.check(frames[:10]))
    [report] = domain.check([_stretched(frames[10])])
    low, high = _oh_range(frames[:10])
    assert not report.in_domain
    assert report.reason.startswith(
        f"O-H distance 1.69 Å (atoms 0-1) outside the training range {low:.2f}-{high:.2f} Å"
    )


def test_flag_is_invariant_under_rotation_inversion_translation_and_permutation(frames, domain):
    checked = frames[10:200] + [_stretched(frames[k]) for k in range(10, 20)]
    reports = domain.check(checked)
    moved = domain.check([_moved(atoms, seed) for seed, atoms in enumerate(checked)])
    assert [r.in_domain for r in moved] == [r.in_domain for r in reports]
    assert 10 < sum(not r.in_domain for r in reports) < len(checked)  # both answers occur
    kind_and_distance = re.compile(r"^(\S+ distance \S+ Å)")
    for report, copy in zip(reports, moved, strict=True):
        assert kind_and_distance.findall(copy.reason) == kind_and_distance.findall(report.reason)


def test_tolerance_widens_each_training_range(frames, domain):
    _, high = _oh_range(frames[:10])
    slightly_long = _stretched(frames[0], high * 1.01)
    assert domain.check([slightly_long])[0].in_domain
    strict = TrainingDomain(cutoff=domain.cutoff, pairs=domain.pairs, tolerance=0.0)
    assert not strict.check([slightly_long])[0].in_domain


def test_pairs_beyond_the_cutoff_are_not_checked_but_unseen_kinds_within_it_are(frames, domain):
    far = frames[0] + frames[1].copy()
    far.positions[3:] += [2 * CUTOFF, 0, 0]
    close = frames[0] + frames[1].copy()
    close.positions[3:] += [2.9, 0, 0]
    far_report, close_report = domain.check([far, close])
    assert far_report.in_domain
    assert not close_report.in_domain
    assert re.match(r"O-O distance \S+ Å \(atoms 0-3\): no O-O pair closer than the cutoff 4 Å", close_report.reason)


def test_survives_plain_data_and_a_weights_only_torch_file(domain, tmp_path):
    assert TrainingDomain.from_dict(domain.to_dict()) == domain
    torch.save({"domain": domain.to_dict()}, tmp_path / "d.pt")
    assert TrainingDomain.from_dict(torch.load(tmp_path / "d.pt", weights_only=True)["domain"]) == domain


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda f: TrainingDomain.from_frames(f[:2], 0.0), InputError, "cutoff must be > 0"),
        (lambda f: TrainingDomain.from_frames(f[:2], CUTOFF, tolerance=1.5), InputError, "0 <= tolerance < 1"),
        (lambda f: TrainingDomain.from_frames([], CUTOFF), InputError, "no training structures"),
        (lambda f: TrainingDomain.from_dict({"cutoff": 4.0, "pairs": [[1, 8]]}), DataFileError, "domain is damaged"),
    ],
)
def test_bad_settings_or_data_raise_one_line_errors(frames, make, error, message):
    with pytest.raises(error, match=message):
        make(frames)


def test_warning_names_a_few_structures_and_counts_the_rest(frames, domain):
    checked = [frames[10]] + [_stretched(frames[k]) for k in range(11, 16)]
    with pytest.warns(OutOfDomainWarning) as caught:
        warn_out_of_domain(domain.check(checked), checked)
    [warning] = caught
    message = str(warning.message)
    assert "\n" not in message
    assert message.startswith("5 of 6 structures outside the training domain")
    assert "structure 1 (H2O): O-H distance 1.69 Å" in message and "structure 3 (H2O)" in message
    assert "structure 4" not in message and message.endswith("; and 2 more")


def test_model_records_its_domain_and_warns_for_the_stretched_water_only(run_dir, frames):
    model = HamiltonianModel.load(run_dir / "model.pt")
    assert model.domain == TrainingDomain.from_frames(frames[:10], model.features.density.cutoff)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(frames[:10])
    with pytest.warns(OutOfDomainWarning, match=r"^1 of 2 structures .*: structure 1 \(H2O\): O-H distance 1\.69 Å"):
        model.predict([frames[10], _stretched(frames[10])])


def test_domain_survives_save_and_load_and_an_older_checkpoint_has_none(run_dir, tmp_path, frames):
    model = HamiltonianModel.load(run_dir / "model.pt")
    model.save(tmp_path / "again.pt")
    again = HamiltonianModel.load(tmp_path / "again.pt")
    assert again.domain == model.domain
    assert [r.reason for r in again.domain_reports([_stretched(frames[10])])] == [
        r.reason for r in model.domain_reports([_stretched(frames[10])])
    ]
    state = model.state_dict()
    del state["domain"]
    older = HamiltonianModel.from_state_dict(state)
    assert older.domain is None and older.domain_reports(frames[:2]) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        older.predict([_stretched(frames[10])])


def test_predict_command_writes_the_flag_the_reason_and_a_summary(run_dir, tmp_path, frames, capsys):
    structures = [frames[10], _stretched(frames[10]), _moved(_stretched(frames[11]), 3)]
    ase.io.write(tmp_path / "molecules.xyz", structures, format="extxyz")
    with pytest.warns(OutOfDomainWarning) as caught:
        output = predict_main(
            [
                str(run_dir / "model.pt"),
                str(tmp_path / "molecules.xyz"),
                "-o",
                str(tmp_path / "out.h5"),
                "--batch-size",
                "1",
            ]
        )
    assert len([w for w in caught if w.category is OutOfDomainWarning]) == 1  # one warning, not one per batch
    assert "2 of 3 structures outside the training domain" in capsys.readouterr().out
    with h5py.File(output) as file:
        assert file.attrs["domain_checked"]
        flags = [bool(file[name]["out_of_domain"][()]) for name in sorted(file)]
        reasons = [file[name]["out_of_domain"].attrs["reason"] for name in sorted(file)]
    assert flags == [False, True, True]
    assert reasons[0] == "" and reasons[1].startswith("O-H distance 1.69 Å (atoms 0-1)")
    assert reasons[2].startswith("O-H distance 1.69 Å (atoms 2-1)")  # atoms reversed by _moved


def test_predict_command_with_an_older_checkpoint_writes_no_flags_and_says_so(run_dir, tmp_path, frames, capsys):
    state = HamiltonianModel.load(run_dir / "model.pt").state_dict()
    del state["domain"]
    torch.save(state, tmp_path / "older.pt")
    ase.io.write(tmp_path / "molecules.xyz", [_stretched(frames[10])], format="extxyz")
    output = predict_main([str(tmp_path / "older.pt"), str(tmp_path / "molecules.xyz"), "-o", str(tmp_path / "o.h5")])
    assert "the model records no training domain" in capsys.readouterr().out
    with h5py.File(output) as file:
        assert not file.attrs["domain_checked"] and "out_of_domain" not in file["000000"]
