"""Is an approximation the posterior? Pareto-smoothed importance sampling (Yao, Vehtari,
Simpson & Gelman 2018, "Yes, but did it work?: Evaluating variational inference"): draws of
the approximation q, weighted by p / q to the model's posterior p, and the Pareto k-hat of the
weights' tail. k-hat at most ArviZ's good_k (min(1 - 1/log10(S), 0.7) for S draws) says q is
close enough to p for importance sampling from it to work; above it, q is not the posterior,
whatever it predicts.

Used for the approximations of :mod:`models.evaluation.bnn` that no sampler checks: the GGN
Laplace Gaussians (:func:`models.evaluation.ggn.posterior_check`) and mean-field ADVI
(:func:`mean_field_check`). ArviZ smooths the ratios; the ratios themselves are computed here,
from PyMC's log density of the model and the approximation's own.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pymc as pm
from arviz_stats.base import array_stats
from scipy import special, stats

PSIS_DRAWS = 2000  # ArviZ's good_k at S draws is min(1 - 1/log10(S), 0.7): 0.697 at 2000


@dataclass(frozen=True)
class PosteriorCheck:
    """A PSIS check's verdict. ``pareto_k``: the Pareto k-hat of the importance ratios
    posterior / approximation (inf where one draw holds all the weight and no tail can be
    fitted); ``good_k``: ArviZ's threshold for ``draws``; ``ess``: the importance-sampling
    effective sample size of the raw weights (1 / sum of squared normalised weights; of
    ``draws``)."""

    pareto_k: float
    good_k: float
    ess: float
    draws: int

    @property
    def passed(self) -> bool:
        return bool(self.pareto_k <= self.good_k)

    def to_dict(self) -> dict:
        return {"pareto_k": self.pareto_k, "good_k": self.good_k, "importance_ess": self.ess,
                "psis_draws": self.draws, "passed": self.passed}

    @classmethod
    def from_log_ratios(cls, log_ratio) -> PosteriorCheck:
        """The verdict on draws of an approximation with log importance ratios ``log_ratio``
        (target minus approximation, up to a constant): ArviZ's Pareto-smoothed k-hat, its
        good_k, and the raw weights' ESS."""
        log_ratio = np.asarray(log_ratio, dtype=float).ravel()
        if np.isnan(log_ratio).any() or np.isposinf(log_ratio).any():
            raise ValueError("PSIS check: the model's log density is not finite at a draw")
        # ArviZ's psislw smooths the ratios of a left-out point's log-likelihood, i.e. of -ary
        try:
            _, k = array_stats.psislw(-log_ratio)
        except ValueError as error:
            if "same" not in str(error):
                raise
            k = -np.inf  # ArviZ: "All tail values are the same": equal weights, no tail at all
        # ArviZ gives nan where the largest ratio dwarfs the rest (yacht's 50-ReLU net: by
        # 9,557 nats): every other weight underflows, no tail is left to fit, one draw is the
        # estimate
        k = float(k) if not np.isnan(k) else np.inf
        # the raw weights' ESS (smoothing caps the largest weights, and with them this number)
        log_w = log_ratio - special.logsumexp(log_ratio)
        ess = float(1.0 / np.exp(special.logsumexp(2.0 * log_w)))
        good_k = float(min(1.0 - 1.0 / np.log10(len(log_ratio)), 0.7))
        return cls(k, good_k, ess, len(log_ratio))


# the model's compiled log density, once per (model object, jacobian): a 20-split benchmark
# reuses one model with each split's data, and the data are shared variables, so the function
# follows them. Held weakly: a discarded model takes its functions with it.
_LOGP: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_logp(model: pm.Model, jacobian: bool):
    """``model.compile_logp(jacobian=jacobian)``, compiled once per model object: without
    the Jacobians it is the MAP objective (what ``pm.find_MAP`` maximises, the density of the
    constrained parameters), with them the density of the unconstrained ones (ADVI's)."""
    per_model = _LOGP.setdefault(model, {})
    if jacobian not in per_model:
        per_model[jacobian] = model.compile_logp(jacobian=jacobian)
    return per_model[jacobian]


def mean_field_check(model: pm.Model, mean: np.ndarray, std: np.ndarray, ordering: dict,
                     draws: int = PSIS_DRAWS, seed: int = 0) -> PosteriorCheck:
    """PSIS diagnostic of a mean-field normal approximation (ADVI) of ``model``'s posterior,
    over the unconstrained parameters (PyMC's value variables, e.g. ``sigma_log__``): ``mean``
    and ``std`` flat, ``ordering`` {value name: (name, slice, shape, dtype)} as PyMC's
    ``approx.ordering`` lays them out. The log ratios are ``model``'s log density with the
    transforms' Jacobians (the density of the unconstrained parameters, which ADVI fits)
    minus the product of normals' (scipy)."""
    logp = compiled_logp(model, jacobian=True)
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    z = mean + std * np.random.default_rng(seed).standard_normal((int(draws), len(mean)))
    log_q = stats.norm.logpdf(z, mean, std).sum(axis=1)
    log_p = np.array([logp({name: zi[sl].reshape(shape)
                            for name, (_, sl, shape, _) in ordering.items()}) for zi in z])
    return PosteriorCheck.from_log_ratios(log_p - log_q)
