"""Settings of the atom-density expansion shared by every feature family."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: The choices of ``DensitySettings.radial_domain``.
RADIAL_DOMAINS = ("cutoff", "unbounded")


@dataclass(frozen=True, kw_only=True)
class DensitySettings:
    """Gaussian atom densities expanded on GTO radial functions times real spherical harmonics.

    cutoff: radius of the environment, Å. max_radial: number of radial functions n = 0 ..
    max_radial - 1. max_angular: highest l of the expansion. gaussian_width: standard deviation
    sigma of each atom's Gaussian density, Å. cutoff_width: width of the shifted-cosine switch
    that takes a neighbour's weight from 1 at ``cutoff - cutoff_width`` to 0 at ``cutoff``, Å.
    center_weight: weight of the central atom's own density (the self pair i = i).
    radial_domain: where the radial functions live. ``"cutoff"``: they are orthonormal on, and
    the densities are projected within, the ball r < cutoff (a neighbour's Gaussian tail beyond
    it is dropped). ``"unbounded"``: orthonormal on, and projected over, all of space, r in
    [0, inf): the GTO convention of featomic (rascaline), whose coefficients are then nhamil's
    times 2^(3/2) (pi sigma^2)^(3/4) (featomic normalizes each Gaussian to unit L2 norm, nhamil
    to unit integral). Either choice spans a different set of radial functions of d.

    The defaults are the settings of Nigam, Willatt and Ceriotti, J. Chem. Phys. 156, 014115.
    """

    cutoff: float = 4.0
    max_radial: int = 8
    max_angular: int = 6
    gaussian_width: float = 0.3
    cutoff_width: float = 0.5
    center_weight: float = 1.0
    radial_domain: str = "cutoff"

    def __post_init__(self) -> None:
        if not (self.cutoff > 0 and self.gaussian_width > 0 and 0 < self.cutoff_width <= self.cutoff):
            raise ValueError(f"need cutoff > 0, gaussian_width > 0 and 0 < cutoff_width <= cutoff, got {self}")
        if self.max_radial < 1 or self.max_angular < 0:
            raise ValueError(f"need max_radial >= 1 and max_angular >= 0, got {self}")
        if self.radial_domain not in RADIAL_DOMAINS:
            raise ValueError(f"radial_domain must be one of {RADIAL_DOMAINS}, got {self.radial_domain!r}")


@dataclass(frozen=True, kw_only=True)
class FeatureSettings:
    """Which N-center features feed the heads.

    density: the atom-density expansion. onsite_correlation_order: on-site blocks use
    |rho_i^1> .. |rho_i^nu> (2, the authors' choice, or 1 or 3); message_passing: also the
    message-passing features |rho_i^[1<-1]>. Pair blocks use |rho_ij^0> .. |rho_ij^nu>,
    nu = pair_correlation_order (1 or 2), and with both_centres also |rho_ij^(1,1)>,
    permutation-adapted per block type. contraction_channels: keep this many principal
    components of every (lambda, sigma) block of the atom-centred correlations of order >= 2
    where they are built on (the centre of the nu = 2 pair features, the nu = 2 part of nu = 3)
    and of the on-site nu = 3 features, fitted on the training structures and stored with the
    model; None keeps every channel. contract_onsite_nu2: contract the on-site nu = 2 features
    that the heads see as well (the only behaviour before this setting, and that of checkpoints
    without it): on ethanol_md17 (100 frames, four-body pairs, 32 channels) it took the on-site
    error from 258 to 590 µHa.
    """

    density: DensitySettings = field(default_factory=DensitySettings)
    onsite_correlation_order: int = 2
    message_passing: bool = False
    pair_correlation_order: int = 1
    both_centres: bool = False
    contraction_channels: int | None = None
    contract_onsite_nu2: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSettings:
        """From :meth:`to_dict`'s plain data (or a Hydra ``features`` group); missing keys keep
        their defaults, except ``contract_onsite_nu2``, which data written before it existed
        had on wherever channels were contracted."""
        legacy = {"contract_onsite_nu2": data.get("contraction_channels") is not None}
        return cls(**{**legacy, **data, "density": DensitySettings(**data["density"])})
