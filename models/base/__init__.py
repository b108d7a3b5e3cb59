"""Floor 0, the base: what needs neither PyMC nor a model.

``likelihood`` (the numpy/scipy likelihood core: sums of logs, Gaussian log-densities,
entropy, cross-entropy, KL, NLL in nats and bits), ``checks`` (input checks: ``DataError``
and the validators every family calls before compiling), ``datasets`` (the bundled data and
the UCI splits), ``coords`` (the data conventions), ``interrupts`` (Ctrl-C bookkeeping).
Imports nothing from the floors above.
"""
