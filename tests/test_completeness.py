"""Completeness, shown on the paper's degenerate structures: atom-centred invariants of order nu
coincide to 1e-10 around the carbon, N-centre features tell the structures apart."""

from __future__ import annotations

import ase.io
import pytest

from nhamil.data import data_file
from nhamil.features import DensitySettings
from nhamil.features.completeness import family_invariants, matched_distance

SETTINGS = DensitySettings(max_radial=4, max_angular=4)
SPECIES = (1, 6, 8)
#: A "clear margin": 3 % of relative distance (the distinguishing families were seen at 4-38 %).
CLEAR = 0.03
N_CENTRE = ("pair nu<=1", "pair nu<=2", "both centres", "triplets")

pytestmark = pytest.mark.usefixtures("one_thread")


def distances(name: str) -> dict[str, list[float]]:
    """Family -> distance of each structure of file ``name`` from its first, around the carbon."""
    frames = ase.io.read(data_file(name), ":")
    assert frames[0].numbers[0] == 6
    invariants = [family_invariants(atoms, 0, SPECIES, SETTINGS) for atoms in frames]
    return {
        family: [matched_distance(first, other[family]) for other in invariants[1:]]
        for family, first in invariants[0].items()
    }


def test_power_spectrum_triplet():
    """Three CH7: nu = 2 agrees, nu = 3 and every N-centre family differ."""
    table = distances("powerspectrum-triplet.xyz")
    assert len(table["nu=2"]) == 2
    assert max(table["nu=1"] + table["nu=2"]) < 1e-10
    for family in ("nu=3", "message passing", *N_CENTRE):
        assert min(table[family]) > CLEAR, (family, table[family])


def test_bispectrum_pair():
    """Two CH6O: nu = 3 agrees (so does rho_i^[1<-1] of the carbon), N-centre families differ."""
    table = distances("bispectrum.xyz")
    assert max(table["nu=2"] + table["nu=3"]) < 1e-10
    for family in N_CENTRE:
        assert min(table[family]) > CLEAR, (family, table[family])


def test_matched_distance_ignores_numbering_but_not_elements():
    frames = ase.io.read(data_file("bispectrum.xyz"), ":")
    atoms = frames[0]
    shuffled = atoms[[0, 7, 3, 1, 6, 2, 5, 4]]
    first, second = (family_invariants(a, 0, SPECIES, SETTINGS)["triplets"] for a in (atoms, shuffled))
    assert matched_distance(first, second) < 1e-12
    with pytest.raises(ValueError, match="different neighbour elements"):
        matched_distance(first, (second[0], second[1] + 1))
