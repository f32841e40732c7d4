"""Ridge against gated heads and fine-tuning on the matrix and its orbital energies.

``OPENBLAS_NUM_THREADS=1 python benchmarks/trainable.py VARIANT [VARIANT ...] -- OVERRIDES``, with
variants ``ridge``, ``gated`` (per-block gated heads), ``ridge+matrix`` / ``ridge+energy`` /
``gated+energy`` (fine-tuned from that fit with energy weight 0 / ``--energy-weight``), and
Hydra overrides of ``nhamil.train`` (e.g. ``+experiment=water_fock data.cache_dir=...``). The ridge
(or gated) fit is made once and every fine-tuning starts from a copy of it. Writes
``benchmarks/results/trainable_<experiment>.json``: train and test errors (H MAE in µHa,
occupied orbital energies in meV), H MAE by block family (on-site / pair blocks of each element
pair), fit and fine-tuning times, and each fine-tuning's epochs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from nhamil.atomic import atomic_path
from nhamil.config import compose_config
from nhamil.evaluate import prediction_errors
from nhamil.heads import GatedHead, GatedSettings, settings_from_dict
from nhamil.model import HamiltonianModel, _has_intercept
from nhamil.orbitals import AtomicBasis
from nhamil.reference import read_frames
from nhamil.train import _make_model, reference_records, target_from_config
from nhamil.training import FinetuneSettings, TrainingData, finetune
from nhamil.training.finetune import CHECKPOINT

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--energy-weight", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument("--gated-learning-rate", type=float, default=1e-5)
    parser.add_argument("--gate", default="channel")
    parser.add_argument("--tag", default="", help="suffix of the variants' names in the results and states")
    parser.add_argument("--name", default="water_fock", help="results file: results/trainable_NAME.json")
    parser.add_argument("--state-dir", default=None, help="keep fitted models here and reuse them")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="report the best heads of each variant's fine-tuning checkpoint (a run that was stopped) without training",
    )
    parser.add_argument(
        "--checkpoints",
        default=None,
        help="fine-tuning checkpoints and logs here, per variant "
        "(a run stopped and started again resumes; fewer --epochs ends it at its best epoch)",
    )
    args, overrides = parser.parse_known_args()
    cfg = compose_config([o for o in overrides if o != "--"])
    data = _data(cfg)
    results, fits = {}, {}
    for variant in args.variants:
        start_name, _, tune = variant.partition("+")
        if start_name not in fits:
            fits[start_name] = _cached_fit(cfg, data, start_name, args)
            if not tune:
                results[variant] = _report(fits[start_name][0], data, fits[start_name][1])
                continue
        model = HamiltonianModel.from_state_dict(fits[start_name][0])
        if args.report_only:
            saved = torch.load(Path(args.checkpoints) / (variant + args.tag) / CHECKPOINT, weights_only=True)
            _load_best(model, saved["best_heads"])
            results[variant] = _report(
                model.state_dict(), data, fits[start_name][1], finetune_seconds=float("nan"), history=saved["history"]
            )
            continue
        settings = FinetuneSettings(
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            gate=args.gate,
            energy_weight=args.energy_weight if tune == "energy" else 0.0,
            matrix_weight=1.0,
            seed=cfg.seed,
        )
        start = time.perf_counter()
        history = finetune(
            model,
            TrainingData(
                data["train_frames"], data["train"].matrices_t, data["train"].n_occupied, data["train"].overlaps
            ),
            settings,
            directory=None if args.checkpoints is None else Path(args.checkpoints) / (variant + args.tag),
        )
        results[variant] = _report(
            model.state_dict(), data, fits[start_name][1], finetune_seconds=time.perf_counter() - start, history=history
        )
        print(variant, json.dumps(results[variant]["test"]), flush=True)
    path = RESULTS / f"trainable_{args.name}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    with atomic_path(path) as temporary:
        temporary.write_text(
            json.dumps({**previous, **{variant + args.tag: result for variant, result in results.items()}}, indent=2)
        )


def _load_best(model: HamiltonianModel, best: list[dict]) -> None:
    """Ridge heads -> gated heads holding the checkpoint's best tensors (same order as the model's heads)."""
    for (key, (keys, fit)), tensors in zip(model.heads.items(), best, strict=True):
        invariants = torch.zeros(2, 1, len(tensors["invariant_mean"]), dtype=torch.float64)
        hidden = tensors["gate_net.0.weight"].shape[0]
        layers = sum(1 for name in tensors if name.endswith(".weight")) - 1
        gate = "channel" if tensors[f"gate_net.{2 * layers}.bias"].numel() == fit.weights.shape[0] else "weights"
        head = GatedHead.from_linear(
            fit, invariants, hidden=hidden, layers=layers, gate=gate, intercept=_has_intercept(*key)
        )
        head.load_state_dict(tensors)
        model.heads[key] = (keys, head)


def _data(cfg) -> dict:
    train_ids, test_ids = range(*cfg.split.train), range(*cfg.split.test)
    frames = read_frames(cfg.data.frames)
    used = sorted(set(train_ids) | set(test_ids))
    target = target_from_config(cfg)
    records = reference_records(cfg, frames, used, target)
    basis = AtomicBasis.from_pyscf(target.scf.basis, sorted({int(z) for i in used for z in frames[i].numbers}))
    sets = {}
    for part, ids in (("train", train_ids), ("test", test_ids)):
        sets[part] = target.make([records[i] for i in ids], basis)
        object.__setattr__(sets[part], "matrices_t", [torch.as_tensor(m) for m in sets[part].matrices])
    return {
        **sets,
        "basis": basis,
        "target": target,
        "train_frames": [frames[i] for i in train_ids],
        "test_frames": [frames[i] for i in test_ids],
    }


def _cached_fit(cfg, data, kind: str, args) -> tuple[dict, float]:
    path = None if args.state_dir is None else Path(args.state_dir) / f"{kind}{args.tag}.pt"
    if path is not None and path.exists():
        return torch.load(path, weights_only=True)
    fit = _fit(cfg, data, kind, args)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(fit, path)
    return fit


def _fit(cfg, data, kind: str, args) -> tuple[dict, float]:
    """(model state, fit seconds) of a ridge or per-block gated model."""
    model = _make_model(cfg, data["train"].basis, data["basis"].shells, data["target"])
    if kind == "gated":
        head = {**OmegaConf.to_container(cfg.head), "kind": "gated", "seed": cfg.seed}
        model.head = GatedSettings(
            gate=args.gate,
            learning_rate=args.gated_learning_rate,
            epochs=args.epochs,
            alphas=tuple(settings_from_dict(head | {"kind": "ridge"}).alphas)
            if "alphas" in head
            else GatedSettings().alphas,
            seed=cfg.seed,
        )
    start = time.perf_counter()
    model.fit(data["train_frames"], data["train"].matrices_t, device=cfg.device)
    return model.state_dict(), time.perf_counter() - start


def _report(state: dict, data: dict, fit_seconds: float, **extra) -> dict:
    model = HamiltonianModel.from_state_dict(state)
    report = {"fit_seconds": fit_seconds}
    for part in ("train", "test"):
        predicted = [p.numpy() for p in model.predict(data[f"{part}_frames"])]
        reference = data[part]
        errors = prediction_errors(predicted, reference.matrices, reference.n_occupied, reference.overlaps)
        report[part] = {
            **{
                k: errors[k]
                for k in ("hamiltonian_mae_uha", "occupied_energy_mae_mev", "energy_rmse_mev")
                if k in errors
            },
            "by_family_uha": _by_family(model, data[f"{part}_frames"], predicted, reference.matrices),
        }
    if "history" in extra:
        report["epochs"] = len(extra["history"])
        report["finetune_seconds"] = extra["finetune_seconds"]
        report["history"] = extra["history"]
    return report


def _by_family(model, frames, predicted, reference) -> dict[str, float]:
    """H MAE (µHa) of the elements of on-site blocks and of pair blocks, by element pair."""
    sums: dict[str, list[float]] = {}
    for atoms, p, r in zip(frames, predicted, reference, strict=True):
        offsets = model.basis.atom_offsets(atoms.numbers)
        for i in range(len(atoms)):
            for j in range(len(atoms)):
                symbols = sorted([atoms[i].symbol, atoms[j].symbol])
                name = f"{symbols[0]} on-site" if i == j else "-".join(symbols)
                block = np.abs(
                    p[offsets[i] : offsets[i + 1], offsets[j] : offsets[j + 1]]
                    - r[offsets[i] : offsets[i + 1], offsets[j] : offsets[j + 1]]
                )
                sums.setdefault(name, [0.0, 0])
                sums[name][0] += block.sum()
                sums[name][1] += block.size
    return {name: 1e6 * total / count for name, (total, count) in sums.items()}


if __name__ == "__main__":
    main()
