"""A workflow's options: the command line and TOML config merged into one frozen
:class:`Settings` (a :class:`SamplerConfig` plus where to write and what data), checked
before anything runs."""

from __future__ import annotations

import argparse
import os
import contextlib
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from models.inference import BACKENDS, SAMPLERS, SamplerConfig, sample_posterior
from workflows.report import check_out_dir


REPORTS = Path("reports")


QUICK = {"draws": 300, "tune": 300, "chains": 2}


@dataclass(frozen=True)
class Settings:
    """A workflow's options: how to sample (one :class:`SamplerConfig`, validated when it is
    made), where to write, and the user's data if any."""

    config: SamplerConfig
    out: Path
    quick: bool
    data: Path | None = None
    target: str | None = None
    predictors: list[str] | None = None
    save: str = "small"  # what the .nc files hold: "small" or "full" (workflows.report.SAVE)

    @property
    def draws(self) -> int:
        return self.config.draws

    @property
    def tune(self) -> int:
        return self.config.tune

    @property
    def chains(self) -> int:
        return self.config.chains

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def sampler(self) -> str:
        return self.config.sampler

    def sample(self, model, seed_offset: int = 0, **options):
        """``sample_posterior`` with these settings, the seed offset by ``seed_offset`` and
        any :class:`SamplerConfig` field in ``options`` (e.g. ``target_accept``)."""
        config = self.config.offset_seed(seed_offset)
        return sample_posterior(model, config.replace(**options) if options else config,
                                progressbar=sys.stderr.isatty())

    def as_dict(self) -> dict:
        return {"draws": self.draws, "tune": self.tune, "chains": self.chains,
                "sampler": self.sampler, "quick": self.quick,
                "save": self.save,
                "data": str(self.data) if self.data else "bundled"}


def cli_error(exc: Exception) -> SystemExit:
    """A :class:`SamplerConfig` error as the command line says it: "--target-accept must ..."."""
    field, _, rest = str(exc).partition(" ")
    return SystemExit(f"error: --{field.replace('_', '-')} {rest}")


def check_member_pool(pool: int, chains: int) -> int:
    """``--member-pool``: 0 (off) or between the number of chains and 1000 (``bnn`` and
    ``uci_benchmark``); a one-line error otherwise, before any work."""
    if pool and not chains <= pool <= 1000:
        raise SystemExit(f"error: --member-pool must be 0 (off) or between the {chains} chains "
                         f"and 1000, got {pool}")
    return pool


def add_mclmc(g, where: str = "") -> None:
    """``--mclmc STEPS`` and ``--mclmc-keep DRAWS`` (``bnn`` and ``uci_benchmark``): the
    'MCLMC from the members' row (``BNNProtocol.mclmc_steps``/``mclmc_keep``)."""
    g.add_argument("--mclmc", type=int, default=0, metavar="STEPS",
                   help=f"{where}add the 'MCLMC from the members' row: one unadjusted "
                        "microcanonical Langevin chain from each deep-ensemble member, STEPS "
                        "steps after blackjax's tuning, each chain judged on its own (MILE, "
                        "Sommer et al. 2025; needs the optional jax extra; default 0: off; the "
                        "README's 50-ReLU runs use 160000 to 400000)")
    g.add_argument("--mclmc-keep", type=int, default=2000, metavar="DRAWS",
                   help="draws kept per MCLMC chain, evenly thinned (default 2000)")


def check_mclmc(steps: int, keep: int) -> tuple[int, int]:
    """``--mclmc`` and ``--mclmc-keep``, checked before any work: ``(0, 2000)`` when off;
    else at least 100 draws kept (the per-chain ESS check needs 100 effective draws), at
    least as many steps as draws, and jax and blackjax installed. One-line errors."""
    if steps < 0:
        raise SystemExit(f"error: --mclmc must be 0 (off) or a positive number of steps, got "
                         f"{steps}")
    if not steps:
        return 0, 2000
    if not keep >= 100 or steps < keep:
        raise SystemExit(f"error: --mclmc-keep must be at least 100 (the per-chain ESS check "
                         f"needs 100 effective draws) and --mclmc at least --mclmc-keep; got "
                         f"--mclmc {steps}, --mclmc-keep {keep}")
    from models.inference import mclmc

    try:
        mclmc.require_jax()
    except ImportError as exc:
        raise SystemExit(f"error: --mclmc: {exc}") from None
    return steps, keep


def parser(name: str, description: str, takes_data: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"mlebayes run {name}", description=description)
    s = p.add_argument_group("sampling")
    s.add_argument("--draws", type=int, default=None, help="posterior draws per chain (default 1000)")
    s.add_argument("--tune", type=int, default=None, help="tuning steps per chain (default 1000)")
    s.add_argument("--chains", type=int, default=None, help="number of chains (default 4)")
    s.add_argument("--seed", type=int, default=None, help="random seed (default 20261124)")
    s.add_argument("--sampler", choices=SAMPLERS, default=None, help="NUTS implementation (default nutpie)")
    s.add_argument("--backend", choices=BACKENDS, default=None,
                   help="how nutpie gets the model: numba (5-13 s of compiling per model) or "
                        "c (PyTensor's cached C functions: under 1 s to compile, slower "
                        "gradient calls, chains on one core; faster for small models that take "
                        "few leapfrog steps). Default: c for regression on its bundled data and "
                        "for hierarchical, numba elsewhere")
    s.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK['draws']} draws, {QUICK['tune']} tune, {QUICK['chains']} chains, fewer sweep steps")
    p.add_argument("--out", type=Path, default=None,
                   help=f"report directory (default reports/{name})")
    p.add_argument("--save", choices=("small", "full"), default=None,
                   help="what each posterior .nc file holds: small (default: posterior, "
                        "sample_stats and the data) or full (also the pointwise "
                        "log-likelihood and the predictive draws, which are recomputable)")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML file with any of these options as keys (command-line flags win)")
    if takes_data:
        d = p.add_argument_group("your own data")
        d.add_argument("--data", type=Path, default=None, help="CSV file with a header row")
        d.add_argument("--target", default=None, help="outcome column of --data")
        d.add_argument("--predictors", default=None,
                       help="comma-separated predictor columns of --data (default: all others)")
    return p


def add_fanout(p: argparse.ArgumentParser, in_process_cores: int = 0) -> None:
    """Options of the many-fit workflows: where the fits run (Dask distributed).
    ``in_process_cores``: with at most this many cores for this workflow (see
    :func:`cores_available`), the default runs every fit in this process instead of Dask."""
    g = p.add_argument_group("fan-out (Dask distributed)")
    default = "one worker per core"
    if in_process_cores:
        default = (f"every fit in this process when this workflow has {in_process_cores} "
                   "core(s) or fewer (run all shares the cores between its jobs), else one "
                   "worker per core")
    g.add_argument("--workers", type=int, default=None,
                   help=f"worker processes of a LocalCluster on this machine (default: {default}); "
                        "0 runs every fit in this process, without Dask")
    g.add_argument("--scheduler", default=None,
                   help="address of an existing Dask scheduler, e.g. tcp://host:8786 (instead of --workers)")
    p.set_defaults(in_process_cores=in_process_cores)


def cores_available() -> int:
    """This workflow's share of the machine's cores: all of them, or under ``run all`` (which
    sets MLEBAYES_JOBS) the cores divided by the workflows running at once."""
    jobs = os.environ.get("MLEBAYES_JOBS", "1")
    return max(1, (os.cpu_count() or 1) // max(1, int(jobs) if jobs.isdigit() else 1))


def fanout_client(args: argparse.Namespace):
    """Context manager yielding the Dask client for ``--workers`` / ``--scheduler`` (None:
    run in this process)."""
    from models.inference.distributed import dask_client

    if args.workers is not None and args.workers < 0:
        raise SystemExit(f"error: --workers must be 0 (no Dask) or a positive integer, got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise SystemExit("error: give --workers (a local cluster) or --scheduler (an existing "
                         "cluster), not both")
    if args.workers == 0 or (args.workers is None and not args.scheduler
                             and cores_available() <= getattr(args, "in_process_cores", 0)):
        return contextlib.nullcontext(None)
    return dask_client(workers=args.workers, scheduler=args.scheduler)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


CONFIG_TYPES = {
    "draws": _is_int, "tune": _is_int, "chains": _is_int, "seed": _is_int,
    "sampler": lambda v: isinstance(v, str), "backend": lambda v: v in BACKENDS, "out": lambda v: isinstance(v, str),
    "quick": lambda v: isinstance(v, bool), "data": lambda v: isinstance(v, str),
    "save": lambda v: v in ("small", "full"),
    "target": lambda v: isinstance(v, str),
    "predictors": lambda v: isinstance(v, str) or (isinstance(v, list)
                                                   and all(isinstance(x, str) for x in v)),
}


CONFIG_EXPECTED = {
    "draws": "an integer", "tune": "an integer", "chains": "an integer",
    "seed": "an integer (0 to 4294967295)", "sampler": f"one of {SAMPLERS}", "backend": f"one of {BACKENDS}",
    "out": "a path (a string)", "quick": "true or false (TOML booleans, no quotes)",
    "save": '"small" or "full"',
    "data": "a path (a string)", "target": "a column name (a string)",
    "predictors": 'a list of column names or one comma-separated string, e.g. ["a", "b"]',
}


def settings(name: str, args: argparse.Namespace, defaults: dict | None = None) -> Settings:
    """Merge defaults < this workflow's ``defaults`` < TOML config < command line, and
    validate before anything runs."""
    values = {"draws": 1000, "tune": 1000, "chains": 4, "seed": 20261124, "sampler": "nutpie",
              "backend": "numba",
              "out": REPORTS / name, "quick": False, "data": None, "target": None,
              "predictors": None, "save": "small"}
    values.update(defaults or {})
    if args.config is not None:
        try:
            config = tomllib.loads(Path(args.config).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SystemExit(f"error: --config {args.config}: {exc}") from None
        unknown = sorted(set(config) - set(values))
        if unknown:
            raise SystemExit(f"error: --config {args.config}: unknown option(s) {unknown}; "
                             f"known: {sorted(values)}")
        for key, value in config.items():
            ok = CONFIG_TYPES[key](value)
            if not ok:
                raise SystemExit(f"error: --config {args.config}: {key} = {value!r} must be "
                                 f"{CONFIG_EXPECTED[key]}")
        values.update(config)
    for key in values:
        v = getattr(args, key, None)
        if v is not None and v is not False:  # not `v not in (None, False)`: 0 == False
            values[key] = v
    if values["quick"]:
        for key, v in QUICK.items():
            if getattr(args, key, None) is None:
                values[key] = v
    try:
        config = SamplerConfig(values["sampler"], values["draws"], values["tune"],
                               values["chains"], values["seed"], backend=values["backend"])
    except ValueError as exc:
        raise cli_error(exc) from None
    try:
        out = check_out_dir(values["out"])
    except (ValueError, PermissionError) as exc:
        raise SystemExit(f"error: {exc}") from None
    predictors = values["predictors"]
    if isinstance(predictors, str):
        predictors = [c.strip() for c in predictors.split(",") if c.strip()]
    return Settings(config, Path(out), bool(values["quick"]),
                    Path(values["data"]) if values["data"] else None, values["target"],
                    predictors, values["save"])
