"""Whole-model training of fitted Hamiltonian models against assembled matrices and orbital energies."""

from .finetune import FinetuneSettings, TrainingData, finetune, trainable_heads, validation_split

__all__ = ["FinetuneSettings", "TrainingData", "finetune", "trainable_heads", "validation_split"]
