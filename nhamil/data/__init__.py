"""The structure files shipped with nhamil (the N-center paper's water, ethanol and QM7
geometries and its degenerate completeness structures, in Å; see ``README.md`` beside this file
for their origin and license).

``data_file(name)`` finds a file by its plain name (``"water_coords_1000.xyz"``), compressed
(``.gz``) or not, from any working folder. ``NHAMIL_DATA_DIR``, when set, names a folder that
is searched instead of the package's. Configs spell it ``${nhamil.data:water_coords_1000.xyz}``
(the resolver :func:`register_resolver` adds).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from ..errors import DataFileError

#: The folder of the shipped files (inside the installed package or the source checkout).
PACKAGED = Path(__file__).resolve().parent
#: The environment variable naming a folder that replaces the packaged one.
ENVIRONMENT = "NHAMIL_DATA_DIR"
#: The OmegaConf resolver name: ``${nhamil.data:NAME}``.
RESOLVER = "nhamil.data"


def data_folder() -> Path:
    """The folder searched for data files: ``$NHAMIL_DATA_DIR`` if set, else the packaged one;
    ``DataFileError`` if ``NHAMIL_DATA_DIR`` names no folder."""
    folder = os.environ.get(ENVIRONMENT)
    if not folder:
        return PACKAGED
    if not Path(folder).is_dir():
        raise DataFileError(
            f"{ENVIRONMENT}={folder} is not a folder: point it at the folder holding the data files, "
            f"or unset it to use the files shipped with nhamil"
        )
    return Path(folder)


def data_file(name: str, folder: str | Path | None = None) -> Path:
    """The path of data file ``name`` (a plain file name such as ``"water_coords_1000.xyz"``):
    ``name`` itself or ``name.gz`` in ``folder``, by default :func:`data_folder`.
    ``DataFileError`` listing the files there if neither exists."""
    folder = data_folder() if folder is None else Path(folder)
    if not folder.is_dir():
        raise DataFileError(f"data folder {folder} does not exist: name a folder holding the data files")
    if Path(name).name == name:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DataFileError(f"no data file {name!r} in {folder}; available: {', '.join(available(folder)) or 'none'}")


def available(folder: Path | None = None) -> list[str]:
    """The plain names (``.gz`` dropped) of the structure files in ``folder`` (default
    :func:`data_folder`), sorted."""
    folder = data_folder() if folder is None else folder
    names = {path.name.removesuffix(".gz") for path in folder.iterdir() if path.is_file()}
    return sorted(name for name in names if not name.startswith((".", "_")) and name not in {"LICENSE", "README.md"})


def register_resolver() -> None:
    """Add the ``${nhamil.data:NAME}`` resolver to OmegaConf (idempotent): the path of
    :func:`data_file` ``NAME`` as a string, looked up when the config value is read."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, lambda name: str(data_file(name)))
