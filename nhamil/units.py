"""Units. Positions are in Å (ASE's unit); matrices and energies are in Hartree inside nhamil.

Reports convert at the edge, with the field's habits: µHa for matrix elements, meV for orbital
energies and gaps.
"""

from ase.units import Hartree as _EV_PER_HARTREE

#: Orbital energies and gaps: Hartree -> meV.
HARTREE_TO_MEV = _EV_PER_HARTREE * 1000.0

#: Matrix elements: Hartree -> µHa.
HARTREE_TO_MICROHARTREE = 1.0e6
