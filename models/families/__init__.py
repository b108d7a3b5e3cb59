"""Floor 1, what a model is: one module per family, each a ``build(...) -> pymc.Model`` and
nothing else (``gaussian``, ``linear``, ``logistic``, ``poisson``, ``softmax``,
``hierarchical``, ``bnn``; ``common`` holds the priors and the GLM skeleton they share).
Imports only :mod:`models.base`: a model does not know how it will be fitted.
"""
