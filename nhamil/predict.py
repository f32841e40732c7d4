"""Predict Hamiltonians of new structures: ``python -m nhamil.predict model.pt molecules.xyz``.

Reads any structure file ASE reads (xyz, extended xyz, ...), checks that the model knows every
element (and, with ``--basis``, the basis) before any work, predicts in batches with a
progress bar, and writes one HDF5 file (atomically), one group per structure::

    /<index>/numbers    (n_atoms,) atomic numbers
    /<index>/positions  (n_atoms, 3) Å
    /<index>/matrix     (n, n) predicted target matrix (attribute ``target``), Hartree, canonical AO order
    /<index>/orbital_energies  (n,) its eigenvalues, Hartree, ascending (for the non-orthogonal
                        ``fock`` target, generalized ones with PySCF's AO overlap at that geometry)
    /<index>/out_of_domain  () bool: the structure lies outside the training domain (an interatomic
                        distance outside the range seen per element pair, see ``nhamil.domain``),
                        the prediction is an extrapolation; attribute ``reason``, one line naming the
                        pair (empty when in domain). Absent for a model that records no domain.

File attributes: ``target``, ``basis`` (the model's basis name), ``energy_unit`` ("hartree"),
``domain_checked`` (whether ``out_of_domain`` flags were written). A summary line (N of M
structures outside the training domain) is printed, and a warning names the first few.
Eigenvalues are invariant under rotations and atom permutations; matrices transform as
``P D F D^T P^T`` (see ``nhamil.model``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import ase
import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from .atomic import atomic_path
from .domain import DomainReport, summary, warn_out_of_domain
from .errors import InputError, reported_as_one_line
from .model import PAIRS_PER_CHUNK, HamiltonianModel
from .reference import read_frames
from .reference.baseline import BaselineMatrices
from .reference.scf import overlap_matrix


def predict_matrices(
    model: HamiltonianModel,
    frames: Sequence[ase.Atoms],
    batch_size: int = 8,
    progress: bool = True,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
    baselines: BaselineMatrices | None = None,
    checked: bool = False,
    pair_chunk: int = PAIRS_PER_CHUNK,
) -> list[np.ndarray]:
    """Predicted target matrices, one (n, n) float64 array (Hartree) per frame, computed in
    batches of ``batch_size`` frames with a progress bar over structures, each moved off the
    device as it comes. ``dtype`` is the precision of the features and heads: float32 is about
    1.5x faster on a CPU and changes an ethanol Fock matrix by about 2e-5 Ha, far below the
    models' errors. ``baselines``: the model's :meth:`~nhamil.model.HamiltonianModel.baselines`
    of ``frames``, if the caller holds them; ``checked``: the caller ran ``model.check_inputs``;
    ``pair_chunk``: atoms or atom pairs featurized at once (memory, not results)."""
    if not checked:
        model.check_inputs(frames)
    warn_out_of_domain(model.domain_reports(frames), frames)
    predictions = model.predictions(frames, device, dtype, batch_size, baselines, pair_chunk, checked=True)
    return [
        matrix.cpu().to(torch.float64).numpy()
        for matrix in tqdm(predictions, total=len(frames), desc="predict", unit="structure", disable=not progress)
    ]


def write_predictions(
    path: str | Path,
    model: HamiltonianModel,
    frames: Sequence[ase.Atoms],
    matrices: Sequence[np.ndarray],
    domain: Sequence[DomainReport] | None = None,
    overlaps: Sequence[np.ndarray] | None = None,
) -> Path:
    """Write structures, matrices, their orbital energies and, given ``domain`` (the model's
    :meth:`~nhamil.model.HamiltonianModel.domain_reports` of ``frames``), the out-of-domain
    flags to HDF5 (layout in the module docstring). ``overlaps``: the frames' AO overlaps, if
    the caller holds them (a baseline's), else PySCF computes those a non-orthogonal target needs."""
    target = model.target
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as file:
        file.attrs.update(
            target=target.name, basis=model.basis.name, energy_unit="hartree", domain_checked=domain is not None
        )
        for index, (atoms, matrix) in enumerate(zip(frames, matrices, strict=True)):
            group = file.create_group(f"{index:06d}")
            group.create_dataset("numbers", data=np.asarray(atoms.numbers, dtype=np.int64))
            group.create_dataset("positions", data=np.asarray(atoms.positions, dtype=np.float64))
            group.create_dataset("matrix", data=matrix)
            overlap = None if target.orthogonal else _overlap(atoms, target.scf, overlaps, index)
            group.create_dataset("orbital_energies", data=target.orbital_energies(matrix, overlap))
            if domain is not None:
                flag = group.create_dataset("out_of_domain", data=not domain[index].in_domain)
                flag.attrs["reason"] = domain[index].reason
    return Path(path)


def _overlap(atoms: ase.Atoms, settings, overlaps: Sequence[np.ndarray] | None, index: int) -> np.ndarray:
    return overlap_matrix(atoms, settings) if overlaps is None else overlaps[index]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nhamil.predict", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="model.pt written by nhamil.train")
    parser.add_argument("structures", type=Path, help="structure file ASE reads (xyz, extended xyz, ...)")
    parser.add_argument("-o", "--output", type=Path, default=Path("predictions.h5"), help="HDF5 output file")
    parser.add_argument("--index", default=":", help="frames to read, as ase.io.read's index (default all)")
    parser.add_argument("--basis", help="basis the predictions must be in (e.g. def2-svp); checked against the model")
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        help="structures per feature batch; default 8 on a CPU (bigger batches of big feature "
        "blocks are memory-bound there), 256 on a GPU (which needs hundreds to be busy)",
    )
    parser.add_argument(
        "--pair-chunk",
        type=_positive_int,
        default=PAIRS_PER_CHUNK,
        help=f"atoms or atom pairs featurized at once (default {PAIRS_PER_CHUNK}, about 1 GB at the default "
        "features; lower it for less memory on large molecules; results do not change)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--float32",
        action="store_true",
        help="features and heads in float32 (faster; about 1e-5 Ha from float64; files stay float64)",
    )
    return parser


def _positive_int(text: str) -> int:
    """argparse type of a count: an integer >= 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def check_output(output: Path, inputs: dict[str, Path]) -> None:
    """Raise :class:`InputError` if ``output`` is one of ``inputs`` (name -> path; the same file
    by resolved path or, where both exist, by inode), which writing would overwrite."""
    for name, path in inputs.items():
        if output.resolve() == path.resolve() or (output.exists() and path.exists() and output.samefile(path)):
            raise InputError(
                f"output file {output} is the {name} {path}: writing would overwrite it; choose another -o"
            )


def main(argv: Sequence[str] | None = None) -> Path:
    """The command: arguments, checks before any work, predictions, the HDF5 file; a user error
    is one line on stderr and exit status 2 (see ``nhamil.errors``)."""
    args = _parser().parse_args(argv)
    with reported_as_one_line("nhamil.predict"):
        check_output(args.output, {"checkpoint": args.checkpoint, "structure file": args.structures})
        model = HamiltonianModel.load(args.checkpoint).to(args.device)
        frames = read_frames(args.structures, args.index)
        model.check_inputs(frames, args.basis)
        batch_size = args.batch_size or (8 if torch.device(args.device).type == "cpu" else 256)
        baselines = model.baselines(frames, progress=True)
        dtype = torch.float32 if args.float32 else torch.float64
        matrices = predict_matrices(
            model,
            frames,
            batch_size,
            device=args.device,
            dtype=dtype,
            baselines=baselines,
            checked=True,
            pair_chunk=args.pair_chunk,
        )
        domain = model.domain_reports(frames)
        overlaps = None if baselines is None else baselines.overlaps
        path = write_predictions(args.output, model, frames, matrices, domain, overlaps)
    print(f"{len(frames)} {model.target} predictions ({model.basis.name}, Hartree) in {path}")
    print(summary(domain) if domain is not None else "the model records no training domain: structures not checked")
    return path


if __name__ == "__main__":
    main()
