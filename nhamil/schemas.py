"""Hydra schemas derived from nhamil's frozen settings classes, shared by every config module.

OmegaConf makes frozen dataclasses read-only, so they cannot be schemas that overrides merge
into; :func:`mutable_schema` derives a plain dataclass with the same fields, types and defaults,
so that a schema never drifts from its settings. Lengths in Å, energies in Hartree.
"""

from __future__ import annotations

import collections.abc
import typing
from dataclasses import MISSING as MISSING_FIELD
from dataclasses import field, fields, make_dataclass
from typing import Any

from .features.settings import DensitySettings
from .reference.settings import ScfSettings


def mutable_schema(
    settings_class: type, name: str, *, exclude: tuple[str, ...] = (), extra: tuple[tuple[str, type, Any], ...] = ()
) -> type:
    """A plain dataclass ``name`` with the fields, types and defaults of the frozen dataclass
    ``settings_class``: OmegaConf makes frozen dataclasses read-only, so they cannot be schemas
    that overrides merge into, and deriving the schema keeps it from drifting from the settings.
    ``exclude`` drops fields (e.g. a nested settings object); ``extra`` appends
    (name, type, dataclasses.field) entries (e.g. that object's own schema)."""
    hints = typing.get_type_hints(settings_class)
    own = [
        (
            f.name,
            *_mutable_field(hints[f.name], f.default if f.default_factory is MISSING_FIELD else f.default_factory()),
        )
        for f in fields(settings_class)
        if f.name not in exclude
    ]
    schema = make_dataclass(name, own + list(extra))
    schema.__module__, schema.__doc__ = __name__, f"Schema of ``{settings_class.__name__}``: {settings_class.__doc__}"
    return schema


def _mutable_field(hint: Any, default: Any) -> tuple[Any, Any]:
    """(type, dataclasses.field) of a schema field: a tuple setting becomes a list and a mapping
    a dict with string keys (OmegaConf has no tuples and no Mapping type, and Hydra's dotted
    overrides such as ``projection.core_orbitals.8=1`` give keys as strings), with a default
    factory (they are mutable defaults)."""
    if typing.get_origin(hint) in (tuple, collections.abc.Mapping):
        return _plain_type(hint), field(default_factory=lambda: _plain_value(default))
    return hint, field(default=default)


def _plain_type(hint: Any) -> Any:
    """``tuple[X, ...]`` and ``tuple[X, X]`` -> ``list[X]``, ``Mapping[K, V]`` -> ``dict[str, V]``, nested."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return list[_plain_type(arguments[0])]
    if origin is collections.abc.Mapping:
        return dict[str, _plain_type(arguments[1])]
    return hint


def _plain_value(value: Any) -> Any:
    """Tuples as lists, mappings as dicts with string keys."""
    if isinstance(value, dict):
        return {str(key): _plain_value(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_plain_value(item) for item in value]
    return value


#: Atom-density expansion (``nhamil.features.DensitySettings``); lengths in Å.
DensityConfig = mutable_schema(DensitySettings, "DensityConfig")


#: Atom-density expansion (``nhamil.features.DensitySettings``); lengths in Å.
DensityConfig = mutable_schema(DensitySettings, "DensityConfig")

#: The level of theory (``nhamil.reference.ScfSettings``): method "rhf" or "rks" (with a PySCF xc
#: name), basis, SCF thresholds (Hartree), charge and spin (2S).
ReferenceConfig = mutable_schema(ScfSettings, "ReferenceConfig")
