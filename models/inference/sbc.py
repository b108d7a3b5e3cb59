"""Simulation-based calibration (Talts et al. 2018): draw parameters from the prior, simulate
data, fit, and rank each true parameter among thinned posterior draws. With a correct model
and sampler the ranks are uniform on 0..L.

Each model is compiled ONCE per process (nutpie's data swap,
:class:`models.inference.CompiledSampler`): only the simulated outcome changes between fits.
The simulations run in chunks, in this process or on Dask workers (``client``, see
:mod:`models.inference.distributed`); a chunk that fails twice is reported in ``SBCResult.failures``.
Hand-written: the loop and the rank statistics are a few lines; ArviZ has no SBC driver.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
from scipy import stats

from models.inference.config import SamplerConfig
from models.inference.distributed import format_failures, run_tasks, worker_cached
from models.inference.labels import scalar_labels
from models.inference.sampling import CompiledSampler

SBC_SAMPLER = SamplerConfig(draws=500, tune=500, chains=2)


@dataclass(frozen=True)
class SBCPlan:
    """What :func:`run_sbc` does: ``n_sims`` prior draws (prior predictive with ``seed``;
    simulation k is fitted with seed ``seed + 1 + k``), each fitted by nutpie with
    ``sampler``'s draws/tune/chains, every ``thin``-th draw ranked. ``outcome``/``observed``:
    the data container and the observed variable; ``var_names``: the variables ranked
    (default all free variables); ``alpha``: the family-wise level of the uniformity test;
    ``functions``: label -> f(params) extra test quantities (see :func:`run_sbc`)."""

    n_sims: int = 100
    sampler: SamplerConfig = SBC_SAMPLER
    thin: int = 10
    seed: int = 0
    outcome: str = "y"
    observed: str = "y_obs"
    var_names: tuple[str, ...] | None = None
    alpha: float = 0.001
    functions: dict | None = field(default=None, hash=False)

    def __post_init__(self):
        for name in ("n_sims", "thin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.var_names is not None:
            object.__setattr__(self, "var_names", tuple(self.var_names))

    @classmethod
    def from_options(cls, plan: SBCPlan | None = None, **options) -> SBCPlan:
        """``plan`` with ``options`` applied; ``draws``/``tune``/``chains`` go to ``sampler``."""
        plan = plan or cls()
        sampler = {k: options.pop(k) for k in ("draws", "tune", "chains") if k in options}
        if sampler:
            options["sampler"] = plan.sampler.replace(**sampler)
        return dataclasses.replace(plan, **options) if options else plan


@dataclass
class SBCResult:
    ranks: pd.DataFrame  # one row per simulation, one column per scalar parameter
    n_draws: int  # L: ranks take values 0..L
    table: pd.DataFrame  # per parameter: chi-square statistic, p-value, passed
    alpha: float
    failures: list = field(default_factory=list)  # (chunk, error) of chunks that failed twice

    @property
    def passed(self) -> bool:
        return bool(self.table["passed"].all()) and not self.failures


def rank_uniformity(ranks: pd.DataFrame, n_draws: int, bins: int = 10, alpha: float = 0.001):
    """Chi-square test of uniform ranks per parameter, Bonferroni-corrected over parameters."""
    rows = []
    edges = np.linspace(0, n_draws + 1, bins + 1)
    for col in ranks.columns:
        counts, _ = np.histogram(ranks[col], bins=edges)
        expected = len(ranks) * np.diff(edges) / (n_draws + 1)
        chi2 = float(np.sum((counts - expected) ** 2 / expected))
        p = float(stats.chi2.sf(chi2, bins - 1))
        rows.append({"parameter": col, "chi2": chi2, "p_value": p,
                     "passed": p >= alpha / len(ranks.columns)})
    return pd.DataFrame(rows).set_index("parameter")


LOGLIK = "log-likelihood of the data"  # the extra test quantity's column in the ranks


class LogLikelihood:
    """log p(y | theta) with theta on the CONSTRAINED scale (the posterior's and the prior
    draw's own scale): PyMC's ``remove_value_transforms`` clone of the model, compiled once.
    The joint log-likelihood of the simulated data is the SBC test quantity that Modrak et al.
    (2023, "Simulation-based calibration checking for Bayesian computation: the choice of test
    quantities shapes sensitivity") recommend beside the parameters: it sees every parameter at
    once, including those SBC does not rank (``var_names``)."""

    def __init__(self, model: pm.Model, outcome: str):
        from pymc.model.transform.conditioning import remove_value_transforms

        self.model = remove_value_transforms(model)
        self.outcome = outcome
        self.names = [v.name for v in self.model.value_vars]
        self.fn = self.model.compile_fn(
            self.model.logp(vars=self.model.observed_RVs, jacobian=False),
            inputs=self.model.value_vars, on_unused_input="ignore")

    def __call__(self, y, points: list[dict]) -> np.ndarray:
        pm.set_data({self.outcome: y}, model=self.model)
        return np.array([float(self.fn(point)) for point in points])


def _sbc_chunk(model, key, plan: SBCPlan, chunk, cores):
    """Fit one chunk of simulated data sets; the compiled sampler is cached per process.
    ``chunk``: (names, labels, simulation indices, simulated data, true values)."""
    names, labels, ks, sims, truths = chunk
    sampler = worker_cached(("sbc", key), lambda: CompiledSampler(model, plan.sampler))
    loglik = worker_cached(("sbc-loglik", key), lambda: LogLikelihood(model, plan.outcome))
    dtype = model[plan.outcome].dtype
    thin, seed, functions = plan.thin, plan.seed, plan.functions
    rows = []
    for k, sim, truth in zip(ks, sims, truths):
        y = sim.astype(dtype)
        post = sampler.sample(seed + 1 + k, cores=cores, **{plan.outcome: y})
        row = {"sim": k}
        for name in names:
            d = post["posterior"][name].values
            d = d.reshape(d.shape[0], d.shape[1], -1)[:, ::thin].reshape(-1, truth[name].size)
            for j, label in enumerate(labels[name]):
                row[label] = int(np.sum(d[:, j] < truth[name][j]))
        thinned = post["posterior"].isel(draw=slice(None, None, thin))
        flat = {n: thinned[n].values.reshape(-1, *thinned[n].shape[2:])
                for n in loglik.names}
        points = [{n: flat[n][i] for n in loglik.names} for i in range(len(flat[loglik.names[0]]))]
        ll_draws = loglik(y, points)
        ll_true = loglik(y, [{n: truth["__all__"][n] for n in loglik.names}])[0]
        row[LOGLIK] = int(np.sum(ll_draws < ll_true))
        for label, fn in (functions or {}).items():  # function-space test quantities
            f_draws = fn({n: thinned[n].values.reshape(-1, *thinned[n].shape[2:])
                          for n in thinned.data_vars})
            f_draws = np.reshape(f_draws, (f_draws.shape[0], -1))  # (draws, k)
            f_true = np.ravel(fn({n: np.asarray(v)[None] for n, v in truth["__all__"].items()}))
            for j, value in enumerate(f_true):
                row[f"{label}[{j}]"] = int(np.sum(f_draws[:, j] < value))
        rows.append(row)
    return rows


def run_sbc(model: pm.Model, plan: SBCPlan | None = None, *, simulator: pm.Model | None = None,
            client=None, chunks: int | None = None, **options) -> SBCResult:
    """SBC of ``model`` as ``plan`` (:class:`SBCPlan`; keyword ``options`` override its fields,
    and ``draws``/``tune``/``chains`` its sampler's). ``simulator`` (default: ``model`` itself)
    generates the parameters and data; pass a different model to check that a WRONG fit model
    is caught.

    Ranked: every scalar of ``var_names`` (default: all free variables), the log-likelihood of
    the simulated data (column :data:`LOGLIK`), and each of ``functions``: label -> f(params)
    with params a dict of arrays with a leading draws axis, returning (draws, k) values (e.g. a
    BNN's predictions at fixed inputs: function-space SBC); its columns are ``label[j]``.

    ``client``: a ``dask.distributed.Client`` to spread the simulations over its workers
    (``chunks`` tasks, default 4 per worker; each worker compiles the model once and runs its
    chains on one core); None runs them here, in one chunk. Same seeds, same ranks either way.
    """
    plan = SBCPlan.from_options(plan, **options)
    n_sims, seed, observed = plan.n_sims, plan.seed, plan.observed
    simulator = simulator or model
    names = list(plan.var_names or [rv.name for rv in model.free_RVs])
    everything = [rv.name for rv in model.free_RVs]
    prior = pm.sample_prior_predictive(draws=n_sims, model=simulator, random_seed=seed,
                                       var_names=sorted({*names, *everything, observed}))
    truth = prior["prior"].to_dataset()
    sims = prior["prior_predictive"][observed].values
    sims = sims.reshape(n_sims, *sims.shape[2:])  # (chain=1, draw=n_sims, *observed shape)
    labels = {name: scalar_labels(name, model.named_vars_to_dims.get(name),
                            np.shape(truth[name].values[0, 0]), model.coords) for name in names}
    truths = [{**{name: np.ravel(truth[name].values.reshape(n_sims, -1)[k]) for name in names},
               "__all__": {name: truth[name].values.reshape(n_sims, *truth[name].shape[2:])[k]
                           for name in everything}}
              for k in range(n_sims)]
    if client is None:
        n_chunks, cores = 1, None
    else:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        n_chunks, cores = min(n_sims, chunks or 4 * n_workers), 1
    key = uuid.uuid4().hex  # one compile per worker for THIS run
    tasks = [(model, key, plan, (names, labels, list(ks), sims[ks], [truths[k] for k in ks]), cores)
             for ks in np.array_split(np.arange(n_sims), n_chunks)]
    results, failures = run_tasks(_sbc_chunk, tasks, client=client)
    rows = [row for chunk in results if chunk for row in chunk]
    n_draws = plan.sampler.chains * len(range(0, plan.sampler.draws, plan.thin))
    ranks = pd.DataFrame(rows).sort_values("sim").set_index("sim") if rows else pd.DataFrame()
    table = rank_uniformity(ranks, n_draws, alpha=plan.alpha)
    if failures:
        import warnings

        warnings.warn(f"SBC: {len(failures)} chunk(s) failed twice and are missing from the "
                      f"ranks: {format_failures(failures)}", RuntimeWarning, stacklevel=2)
    return SBCResult(ranks, n_draws, table, plan.alpha, failures)
