"""Floor 3, how well a fit predicts: scores and protocols on held-out data.

``scores`` (the one home of entropy-based, calibration and ranking scores: Brier, ECE,
predictive entropy, AUROC, regression RMSE/test log-likelihood), ``bnn`` (the BNN protocols:
MLE/MAP/NUTS/ADVI nets scored on a split, the UCI protocol, function-space diagnostics),
``signal`` (prior signal propagation), ``reference`` and ``uci_reference`` (reference
posteriors and published UCI numbers). May import every floor below.
"""
