"""Runnable workflows: ``python -m workflows.<name>`` or ``mlebayes run <name>``."""

WORKFLOWS = ["likelihood_basics", "gaussian", "regression", "small_data", "hierarchical"]
