"""MLE vs Bayesian posterior: PyMC model families and the inference core.

Families (one module each, ``build(...) -> pymc.Model``): :mod:`models.gaussian`,
:mod:`models.linear`, :mod:`models.logistic`, :mod:`models.softmax`, :mod:`models.poisson`,
:mod:`models.hierarchical`. Inference on any of them: :mod:`models.inference`
(``fit_mle``, ``sample_posterior``, ``diagnose``, ``compare``). The numpy/scipy likelihood
core is :mod:`models.likelihood`.
"""

from models import gaussian, hierarchical, linear, logistic, poisson, softmax

__all__ = ["gaussian", "hierarchical", "linear", "logistic", "poisson", "softmax"]
