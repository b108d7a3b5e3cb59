"""How to sample, as one value: :class:`SamplerConfig`, validated once, when it is made.

Every layer that samples (``sample_posterior``, ``CompiledSampler``, the many-fit and SBC
runners, the BNN protocols, the workflows) takes a ``SamplerConfig`` instead of a thread of
``draws=, tune=, chains=, ...`` keywords; cmdstanpy does the same with one settings object
per method. A bad value is refused here, in words naming the option, before anything
compiles, and nowhere else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from models.base.checks import check_positive_int

SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")
ADAPTATIONS = ("diag", "low_rank")
INITS = ("jitter", "prior")
BACKENDS = ("c", "numba")
MAX_DRAWS = 100_000
MAX_CHAINS = 64
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class SamplerConfig:
    """NUTS settings.

    ``sampler``: "nutpie" (default), "pymc", "numpyro" or "blackjax" (PyMC's ``nuts_sampler``).
    ``draws``/``tune``/``chains``: per chain. ``seed``: the random seed (None: fresh entropy).
    ``adaptation`` (nutpie only): the mass-matrix adaptation, "diag" (nutpie's default) or
    "low_rank" (diagonal plus low-rank corrections, for strongly correlated posteriors such as
    neural networks). ``target_accept``: NUTS's target acceptance in (0, 1), or None for the
    sampler's default. ``init``: "jitter" (the model's initial point plus U(-1, 1) jitter, the
    samplers' default) or "prior" (each chain starts at its own draw from the prior).
    ``backend`` (nutpie only): how the model is compiled for nutpie, "numba" (default: nutpie's
    own, 5-13 s of compiling per model and process, fast gradient calls from every core) or
    "c" (PyTensor's C functions, cached across runs: under 1 s to compile, about 35 us more
    per gradient, chains on one core; faster end to end for models that take few leapfrog
    steps). See :func:`models.inference.sampling.compile_nutpie`.
    """

    sampler: str = "nutpie"
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int | None = None
    adaptation: str = "diag"
    target_accept: float | None = None
    init: str = "jitter"
    backend: str = "numba"

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        object.__setattr__(self, "draws", check_positive_int(self.draws, "draws", MAX_DRAWS))
        object.__setattr__(self, "tune", check_positive_int(self.tune, "tune", MAX_DRAWS, 0))
        object.__setattr__(self, "chains", check_positive_int(self.chains, "chains", MAX_CHAINS))
        if self.seed is not None:
            object.__setattr__(self, "seed", check_positive_int(self.seed, "seed", MAX_SEED, 0))
        if self.adaptation not in ADAPTATIONS:
            raise ValueError(f"adaptation must be one of {ADAPTATIONS}, got {self.adaptation!r}")
        if self.adaptation != "diag" and self.sampler != "nutpie":
            raise ValueError(f"adaptation={self.adaptation!r} needs sampler='nutpie' "
                             f"(got {self.sampler!r})")
        if self.target_accept is not None:
            if isinstance(self.target_accept, bool) or not isinstance(
                    self.target_accept, (int, float)) or not 0 < self.target_accept < 1:
                raise ValueError(f"target_accept must be a number in (0, 1), got "
                                 f"{self.target_accept!r}")
            object.__setattr__(self, "target_accept", float(self.target_accept))
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    def nutpie_options(self) -> dict:
        """The keywords ``nutpie.sample`` takes from these settings (``adaptation``, and
        ``target_accept`` when set): one place for every nutpie call."""
        options = {"adaptation": self.adaptation}
        if self.target_accept is not None:
            options["target_accept"] = self.target_accept
        return options

    def replace(self, **changes) -> SamplerConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def offset_seed(self, offset: int) -> SamplerConfig:
        """The same settings with ``seed + offset`` (one model of several, one split of many)."""
        return self if self.seed is None or not offset else self.replace(seed=self.seed + offset)

    @classmethod
    def from_options(cls, config: SamplerConfig | None = None, **options) -> SamplerConfig:
        """``config`` with keyword ``options`` applied: the field names, plus the PyMC-style
        aliases ``random_seed`` (= ``seed``) and ``init_from_prior`` (True = ``init="prior"``)."""
        if "random_seed" in options:
            options["seed"] = options.pop("random_seed")
        if "init_from_prior" in options:
            options["init"] = "prior" if options.pop("init_from_prior") else "jitter"
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown sampler option(s) {unknown}")
        return (config or cls()).replace(**options) if options else (config or cls())
