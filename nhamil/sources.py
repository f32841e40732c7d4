"""Structure sources: 3D molecules from SMILES, cached as an extended-xyz file.

A :class:`MoleculeSource` names a SMILES file (one molecule a line: SMILES, then optionally a
name; ``"nci"`` is the 5,000 NCI compounds RDKit ships as ``rdkit/Data/NCI/first_5K.smi``), a
filter (elements, total charge, heavy-atom count, one fragment), a seed and a cap. The molecules
that pass are shuffled with the seed, so that contiguous index ranges of the result are a seeded
random split by molecule, and the first ``max_molecules`` are made 3D by RDKit: hydrogens
added, ETKDG embedding with the seed, MMFF94 relaxation. A molecule that fails to embed or
relax is skipped and named (SMILES and line index) in a warning, never dropped silently.

The structures (Å) are written once, atomically, to ``<cache_dir>/molecules/<key>.extxyz``,
``key`` a hash of the SMILES file's content, the source settings and RDKit's version, each
molecule's ``atoms.info`` holding its ``smiles``, ``name`` and ``index`` (line in the SMILES
file, from 0); the skipped ones go to ``<key>.skipped.json`` and are named again on every read.
Configs name the file as ``${nhamil.molecules:${data.molecules},${data.cache_dir}}`` (see
:func:`register_resolvers`); other structure files (anything ``ase.io.read`` takes, an ASE
database ``.db`` included) are read by :func:`nhamil.reference.read_frames` as they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import ase
import ase.io
import numpy as np
from ase.data import atomic_numbers

from .atomic import atomic_path
from .data import register_resolver as register_data_resolver
from .errors import DataFileError, InputError

log = logging.getLogger(__name__)

#: ``smiles`` value that names the NCI set RDKit ships.
NCI = "nci"

#: Bumped whenever the structures made from the same settings change meaning; part of the cache key.
FORMAT_VERSION = 2


@dataclass(frozen=True, kw_only=True)
class MoleculeSource:
    """Which molecules of a SMILES file to make 3D, and how.

    smiles: a SMILES file, or ``"nci"``; elements: the element symbols a molecule may contain
    (after adding hydrogens); charge: its total formal charge; heavy_atoms: [min, max] number of
    non-hydrogen atoms, both inclusive; single_fragment: refuse salts and mixtures (a ``.`` in
    the SMILES); seed: of the shuffle and of ETKDG; max_molecules: embed only the first that many
    of the shuffled molecules (None: all); mmff_iterations: the most MMFF94 steps.
    """

    smiles: str = NCI
    elements: tuple[str, ...] = ("H", "C", "N", "O")
    charge: int = 0
    heavy_atoms: tuple[int, int] = (1, 12)
    single_fragment: bool = True
    seed: int = 0
    max_molecules: Optional[int] = None
    mmff_iterations: int = 2000

    def __post_init__(self):
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "heavy_atoms", tuple(int(n) for n in self.heavy_atoms))
        unknown = [symbol for symbol in self.elements if symbol not in atomic_numbers]
        if unknown:
            raise InputError(f"data.molecules.elements: {unknown} are not element symbols; write e.g. [H, C, N, O]")
        low, high = self.heavy_atoms if len(self.heavy_atoms) == 2 else (1, 0)
        if not 0 <= low <= high:
            raise InputError(
                f"data.molecules.heavy_atoms={list(self.heavy_atoms)} must be [min, max] with 0 <= min <= max"
            )
        if self.max_molecules is not None and self.max_molecules < 1:
            raise InputError(f"data.molecules.max_molecules={self.max_molecules} must be at least 1, or null for all")

    def smiles_path(self) -> Path:
        """The SMILES file: RDKit's NCI file for ``"nci"``."""
        if self.smiles.lower() == NCI:
            from rdkit import RDConfig

            return Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
        return Path(self.smiles)


@dataclass(frozen=True)
class SmilesEntry:
    """One line of a SMILES file: its ``index`` (line number from 0), ``smiles`` and ``name``
    (the second column; the line number where there is none)."""

    index: int
    smiles: str
    name: str


def read_smiles(path: str | Path) -> list[SmilesEntry]:
    """The molecules of a SMILES file, one a line (SMILES, whitespace, optional name; blank lines
    and lines starting with ``#`` are skipped but counted). ``DataFileError`` naming the file if it
    is missing or holds no molecule."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"SMILES file {path} {'is not a file' if path.exists() else 'does not exist'}")
    entries = []
    for index, line in enumerate(path.read_text().splitlines()):
        fields = line.split(maxsplit=1)
        if fields and not fields[0].startswith("#"):
            entries.append(SmilesEntry(index, fields[0], fields[1].strip() if len(fields) > 1 else str(index)))
    if not entries:
        raise DataFileError(f"SMILES file {path} holds no molecule; write one SMILES a line")
    return entries


def passes(mol, source: MoleculeSource) -> bool:
    """Whether the RDKit molecule ``mol`` (hydrogens implicit or explicit) meets the filter of
    ``source``: elements, total formal charge, heavy-atom count, one fragment, and closed shell (no
    radical electrons: the reference SCFs are restricted and closed-shell)."""
    from rdkit import Chem

    symbols = {atom.GetSymbol() for atom in mol.GetAtoms()}
    if any(atom.GetTotalNumHs() for atom in mol.GetAtoms()):
        symbols.add("H")
    low, high = source.heavy_atoms
    return (
        symbols <= set(source.elements)
        and Chem.GetFormalCharge(mol) == source.charge
        and low <= mol.GetNumHeavyAtoms() <= high
        and (not source.single_fragment or len(Chem.GetMolFrags(mol)) == 1)
        and not any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms())
    )


def select(entries: Sequence[SmilesEntry], source: MoleculeSource) -> list[SmilesEntry]:
    """The entries that RDKit parses and that pass the filter, shuffled with ``source.seed`` and cut
    to ``source.max_molecules``. SMILES RDKit cannot parse are skipped too, named (line index and
    SMILES) in a warning."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        parsed = [(entry, Chem.MolFromSmiles(entry.smiles)) for entry in entries]
    finally:
        RDLogger.EnableLog("rdApp.*")
    kept = [entry for entry, mol in parsed if mol is not None and passes(mol, source)]
    unparsed = [f"{entry.index} {entry.smiles}" for entry, mol in parsed if mol is None]
    if unparsed:
        where = f"{len(unparsed)} SMILES of {source.smiles_path()}"
        log.warning(f"{where} RDKit cannot parse, skipped: {'; '.join(unparsed)}")
    log.info(f"{len(kept)} of {len(entries)} molecules of {source.smiles_path()} pass the filter")
    random.Random(source.seed).shuffle(kept)
    return kept[: source.max_molecules]


class EmbeddingError(ValueError):
    """RDKit could not make a 3D structure of a molecule (the message says why)."""


def embed(smiles: str, seed: int = 0, mmff_iterations: int = 2000) -> ase.Atoms:
    """A 3D structure (Å) of ``smiles``: hydrogens added, ETKDG (version 3) embedding with
    ``seed``, MMFF94 relaxation of at most ``mmff_iterations`` steps. Deterministic for one RDKit
    version and seed. ``EmbeddingError`` if the SMILES does not parse, ETKDG fails, MMFF has no
    parameters for an atom or does not converge."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise EmbeddingError("RDKit cannot parse the SMILES")
    mol = Chem.AddHs(mol)
    parameters = AllChem.ETKDGv3()
    parameters.randomSeed = seed
    if AllChem.EmbedMolecule(mol, parameters) != 0:
        raise EmbeddingError("ETKDG embedding failed")
    if not AllChem.MMFFHasAllMoleculeParams(mol):
        raise EmbeddingError("MMFF94 has no parameters for some atom")
    if AllChem.MMFFOptimizeMolecule(mol, maxIters=mmff_iterations) != 0:
        raise EmbeddingError(f"MMFF94 relaxation did not converge in {mmff_iterations} steps")
    return ase.Atoms(
        numbers=[atom.GetAtomicNum() for atom in mol.GetAtoms()], positions=mol.GetConformer().GetPositions()
    )


def build_molecules(source: MoleculeSource) -> tuple[list[ase.Atoms], list[dict]]:
    """The 3D structures of the molecules ``source`` selects, in its shuffled order, each with
    ``info`` ``smiles``, ``name`` and ``index``; and the skipped ones as dicts (index, smiles, name,
    reason), each also named in a warning."""
    frames, skipped = [], []
    for entry in select(read_smiles(source.smiles_path()), source):
        try:
            atoms = embed(entry.smiles, source.seed, source.mmff_iterations)
        except EmbeddingError as err:
            skipped.append({**asdict(entry), "reason": str(err)})
            log.warning(f"skipped molecule {entry.index} ({entry.name}, {entry.smiles}): {err}")
            continue
        atoms.info.update(smiles=entry.smiles, name=entry.name, index=entry.index)
        frames.append(atoms)
    if not frames:
        raise InputError(f"no molecule of {source.smiles_path()} passes the filter and embeds; widen data.molecules")
    return frames, skipped


def cache_key(source: MoleculeSource) -> str:
    """16 hex digits over the SMILES file's bytes, the settings, RDKit's version and FORMAT_VERSION."""
    from rdkit import __version__ as rdkit_version

    digest = hashlib.sha256(source.smiles_path().read_bytes())
    settings = {**asdict(source), "smiles": None, "rdkit": rdkit_version, "format_version": FORMAT_VERSION}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def molecules_file(source: MoleculeSource, cache_dir: str | Path) -> Path:
    """The extended-xyz file of ``source``'s structures in ``<cache_dir>/molecules/``, built (and
    written atomically, with the skipped molecules beside it) on first use; the skipped ones are
    named in a warning on every call."""
    read_smiles(source.smiles_path())
    folder = Path(cache_dir) / "molecules"
    path = folder / f"{cache_key(source)}.extxyz"
    skipped_path = path.with_suffix(".skipped.json")
    if not (path.is_file() and skipped_path.is_file()):
        frames, skipped = build_molecules(source)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(skipped_path) as temporary:
            temporary.write_text(json.dumps(skipped, indent=1))
        with atomic_path(path) as temporary:
            ase.io.write(temporary, frames, format="extxyz")
        log.info(f"{len(frames)} molecules of {source.smiles_path()} in {path}")
    skipped = json.loads(skipped_path.read_text())
    if skipped:
        names = "; ".join(f"{s['index']} {s['smiles']} ({s['reason']})" for s in skipped)
        log.warning(f"{len(skipped)} molecule(s) of {source.smiles_path()} skipped, they do not embed: {names}")
    return path


def source_from_config(settings: Mapping) -> MoleculeSource:
    """:class:`MoleculeSource` of a ``data.molecules`` config node (or plain dict)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(settings, DictConfig):
        settings = OmegaConf.to_container(settings, resolve=True)
    return MoleculeSource(**settings)


def _resolve_molecules(settings, cache_dir) -> str:
    """The ``nhamil.molecules`` resolver: the cached structure file of a ``data.molecules`` node."""
    return str(molecules_file(source_from_config(settings), cache_dir))


def register_resolvers() -> None:
    """Register with OmegaConf every resolver the data configs use (idempotent):
    ``${nhamil.molecules:NODE,CACHE_DIR}`` and ``${nhamil.data:NAME}``, the packaged data files."""
    from omegaconf import OmegaConf

    register_data_resolver()
    if not OmegaConf.has_resolver("nhamil.molecules"):
        OmegaConf.register_new_resolver("nhamil.molecules", _resolve_molecules, use_cache=True)


def heavy_atom_counts(frames: Sequence[ase.Atoms]) -> np.ndarray:
    """(n_frames,) number of non-hydrogen atoms of each structure."""
    return np.array([int(np.count_nonzero(atoms.numbers > 1)) for atoms in frames])
