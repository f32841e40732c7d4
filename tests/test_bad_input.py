"""Bad input to the training command and the structure reader: one clear line naming the file,
the setting or the structure and its atoms, before any reference calculation."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import ase
import ase.io
import numpy as np
import pytest
from paper_data import WATER

from nhamil.config import compose_config
from nhamil.errors import DataFileError, InputError
from nhamil.evaluate.__main__ import main as evaluate_main
from nhamil.reference import read_frames
from nhamil.structures import check_geometries
from nhamil.train import _warn_duplicates, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def five_frames(tmp_path) -> Path:
    """The first five water frames as an extended-xyz file."""
    path = tmp_path / "five.xyz"
    ase.io.write(path, read_frames(WATER, ":5"), format="extxyz")
    return path


def _config(tmp_path, frames, *overrides):
    return compose_config(
        [
            "+experiment=water",
            f"data.frames={frames}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.n_workers=1",
            "split.train=[0,3]",
            "split.test=[3,5]",
            *overrides,
        ]
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("split.test=[-2,0]", r"split.test=\[-2, 0\] must be \[start, stop\) with 0 <= start < stop <= 5"),
        ("split.train=[0,4,2]", r"split.train=\[0, 4, 2\].*no step"),
        ("split.test=[3,9]", r"split.test=\[3, 9\].*<= 5, the number of frames of .*five.xyz"),
        ("split.test=[2,5]", r"training frames \[0, 3\] and test frames \[2, 5\] overlap"),
        ("+split.valid=[3,4]", r"unknown setting 'split.valid': SplitConfig has test, train"),
        ("+head.alpah=1", r"unknown setting 'head.alpah': RidgeHeadConfig has alphas, kind, n_folds"),
    ],
)
def test_bad_split_or_added_key_is_refused_before_the_references(tmp_path, five_frames, override, message):
    with pytest.raises(InputError, match=message):
        train(_config(tmp_path, five_frames, override), tmp_path / "run")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "position, message",
    [
        (np.nan, r"structure 4 \(H2O\): atom 1 \(H\) has a non-finite coordinate \[nan"),
        (np.inf, r"structure 4 \(H2O\): atom 1 \(H\) has a non-finite coordinate \[inf"),
        (0.0, r"structure 4 \(H2O\): atoms 0 \(O\) and 1 \(H\) are 0 Å apart, closer than 0.1 Å"),
    ],
)
def test_impossible_geometry_is_refused_before_the_references(tmp_path, position, message):
    frames = read_frames(WATER, ":5")
    frames[4].positions[1] = frames[4].positions[0] if position == 0.0 else position
    ase.io.write(tmp_path / "bad.xyz", frames, format="extxyz")
    with pytest.raises(InputError, match=message):
        train(_config(tmp_path, tmp_path / "bad.xyz"), tmp_path / "run")
    assert not (tmp_path / "cache").exists()


def test_geometry_check_names_the_data_file_index():
    atoms = ase.Atoms("H2", [[0, 0, 0], [0, 0, 0.05]])
    with pytest.raises(InputError, match=r"structure 17 \(H2\): atoms 0 \(H\) and 1 \(H\) are 0.05 Å apart"):
        check_geometries([ase.Atoms("H2", [[0, 0, 0], [0, 0, 0.74]]), atoms], labels=[3, 17])
    check_geometries([atoms], min_distance=0.01)


@pytest.mark.parametrize(
    "train_ids, test_ids, pairs",
    [
        (range(950), range(950, 1000), "926 = 963"),
        (range(400, 1000), range(400), "412 = 365"),
        (range(100), range(100, 200), None),
    ],
)
def test_duplicate_train_test_geometries_are_named(caplog, train_ids, test_ids, pairs):
    """The water file repeats frame 365 as 412 and 926 as 963."""
    with caplog.at_level(logging.WARNING, logger="nhamil.train"):
        _warn_duplicates(read_frames(WATER), train_ids, test_ids)
    if pairs is None:
        assert not caplog.records
    else:
        assert f"1 test frame(s) repeat a training geometry (training = test frame: {pairs})" in caplog.text


@pytest.mark.parametrize(
    "content, index, error, message",
    [
        (None, ":", DataFileError, r"structure file .*missing.xyz does not exist"),
        ("", ":", DataFileError, r"structure file .*data.xyz: ASE cannot read it \(Empty file"),
        ("hello\n", ":", DataFileError, r"structure file .*data.foo: ASE cannot read it"),
        ("3\n\nO 0 0 0\nH 1 0 0\n", ":", DataFileError, r"structure file .*data.xyz cannot be read: XYZError"),
        ("five", "101", InputError, r"structure file .*five.xyz has 5 frames; index '101' is beyond them"),
        ("five", 7, InputError, r"structure file .*five.xyz has 5 frames; index 7 is beyond them"),
        ("five", "10:", InputError, r"index '10:' selects none of the 5 frames of .*five.xyz"),
        ("five", "one", InputError, r"frame index 'one' for .*five.xyz is not one ase.io.read takes"),
    ],
)
def test_read_frames_names_the_file_and_the_problem(tmp_path, five_frames, content, index, error, message):
    if content == "five":
        path = five_frames
    elif content is None:
        path = tmp_path / "missing.xyz"
    else:
        path = tmp_path / ("data.foo" if content == "hello\n" else "data.xyz")
        path.write_text(content)
    with pytest.raises(error, match=message):
        read_frames(path, index)


def _train_command(tmp_path, *arguments):
    env = {name: value for name, value in os.environ.items() if name != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "nhamil.train",
            *arguments,
            f"data.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    "override, code, message",
    [
        (
            "+head.alpah=1",
            2,
            (
                "nhamil.train: error: unknown setting 'head.alpah': RidgeHeadConfig has alphas, kind, "
                "n_folds; check its spelling (a '+' override adds any key)\n"
            ),
        ),
        ("head.alpah=1", 1, "Key 'alpah' not in 'RidgeHeadConfig'"),
    ],
)
def test_command_typos_fail_before_any_work(tmp_path, override, code, message):
    done = _train_command(tmp_path, "+experiment=water", override)
    assert done.returncode == code and message in done.stderr and "Traceback" not in done.stderr
    if code == 2:
        assert done.stderr.count("\n") == 1
    assert not (tmp_path / "cache").exists()


def test_help_shows_examples_heads_and_units():
    shown = subprocess.run(
        [sys.executable, "-m", "nhamil.train", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for text in [
        "python -m nhamil.train -m +experiment=water head=ridge,kernel hydra/launcher=local",
        "experiment: dipole_dce, ethanol",
        "sparse_kernel",
        "minibatch",
        "positions in Å",
        "µHa",
        "absolute frame indices",
    ]:
        assert text in shown
    assert "Powered by Hydra" not in shown


def test_evaluate_command_reports_a_missing_run_folder_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main([str(tmp_path / "no-run")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.startswith("nhamil.evaluate: error: ") and error.count("\n") == 1
    assert "no-run" in error
