"""What a model builder knows about the shape of its own likelihood.

A family whose log-likelihood has a single local maximum (a log-concave GLM: Bernoulli-logit,
Poisson-log, multinomial-logit; Gaussian linear regression, whose only stationary point is
least squares with the mean squared residual) declares it when it builds the model; the MLE
then needs one Newton run from one start instead of a multi-start search
(:func:`models.inference.fit_mle`). Unimodality, unlike concavity, survives any smooth
reparametrisation, so it still holds in the sampler's unconstrained space (log sigma).

The registry is keyed weakly by the model object: a discarded model leaves nothing behind.
Nothing here imports PyMC.
"""

from __future__ import annotations

import weakref

_UNIMODAL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def declare_unimodal(model, reason: str):
    """Record that ``model``'s log-likelihood has one local maximum (if any), and why."""
    _UNIMODAL[model] = str(reason)
    return model


def unimodal_reason(model) -> str | None:
    """Why ``model``'s log-likelihood is unimodal, or None when nobody declared it."""
    return _UNIMODAL.get(model)
