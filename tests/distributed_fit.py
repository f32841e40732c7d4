"""Run under ``torchrun --nproc-per-node=N tests/distributed_fit.py OUT.pt [FRAMES [HEAD]]``: one rank
of a distributed streamed fit of the paper's water SAPH (gloo), HEAD ``ridge`` (default) or
``sparse_kernel``; rank 0 saves the model's state dict to OUT.pt. :func:`fit_water` is the same fit
in one process, for the test to compare with."""

import sys
from pathlib import Path

import torch
from paper_data import WATER, paper_saph

from nhamil.distributed import Shard, process_group
from nhamil.features import DensitySettings
from nhamil.heads import KernelSettings, RidgeSettings
from nhamil.heads.streaming import StreamSettings
from nhamil.model import FeatureSettings, HamiltonianModel
from nhamil.orbitals import AtomicBasis
from nhamil.reference import ProjectionSettings, read_frames

FEATURES = FeatureSettings(density=DensitySettings(max_radial=1, max_angular=2))
#: Alphas that keep the solve well conditioned (relative 1e-4 and up), so that two sums of the
#: same numbers in another order give the same weights to 1e-10, not round-off times 1e12.
HEAD = RidgeSettings(alphas=tuple(10.0**k for k in range(-4, 1)))
#: A sparse kernel over 8 active samples per head, with the same alphas.
SPARSE_KERNEL = KernelSettings(n_active=8, alphas=HEAD.alphas)
HEADS = {"ridge": HEAD, "sparse_kernel": SPARSE_KERNEL}
STREAM = StreamSettings(chunk_frames=2)


def tiny_water_run(tmp_path: Path) -> list[str]:
    """Overrides of a small ``nhamil.train`` water run (8 training frames, references cached in
    ``tmp_path``) for the torchrun tests of the training command."""
    return [
        "+experiment=water",
        "split.train=[0,8]",
        "split.test=[8,10]",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.n_workers=1",
        "features.density.max_radial=2",
        "features.density.max_angular=2",
    ]


def fit_water(
    n_frames: int, shard: Shard | None = None, streaming: StreamSettings | None = STREAM, head=HEAD, onsite_head=None
) -> HamiltonianModel:
    """The SAPH model of the first ``n_frames`` water frames (``onsite_head``: the on-site blocks' own head)."""
    frames = read_frames(WATER, f":{n_frames}")
    matrices = [torch.as_tensor(m) for m in paper_saph("water", range(n_frames))]
    basis = ProjectionSettings().minimal_basis(AtomicBasis.from_pyscf("def2-svp", [1, 8]))
    model = HamiltonianModel(basis, [1, 8], target="saph", features=FEATURES, head=head, onsite_head=onsite_head)
    return model.fit(frames, matrices, progress=False, streaming=streaming, shard=shard)


if __name__ == "__main__":
    torch.set_num_threads(1)
    with process_group("cpu") as shard:
        n_frames = int(sys.argv[2]) if len(sys.argv) > 2 else 12
        fitted = fit_water(n_frames, shard, head=HEADS[sys.argv[3] if len(sys.argv) > 3 else "ridge"])
        if shard.writes:
            torch.save({"world_size": shard.world_size, "state": fitted.state_dict()}, Path(sys.argv[1]))
