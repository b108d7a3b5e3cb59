"""How a model is fitted (floor 2): MLE and posterior for ANY PyMC model of this library, and
their side-by-side comparison.

* :func:`fit_mle` maximises the model's own log-likelihood (observed variables only; priors
  are ignored) with scipy's L-BFGS in the unconstrained space from several starts, polishes
  with Newton steps on the exact Hessian, and returns standard errors from the observed
  information carried to the constrained scale by the delta method. It reports, rather than
  hides, an MLE that does not exist, a singular information matrix and non-convergence.
* :func:`sample_posterior` runs NUTS (nutpie by default) and adds the pointwise
  log-likelihood; :func:`diagnose` checks R-hat, ESS, divergences and E-BFMI.
* :func:`compare` lines the two up, one row per scalar parameter;
  :func:`predictive_log_score` scores plug-in MLE vs posterior predictive on held-out data.

There are no per-family branches: everything works from the model graph. Family-specific
facts (closed forms, the type-II likelihood) live in the family modules.

Modules: ``config`` (:class:`SamplerConfig`), ``labels``, ``mle``, ``laplace``, ``sampling``,
``diagnostics``, ``summary`` (posterior summary, :func:`compare`), ``sensitivity`` (power-scaling
prior sensitivity), ``predictive`` (held-out
scores, chain stacking), ``fitcheck``, ``evidence``, ``sequential``, ``fits`` (many fits),
``sbc``, ``distributed`` (Dask). The names below are re-exported so that
``from models.inference import fit_mle, sample_posterior, ...`` keeps working.
"""

from models.inference.config import ADAPTATIONS, BACKENDS, SAMPLERS, SamplerConfig
from models.inference.diagnostics import (EBFMI_MIN, ESS_MIN, FAILURE_CAUSES, PER_CHAIN_ESS_MIN,
                                          RHAT_MAX, Diagnostics, chain_failure_cause,
                                          chain_failure_causes, diagnose, divergence_locations,
                                          rank_test, within_chain_check)
from models.inference.labels import scalar_labels
from models.inference.laplace import LaplaceFit, compare_loo, fit_laplace, laplace_loo
from models.inference.mle import IDENT_TOL, MLEResult, MLEWarning, fit_mle
from models.inference.predictive import (STACKING_MAX_BAD_K_SHARE, ChainStacking,
                                         pointwise_log_likelihood, predictive_class_probs,
                                         predictive_log_score, stack_chains)
from models.inference.sampling import (NUTPIE_PRIOR_INIT, CompiledSampler, check_start, compile_nutpie,
                                       data_swapped, prior_initvals, sample_from_starts,
                                       sample_posterior, set_data)
from models.inference.sensitivity import prior_sensitivity, sensitivity_data
from models.inference.summary import compare, compare_laplace, posterior_summary

__all__ = [
    "ADAPTATIONS", "BACKENDS", "SAMPLERS", "SamplerConfig", "EBFMI_MIN", "ESS_MIN", "RHAT_MAX", "Diagnostics",
    "PER_CHAIN_ESS_MIN", "within_chain_check", "chain_failure_cause", "chain_failure_causes", "divergence_locations", "FAILURE_CAUSES", "sample_from_starts", "diagnose", "rank_test", "scalar_labels", "LaplaceFit", "fit_laplace",
    "laplace_loo", "compare_loo", "IDENT_TOL", "MLEResult", "MLEWarning", "fit_mle",
    "STACKING_MAX_BAD_K_SHARE", "ChainStacking", "pointwise_log_likelihood",
    "predictive_class_probs", "predictive_log_score", "stack_chains", "NUTPIE_PRIOR_INIT",
    "compile_nutpie",
    "CompiledSampler", "check_start", "data_swapped", "prior_initvals", "sample_posterior",
    "set_data", "compare", "compare_laplace", "posterior_summary",
    "prior_sensitivity", "sensitivity_data",
]
