"""MLE vs Bayesian posterior on PyMC and ArviZ, in four floors (each imports only the ones below):

3. :mod:`models.evaluation`: how well a fit predicts: held-out scores, the BNN protocols,
   signal propagation, reference results.
2. :mod:`models.inference`: how a model is fitted: MLE, NUTS (one :class:`SamplerConfig`),
   diagnostics, comparison, model fit, evidence, sequential updating, many fits, SBC, Dask.
1. :mod:`models.families`: what a model is: ``build(...) -> pymc.Model`` per family.
0. :mod:`models.base`: the numpy likelihood core, input checks, bundled data sets.

Presentation (reports, figures) lives in :mod:`workflows`; nothing here imports matplotlib.
The families are importable from here (``from models import logistic``), and every module's
earlier flat path (``models.bnn``, ``models.datasets``, ``models.likelihood``, ...) still
imports the module that now holds it (see ``MOVED``).
"""

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path

import pytensor

# PyTensor's numba linker writes the Python source of every function it compiles to a file it
# keeps (numba reads it back); with `generated_src_dir` unset each goes to its own new file in
# the system temp directory, never removed: about 120 files per quick gaussian run, 190,000 on
# this machine after a few days. Set, the files are content-addressed (a rerun writes none) and
# PyTensor prunes the unused ones. A directory the user chose (PYTENSOR_FLAGS) is kept.
if not pytensor.config.generated_src_dir:
    pytensor.config.generated_src_dir = str(Path(pytensor.config.compiledir) / "generated_src")

from models.families import gaussian, hierarchical, linear, logistic, poisson, softmax

__all__ = ["gaussian", "hierarchical", "linear", "logistic", "poisson", "softmax"]

# The flat layout's module paths (the public API before the floors) -> where each lives now.
MOVED = {
    "models.likelihood": "models.base.likelihood",
    "models.validation": "models.base.checks",
    "models.datasets": "models.base.datasets",
    "models.interrupts": "models.base.interrupts",
    **{f"models.{f}": f"models.families.{f}" for f in
       ("gaussian", "linear", "logistic", "poisson", "softmax", "hierarchical")},
    "models.bnn": "models.evaluation.bnn",  # re-exports the network's build and spec
    "models.calibration": "models.evaluation.scores",
    "models.signal": "models.evaluation.signal",
    "models.reference": "models.evaluation.reference",
    "models.uci_reference": "models.evaluation.uci_reference",
    **{f"models.{m}": f"models.inference.{m}" for m in
       ("fitcheck", "evidence", "sequential", "fits", "sbc", "distributed")},
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path as the module object at its new path (the same object, so
    ``models.bnn is models.evaluation.bnn``); imported only when asked for, so that
    ``import models`` stays as light as the families."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # the import system is about to overwrite it
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # give the module its own spec back


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())
