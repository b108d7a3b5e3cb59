"""Runnable workflows: ``python -m workflows.<name>`` or ``mlebayes run <name>``.

``mlebayes run all`` runs ``WORKFLOWS``; ``uci_benchmark`` (the 20-split protocol, about an
hour on 2 cores) runs only when asked for.
"""

WORKFLOWS = ["likelihood_basics", "gaussian", "regression", "small_data", "hierarchical",
             "signal_propagation", "bnn", "evidence"]

EXTRA = ["uci_benchmark", "validation"]
