"""The structure files shipped in ``nhamil/data``: found by plain name from any folder, compressed
or not; ``NHAMIL_DATA_DIR`` overrides; a wrong name lists what exists; the experiments' configs
read them through ``${nhamil.data:NAME}``."""

import gzip
import hashlib
import re

import pytest

from nhamil.config import compose_config
from nhamil.data import PACKAGED, available, data_file
from nhamil.errors import DataFileError, InputError


def test_data_files_are_found_from_any_folder_and_the_variable_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("NHAMIL_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert data_file("water_coords_1000.xyz") == PACKAGED / "water_coords_1000.xyz.gz"
    assert available() == [
        "bispectrum.xyz",
        "ethanol-structures.xyz",
        "powerspectrum-triplet.xyz",
        "qm7-example-structure.xyz",
        "water_coords_1000.xyz",
    ]
    (tmp_path / "water_coords_1000.xyz").write_text("3\n\nO 0 0 0\nH 0 0 1\nH 0 1 0\n")
    monkeypatch.setenv("NHAMIL_DATA_DIR", str(tmp_path))
    assert data_file("water_coords_1000.xyz") == tmp_path / "water_coords_1000.xyz"
    with pytest.raises(DataFileError, match="no data file 'ethanol-structures.xyz' in .*; available: water_coords"):
        data_file("ethanol-structures.xyz")
    monkeypatch.setenv("NHAMIL_DATA_DIR", str(tmp_path / "absent"))
    with pytest.raises(DataFileError, match="NHAMIL_DATA_DIR=.*absent is not a folder"):
        data_file("water_coords_1000.xyz")


def test_an_explicit_folder_is_searched_for_plain_and_compressed_files(tmp_path):
    (tmp_path / "bispectrum.xyz.gz").write_bytes(b"")
    assert data_file("bispectrum.xyz", tmp_path) == tmp_path / "bispectrum.xyz.gz"
    with pytest.raises(DataFileError, match="data folder .*absent does not exist"):
        data_file("bispectrum.xyz", tmp_path / "absent")


def test_a_missing_name_lists_the_packaged_files(monkeypatch):
    monkeypatch.delenv("NHAMIL_DATA_DIR", raising=False)
    with pytest.raises(InputError, match="no data file 'water.xyz' .*available: bispectrum.xyz, ethanol"):
        data_file("water.xyz")
    with pytest.raises(DataFileError, match="no data file '../configs/train.yaml'"):
        data_file("../configs/train.yaml")


@pytest.mark.parametrize(
    "experiment, name",
    [("water", "water_coords_1000.xyz"), ("ethanol", "ethanol-structures.xyz"), ("qm7", "qm7-example-structure.xyz")],
)
def test_experiments_read_the_packaged_files_from_any_folder(experiment, name, tmp_path, monkeypatch):
    monkeypatch.delenv("NHAMIL_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert compose_config([f"+experiment={experiment}"]).data.frames == str(PACKAGED / f"{name}.gz")


def test_packaged_files_are_the_published_ones():
    """Each file decompresses to the SHA-256 its README states (the authors' uncompressed file)."""
    stated = dict(re.findall(r"`([\w.-]+\.xyz)\.gz` .* `([0-9a-f]{64})`", (PACKAGED / "README.md").read_text()))
    assert sorted(stated) == available(PACKAGED)
    for name, digest in stated.items():
        assert hashlib.sha256(gzip.decompress((PACKAGED / f"{name}.gz").read_bytes())).hexdigest() == digest, name
