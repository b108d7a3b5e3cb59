"""Maximum likelihood for any PyMC model of the library (priors ignored), with observed-
information standard errors; it says when the MLE does not exist, is not unique or did not converge."""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.scalar as ps
import pytensor.scalar.math as psm
import pytensor.tensor as pt
from pymc.blocking import DictToArrayBijection
from pymc.initial_point import make_initial_point_fn
from pymc.pytensorf import compile, join_nonshared_inputs
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.graph.traversal import ancestors
from pytensor.tensor.elemwise import Elemwise
from scipy import optimize, special

from models.base import stopwatch
from models.base.checks import check_positive_int
from models.base.coords import OBS_DIM
from models.base.modality import unimodal_reason
from models.inference.labels import model_labels, scalar_labels


class MLEWarning(UserWarning):
    """The MLE is not trustworthy: it does not exist, is not unique, or did not converge."""



@dataclass
class MLEResult:
    """Maximum-likelihood fit of a PyMC model (priors ignored).

    ``params``/``se``: name -> numpy array on the constrained scale (free variables and
    Deterministics that do not run over observations). ``cov``: covariance of all scalar
    parameters (DataFrame labelled like ``beta[height]``). ``status`` is one of "ok",
    "not_converged", "does_not_exist", "singular"; ``message`` says what it means.
    Parameters that do not enter the likelihood (hyperparameters of a hierarchical model)
    are NaN and listed in ``not_in_likelihood``.
    """

    params: dict[str, np.ndarray]
    se: dict[str, np.ndarray]
    cov: pd.DataFrame
    loglik: float
    aic: float
    bic: float
    converged: bool
    message: str
    status: str
    n_obs: int
    n_params: int
    labels: dict[str, list[str]]
    not_in_likelihood: list[str] = field(default_factory=list)
    start_logliks: list[float] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.status != "does_not_exist"

    def table(self, prob: float = 0.95) -> pd.DataFrame:
        """One row per scalar parameter: estimate, SE and the Wald interval at ``prob``."""
        z = special.ndtri(0.5 + prob / 2)
        rows = []
        for name, value in self.params.items():
            for label, v, s in zip(self.labels[name], np.ravel(value), np.ravel(self.se[name])):
                rows.append({"parameter": label, "mle": v, "se": s,
                             "wald_lb": v - z * s, "wald_ub": v + z * s})
        return pd.DataFrame(rows).set_index("parameter")


def _observed_loglik(model: pm.Model):
    if not model.observed_RVs:
        raise ValueError("the model has no observed variables: there is no likelihood to maximise")
    return model.logp(vars=model.observed_RVs, jacobian=False)


def _data_shape(var) -> tuple:
    """Shape of an observed-data variable without compiling anything (``.eval()`` compiles a
    function on every call, which cost more than a whole GLM fit)."""
    # a cast of the data (logistic.build casts y to int) has the data's shape
    while (var.owner is not None and isinstance(var.owner.op, Elemwise)
           and len(var.owner.inputs) == 1):
        var = var.owner.inputs[0]
    if isinstance(var, pytensor.compile.SharedVariable):
        return np.shape(var.get_value(borrow=True))
    if isinstance(var, pytensor.graph.basic.Constant):
        return np.shape(var.data)
    return np.shape(var.eval(mode="FAST_COMPILE"))


def _n_obs(model: pm.Model) -> int:
    """Number of observations: rows of the observed data (leading dimension), summed."""
    shapes = [_data_shape(model.rvs_to_values[rv]) for rv in model.observed_RVs]
    return int(sum(shape[0] if len(shape) else 1 for shape in shapes))


@node_rewriter([Elemwise])
def _vectorised_softplus(fgraph, node):
    """softplus(x) = max(x, 0) + log1p(exp(-|x|)), from NumPy ufuncs only: PyTensor's Python
    linker evaluates its own Softplus (the stable form of a logistic log-likelihood) element
    by element in Python, 1.4 s of a 6,366-row logistic regression's first fit."""
    if isinstance(node.op.scalar_op, psm.Softplus):
        (x,) = node.inputs
        return [pt.maximum(x, 0) + pt.log1p(pt.exp(-pt.abs(x)))]
    return None


def _compile_python(inputs, outputs):
    """``inputs -> outputs`` on PyTensor's Python linker, or None where some elementwise op
    would loop over elements in Python (no NumPy counterpart): FAST_RUN's rewrites (the
    numerical stabilisation, e.g. log(sigmoid(x)) -> -softplus(-x), that FAST_COMPILE lacks
    and separated data need far from the origin) without fusing ops into Composites, which
    the Python linker also loops over."""
    from pytensor.compile.mode import get_mode

    mode = (get_mode("FAST_COMPILE").clone(optimizer="fast_run").excluding("fusion", "inplace")
            .register((in2out(_vectorised_softplus), 100)))
    fn = compile(inputs, outputs, mode=mode)
    for node in fn.maker.fgraph.apply_nodes:
        if (isinstance(node.op, Elemwise) and node.op.nfunc_spec is None
                and not isinstance(node.op.scalar_op, ps.Cast)):
            return None

    def call(*args):
        with np.errstate(all="ignore"):  # as numba: inf and nan without warnings
            return fn(*args)
    return call


class CompiledMLE:
    """The model's log-likelihood, gradient, Hessian and constrained map, compiled once.

    ``objective="logp"`` compiles the log posterior density instead (priors included, with
    the log-Jacobian of each transform: the density of the unconstrained parameters), whose
    maximum and curvature are the Laplace approximation's (:mod:`models.inference.laplace`).

    ``unimodal``: the model's builder declared the likelihood unimodal (GLMs): each start runs
    Newton's method (:func:`newton`). Its first fit runs on PyTensor's Python linker (see
    :func:`_compile_python`) with the Hessian by differences of the exact gradient; on the
    second fit :func:`fit_mle` calls :meth:`compile_for_sweeps`, which compiles the numba
    function and the symbolic Hessian, so that a single fit does not pay those compilations
    (1-3 s in a fresh process) while a sweep pays them once.
    """

    def __init__(self, model: pm.Model, objective: str = "loglik", unimodal: bool = False):
        # No source-line trace on the nodes built here (the gradient's): PyTensor walks the
        # Python stack for every new node (0.2 s of a GLM's first fit under cProfile).
        with pytensor.config.change_flags(traceback__limit=0):
            self._build(model, objective, unimodal)

    def _build(self, model: pm.Model, objective: str, unimodal: bool):
        self.model = model
        self.unimodal = bool(unimodal)
        self.f_exact_hess = None
        self.fits = 0
        self._start_fns = {}
        if objective not in ("loglik", "logp"):
            raise ValueError(f"objective must be 'loglik' or 'logp', got {objective!r}")
        loglik = _observed_loglik(model) if objective == "loglik" else model.logp()
        # a log-likelihood of discrete outcomes (a log probability mass) is at most 0
        self.discrete_outcome = objective == "loglik" and all(
            str(rv.dtype).startswith(("int", "uint", "bool")) for rv in model.observed_RVs)
        entering = set(ancestors([loglik]))
        discrete = [v.name for v in model.value_vars if v.dtype.startswith("int") and v in entering]
        if discrete:
            raise ValueError(f"fit_mle handles continuous parameters only; discrete: {discrete}")
        self.free = [v for v in model.continuous_value_vars if v in entering]
        if not self.free:
            raise ValueError("no free parameter enters the likelihood")
        self.absent = [model.values_to_rvs[v].name for v in model.continuous_value_vars
                       if v not in entering]
        # the model's initial point from the start function start() reuses (one compile)
        self._start_fns[False] = make_initial_point_fn(model=model, return_transformed=True)
        self.point0 = self._start_fns[False](0)
        absent_rvs = [model[name] for name in self.absent]
        self.absent_shapes = dict(zip(self.absent, self._shapes(absent_rvs)))
        # Constrained outputs: free RVs that enter, and Deterministics over parameters only.
        outputs, names = [], []
        for rv in model.free_RVs:
            if model.rvs_to_values[rv] in self.free:
                outputs.append(rv)
                names.append(rv.name)
        for det in model.deterministics:
            dims = model.named_vars_to_dims.get(det.name) or ()
            needs = set(ancestors([det])) & set(model.free_RVs)
            if OBS_DIM in dims or any(model.rvs_to_values[r] not in self.free for r in needs):
                continue
            outputs.append(det)
            names.append(det.name)
        self.out_names = names
        constrained = model.replace_rvs_by_values(outputs)
        flat = pt.concatenate([pt.flatten(c) for c in constrained])
        [ll_x, flat_x], x = join_nonshared_inputs(self.point0, [loglik, flat], self.free)
        grad = pytensor.grad(ll_x, x)
        self._grad_graph = (x, grad)
        self._flat_graph = (x, flat_x)
        self._f_flat_batch = None
        self._ll_grad_outputs = [ll_x, grad]
        # A declared GLM's first fit is a few Newton steps: on PyTensor's Python linker its
        # log-likelihood and gradient compile in a fraction of a second, where numba (the
        # default) costs 1-2 s to import and to load its kernels in a fresh process. A second
        # fit (a sweep, a bootstrap) compiles the numba function once (compile_for_sweeps).
        python = _compile_python([x], self._ll_grad_outputs) if self.unimodal else None
        self.sweep_ready = python is None
        self.f_ll_grad = python or compile([x], self._ll_grad_outputs)
        # Second derivatives by central differences of the EXACT compiled gradient (as
        # statsmodels' approx_hess does), not a symbolic Hessian: on a fresh machine numba
        # spent over 5 minutes compiling the symbolic Hessian of the LKJ-Cholesky model, while
        # 2k gradient calls cost milliseconds. The stationary point is still exact (the
        # gradient is), and the relative error of the information is ~1e-9.
        self.f_flat = compile([x], flat_x, on_unused_input="ignore", mode="FAST_COMPILE")
        self.out_shapes = self._shapes(outputs)
        self.x_labels = []
        for v in self.free:
            rv = model.values_to_rvs[v]
            name = rv.name if v.name == rv.name else f"{rv.name} (unconstrained)"
            self.x_labels += scalar_labels(name, model.named_vars_to_dims.get(rv.name),
                                     np.shape(self.point0[v.name]), model.coords)

    def _shapes(self, rvs) -> list[tuple]:
        """Shapes of variables at the initial point, evaluated through their value variables
        (compiling the random variables themselves would try to draw from them)."""
        if not rvs:
            return []
        exprs = self.model.replace_rvs_by_values(rvs)
        fn = compile(self.model.value_vars, exprs, on_unused_input="ignore", mode="FAST_COMPILE")
        return [tuple(np.shape(v)) for v in fn(*[self.point0[v.name] for v in self.model.value_vars])]

    def compile_for_sweeps(self) -> bool:
        """Compile, once, the numba log-likelihood and gradient where the first fit used the
        Python linker, and the symbolic Hessian of a ``unimodal`` model; True if there is one."""
        if not self.sweep_ready:
            with pytensor.config.change_flags(traceback__limit=0):
                self.f_ll_grad = compile([self._grad_graph[0]], self._ll_grad_outputs)
            self.sweep_ready = True
        return self.compile_exact_hessian()

    def compile_exact_hessian(self) -> bool:
        """Compile the symbolic Hessian (once) of a ``unimodal`` model; True if there is one."""
        if self.unimodal and self.f_exact_hess is None:
            x, grad = self._grad_graph
            # vectorize=True: one batched graph for the Hessian's rows, not a Scan loop
            self.f_exact_hess = compile([x], pytensor.gradient.jacobian(grad, x, vectorize=True))
        return self.f_exact_hess is not None

    def f_hess(self, x, scale=None, grad_at_x=None) -> np.ndarray:
        """Hessian of the log-likelihood: the compiled symbolic one once there is one, else
        central differences of the exact gradient (``scale``: each coordinate's natural scale,
        see :func:`_central_jacobian`), or forward differences from ``grad_at_x`` (the
        gradient at ``x``, half the gradient calls, ~1e-8 relative error: enough for a Newton
        step, whose convergence the exact gradient decides, not for the information)."""
        if self.f_exact_hess is not None:
            return np.asarray(self.f_exact_hess(x), dtype=float)
        return _central_jacobian(lambda z: np.asarray(self.f_ll_grad(z)[1], dtype=float), x,
                                 scale, f_at_x=grad_at_x)

    def f_out(self, x):
        """Constrained parameters (flat) and their Jacobian w.r.t. the unconstrained x."""
        flat = np.asarray(self.f_flat(x), dtype=float)
        return flat, _central_jacobian(lambda z: np.asarray(self.f_flat(z), dtype=float), x)

    def flat_batch(self, xs: np.ndarray) -> np.ndarray:
        """Constrained parameters (flat) of each row of ``xs`` (draws x unconstrained), in one
        call of a vectorised graph (compiled on first use) instead of a Python loop of
        :attr:`f_flat` calls: 2,000 Laplace draws of a small model took 0.3 s that way."""
        from pytensor.graph.replace import vectorize_graph

        xs = np.atleast_2d(np.asarray(xs, dtype=float))
        if self._f_flat_batch is None:
            x, flat_x = self._flat_graph
            batch = pt.matrix("xs", dtype=x.dtype)
            try:
                with warnings.catch_warnings():
                    # the batched dot asks PyTensor's C backend for BLAS, which pip installs
                    # lack; nothing else here uses it (the samplers run numba)
                    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
                    self._f_flat_batch = compile(
                        [batch], vectorize_graph(flat_x, replace={x: batch}),
                        on_unused_input="ignore", mode="FAST_COMPILE")
            except (NotImplementedError, TypeError, ValueError):  # no batched form: row by row
                self._f_flat_batch = lambda rows: np.stack([self.f_flat(r) for r in rows])
        out = np.asarray(self._f_flat_batch(xs), dtype=float)
        return out.reshape(len(xs), -1)

    def ravel(self, point) -> np.ndarray:
        return DictToArrayBijection.map({v.name: point[v.name] for v in self.free}).data

    def start(self, seed: int | None = None) -> np.ndarray:
        """The model's initial point (``seed`` None) or a jittered one, unconstrained and flat;
        the point functions are compiled once per model, not once per fit."""
        jitter = seed is not None
        fn = self._start_fns.get(jitter)
        if fn is None:
            fn = self._start_fns[jitter] = make_initial_point_fn(
                model=self.model, jitter_rvs=set(self.model.free_RVs) if jitter else None,
                return_transformed=True)
        return self.ravel(fn(0 if seed is None else seed))

    def loglik(self, x) -> float:
        return float(self.f_ll_grad(x)[0])


def _central_jacobian(f, x: np.ndarray, scale=None, f_at_x=None) -> np.ndarray:
    """d f / d x by central differences, step ~ cbrt(eps) scaled to each coordinate:
    max(|x_j|, scale_j), where ``scale`` defaults to 1 (a coefficient of an income in dollars
    lives on a scale of 1e-4: a step of 6e-6 there costs 1e-4 relative accuracy). Given
    ``f_at_x`` (f(x), already known), forward differences instead, step ~ sqrt(eps): half the
    calls of f, ~1e-8 relative accuracy."""
    x = np.asarray(x, dtype=float)
    scale = np.ones_like(x) if scale is None else np.asarray(scale, dtype=float)
    forward = f_at_x is not None
    eps = np.finfo(float).eps
    steps = (np.sqrt(eps) if forward else np.cbrt(eps)) * np.maximum(scale, np.abs(x))
    columns = []
    for j, h in enumerate(steps):
        e = np.zeros_like(x)
        e[j] = h
        columns.append((f(x + e) - np.asarray(f_at_x, dtype=float)) / h if forward
                       else (f(x + e) - f(x - e)) / (2 * h))
    jac = np.stack(columns, axis=-1)
    return jac


# Compile once per model object: sweeps call fit_mle repeatedly after pm.set_data. Held by a
# weak reference to the model, so a discarded model takes its compiled functions with it.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_mle(model: pm.Model) -> CompiledMLE:
    """The model's compiled log-likelihood, gradient and Hessian (compiled on first use; the
    Hessian symbolically when the model's builder declared the likelihood unimodal)."""
    cached = _COMPILED.get(model)
    if cached is None:
        cached = _COMPILED[model] = CompiledMLE(
            model, unimodal=unimodal_reason(model) is not None)
    return cached


def newton(c: CompiledMLE, x0: np.ndarray, maxiter: int = 100):
    """Newton's method with backtracking from ``x0``: ``(x, result)``, or ``(None, None)``
    where it cannot go on (the Hessian is not negative definite, which a unimodal likelihood
    can still be away from its maximum, or no maximum within ``maxiter`` steps, e.g.
    separation): the caller falls back to L-BFGS.

    This is the IRLS of GLM software (Fisher scoring equals Newton for canonical links), on the
    model's own compiled log-likelihood and its Hessian (:meth:`CompiledMLE.f_hess`): a few
    iterations where L-BFGS needs dozens."""
    x = np.asarray(x0, dtype=float)
    ll, g = c.f_ll_grad(x)
    if not np.isfinite(ll):
        return None, None
    kind = ("symbolic Hessian" if c.f_exact_hess is not None
            else "Hessian by forward differences of the exact gradient")
    for it in range(1, maxiter + 1):
        H = c.f_hess(x, grad_at_x=g)
        chol = _damped_cholesky(-0.5 * (H + H.T))
        if chol is None:
            return None, None
        step = np.linalg.solve(chol.T, np.linalg.solve(chol, g))
        decrement = float(g @ step)  # twice the gain a full step promises
        if not np.all(np.isfinite(step)):
            return None, None
        # accept a step that gains (Armijo) or, at round-off level, shrinks the gradient
        roundoff = 64 * np.finfo(float).eps * max(1.0, abs(ll))
        for shrink in 0.5 ** np.arange(12):
            ll_new, g_new = c.f_ll_grad(x + shrink * step)
            if np.isfinite(ll_new) and (
                    ll_new >= ll + 1e-4 * shrink * decrement
                    or (ll_new >= ll - roundoff and np.max(np.abs(g_new)) < np.max(np.abs(g)))):
                break
        else:  # no step gains within round-off: at the maximum to machine precision, or lost
            if abs(decrement) > 1e-6 * max(1.0, abs(ll)):
                return None, None
            return x, optimize.OptimizeResult(x=x, nit=it, success=True, message=(
                f"Newton ({kind}) converged in {it - 1} steps, to round-off"))
        x, ll, g = x + shrink * step, ll_new, np.asarray(g_new, dtype=float)
        if decrement <= roundoff and np.max(np.abs(shrink * step)) <= 1e-10 * (1 + np.max(np.abs(x))):
            return x, optimize.OptimizeResult(x=x, nit=it, success=True, message=(
                f"Newton ({kind}) converged in {it} steps"))
    return None, None


def _damped_cholesky(A: np.ndarray, tries: int = 60):
    """Cholesky factor of ``A + tau I`` with the smallest tau >= 0 (doubling) that makes it
    positive definite: Nocedal & Wright (2006), Algorithm 3.3, "Cholesky with added multiple of
    the identity". Where the log-likelihood is unimodal but not concave (a normal linear
    model in (beta, log sigma) far from its maximum) this turns Newton's step into an ascent
    direction between Newton and gradient ascent; near the maximum tau is 0 and the steps
    are Newton's. None where A is not finite."""
    if not np.all(np.isfinite(A)):
        return None
    diag = np.diag(A)
    floor = 1e-3 * max(float(np.max(np.abs(diag))), np.finfo(float).tiny)
    tau = 0.0 if np.min(diag) > 0 else floor - float(np.min(diag))
    for _ in range(tries):
        try:
            return np.linalg.cholesky(A + tau * np.eye(len(A)))
        except np.linalg.LinAlgError:
            tau = max(2.0 * tau, floor)
    return None


def maximise(c: CompiledMLE, x0: np.ndarray, maxiter: int):
    """L-BFGS from ``x0``, then Newton steps on the Hessian: ``(x, scipy result)``."""
    def neg(x):
        ll, g = c.f_ll_grad(x)
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(x)
        return -float(ll), -np.asarray(g, dtype=float)

    res = optimize.minimize(neg, x0, jac=True, method="L-BFGS-B",
                            options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-10,
                                     "maxcor": 30})
    x = res.x
    # Newton polish on the exact Hessian: L-BFGS stops at ~1e-8 relative; Newton converges
    # quadratically from there, which is what makes estimates agree with statsmodels to 1e-8.
    for _ in range(20):
        ll, g = c.f_ll_grad(x)
        H = c.f_hess(x)
        try:
            step = np.linalg.solve(-H, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or step @ g <= 0:  # not an ascent direction
            break
        # Near the optimum the gain g^T H^-1 g / 2 falls below the round-off of ll itself, so
        # accept a step that is no worse within round-off and shrinks the gradient.
        roundoff = 64 * np.finfo(float).eps * max(1.0, abs(ll))
        for shrink in (1.0, 0.5, 0.25, 0.125):
            ll_new, g_new = c.f_ll_grad(x + shrink * step)
            if ll_new > ll + roundoff or (ll_new >= ll - roundoff
                                          and np.max(np.abs(g_new)) < np.max(np.abs(g))):
                x = x + shrink * step
                break
        else:
            break
        if np.max(np.abs(step)) < 1e-12 * (1 + np.max(np.abs(x))):
            break
    return x, res


def _unbounded_direction(c: CompiledMLE, x, x0, ll, ident):
    """A direction along which the log-likelihood does not decrease, out to far away.

    At a genuine maximum every direction eventually goes downhill (by 0.5 lambda t^2 for an
    eigenvalue lambda); if moving 10, 100 and 1000 times the scale of x along an almost-flat
    eigen-direction never lowers the log-likelihood, the supremum is at infinity (e.g. perfect
    separation) and no MLE exists.
    """
    scale = 1.0 + np.max(np.abs(x))
    tol = 1e-9 * max(1.0, abs(ll))
    directions = []
    if ident is not None:
        # flattest directions of the information as it is and scaled to unit diagonal
        # (mapped back to x by D): separation shows as either, whatever the units
        raw = np.linalg.eigh(ident.info)
        for (values, vectors), back in ((raw, np.ones_like(ident.d)), (ident.eig, ident.d)):
            small = np.flatnonzero(values <= max(values.max(), 1e-300) * 1e-4)
            for j in small if small.size else [int(np.argmin(values))]:
                v = back * vectors[:, j]
                v = v / max(np.linalg.norm(v), 1e-300)
                directions += [v, -v]
    # The way the optimiser travelled is the other natural candidate (the Hessian can be
    # non-finite far out, where the likelihood has saturated).
    travelled = x - x0
    if np.linalg.norm(travelled) > 0:
        directions.append(travelled / np.linalg.norm(travelled))
    for v in directions:
        far = [c.loglik(x + t * scale * v) for t in (10.0, 100.0, 1000.0)]
        if all(np.isfinite(f) and f >= ll - tol for f in far):
            # Flat both ways is a ridge (e.g. only a + b identified): the maximum exists but
            # is not unique, 'singular'. Separation is one-sided: back the other way it falls.
            back = c.loglik(x - 10.0 * scale * v)
            if not (np.isfinite(back) and back >= ll - tol):
                return v, far[-1]
    return None, None


# Scaled eigenvalues at or below this are a null direction (unidentified); below minus
# IDENT_NEG_TOL, not a maximum. Scale-free: the information is scaled to unit diagonal first.
IDENT_TOL = 1e-10
IDENT_NEG_TOL = 1e-6


@dataclass
class _Identifiability:
    """The observed information I judged on its correlation-type scaling R = D I D,
    D = diag(I)^-1/2: eigenvalues of R do not change when a parameter is measured in other
    units (a calendar year beside GNP in dollars), so 'singular' means unidentified, not
    'badly scaled'. Statsmodels inverts I directly; this matches it whenever R is regular."""

    info: np.ndarray
    d: np.ndarray  # D's diagonal (1 where I_jj <= 0: that coordinate is flat or worse)
    eig: tuple  # eigen-decomposition of R (values ascending, vectors)
    null: np.ndarray  # columns: null directions of I in x-space (D times R's null vectors)

    @property
    def min_eig(self) -> float:
        return float(self.eig[0][0])

    @property
    def negative(self) -> bool:
        return self.min_eig < -IDENT_NEG_TOL or bool(np.any(np.diag(self.info) < 0))

    def generalized_inverse(self) -> np.ndarray:
        """D R^+ D: the inverse of I when it is regular, and a generalised inverse of I
        otherwise (I D R^+ D I = I), which gives the right variance for every estimable
        function c^T x (c orthogonal to the null space), whatever generalised inverse is used."""
        values, vectors = self.eig
        keep = values > IDENT_TOL
        r_plus = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
        return self.d[:, None] * r_plus * self.d[None, :]

    def newton_decrement(self, grad) -> float:
        """g^T I^- g: twice the log-likelihood still to gain by a Newton step (scale-free)."""
        g = np.asarray(grad, dtype=float)
        return float(g @ self.generalized_inverse() @ g)

    def estimable(self, jac: np.ndarray) -> np.ndarray:
        """Rows of ``jac`` (outputs) whose gradient is orthogonal to every null direction."""
        if not self.null.shape[1]:
            return np.ones(jac.shape[0], dtype=bool)
        n = self.null / np.linalg.norm(self.null, axis=0, keepdims=True)
        size = np.linalg.norm(jac, axis=1) + 1e-300
        return np.max(np.abs(jac @ n), axis=1) <= 1e-6 * size


def _identifiability(info: np.ndarray) -> _Identifiability:
    diag = np.diag(info).copy()
    d = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 1.0)
    scaled = d[:, None] * info * d[None, :]
    flat = diag <= 0  # no curvature at all along this coordinate: unidentified
    scaled[flat, :] = 0.0
    scaled[:, flat] = 0.0
    values, vectors = np.linalg.eigh(0.5 * (scaled + scaled.T))
    null = d[:, None] * vectors[:, values <= IDENT_TOL]
    return _Identifiability(info, d, (values, vectors), null)


@dataclass
class _Optimum:
    """The best of the optimiser's runs, and every run's log-likelihood."""

    ll: float
    x: np.ndarray
    res: object  # scipy's OptimizeResult of the best run
    x0: np.ndarray  # where the best run started
    fits: list  # (loglik, x, result, start) per start with a finite log-likelihood


def _optimise(model, c: CompiledMLE, n_starts: int, random_seed, maxiter: int,
              initvals) -> _Optimum:
    """From each start (the initial point, then jittered ones, or ``initvals``): Newton on the
    exact Hessian where there is one, else (or where Newton cannot go on) L-BFGS + Newton."""
    rng = np.random.default_rng(random_seed)
    if initvals is not None:
        starts = [c.ravel(make_initial_point_fn(model=model, overrides=iv,
                                                return_transformed=True)(0)) for iv in initvals]
    else:
        starts = [c.start()]
        starts += [c.start(int(rng.integers(2**30))) for _ in range(n_starts - 1)]
    fits = []
    for x0 in starts:
        if not np.isfinite(c.loglik(x0)):
            continue
        x, res = newton(c, x0) if c.unimodal else (None, None)
        if x is None:
            x, res = maximise(c, x0, maxiter)
        fits.append((c.loglik(x), x, res, x0))
    if not fits:
        raise ValueError("the log-likelihood is not finite at any starting point; check the data "
                         "against the model's support")
    ll, x, res, x0 = max(fits, key=lambda f: f[0] if np.isfinite(f[0]) else -np.inf)

    return _Optimum(ll, x, res, x0, fits)


def _information(c: CompiledMLE, x: np.ndarray):
    """Gradient, observed information (steps on each coordinate's own scale) and its
    identifiability at ``x``."""
    _, grad = c.f_ll_grad(x)
    info = -np.asarray(c.f_hess(x), dtype=float)
    diag = np.diag(info)
    if c.f_exact_hess is None and np.all(np.isfinite(info)) and np.all(diag > 0):
        # again, with steps on each coordinate's own scale 1/sqrt(I_jj) (units-free)
        info = -np.asarray(c.f_hess(x, scale=1.0 / np.sqrt(diag)), dtype=float)
    info = 0.5 * (info + info.T)
    ident = _identifiability(info) if np.all(np.isfinite(info)) else None
    return grad, info, ident


def _status(c: CompiledMLE, o: _Optimum, grad, ident, jac):
    """``(status, message, unconstrained covariance or None, estimable mask or None)``."""
    ll, x, x0, res, fits = o.ll, o.x, o.x0, o.res, o.fits
    grad_ok = (np.max(np.abs(grad)) <= 1e-4 * max(1.0, np.sqrt(abs(ll)))
               or (ident is not None and ident.newton_decrement(grad) <= 1e-8 * max(1.0, abs(ll))))
    direction, ll_far = _unbounded_direction(c, x, x0, ll, ident)
    cov_x, estimable = None, None
    # Discrete outcomes: the log-likelihood is at most 0, reached only by probabilities of
    # exactly 1, which no finite parameter gives a logistic, softmax or Poisson model. Within
    # 1e-6 nats of 0 the optimiser is approaching that supremum at infinity, even where no
    # single direction shows it (a network's weights at 1e13, its Hessian overflowing).
    saturated = direction is None and c.discrete_outcome and -1e-6 < ll <= 0
    if saturated:
        status = "does_not_exist"
        message = (f"the MLE does not exist: the log-likelihood has saturated at {ll:.3g}, within "
                   "1e-6 nats of its supremum 0 (every observation predicted with probability "
                   "near 1), which no finite parameter value attains; the optimiser stopped at "
                   f"parameters as large as {np.max(np.abs(x)):.3g}, e.g. perfectly separated "
                   "classes. The values shown are where it stopped; use the posterior.")
    elif direction is not None:
        top = np.argsort(-np.abs(direction))[:3]
        names = [c.x_labels[i] for i in top if abs(direction[i]) > 0.1]
        status = "does_not_exist"
        how = (f"keeps rising (from {ll:.6g} to {ll_far:.6g} far along a direction dominated by "
               f"{names})" if ll_far > ll else
               f"has saturated at {ll:.3g} (its supremum, approached only at infinity: it stays "
               f"flat far along a direction dominated by {names} and falls the other way)")
        message = (f"the MLE does not exist: the log-likelihood {how} as those parameters grow "
                   "without bound, e.g. perfect separation in a logistic regression. The values "
                   "shown are where the optimiser stopped; use the posterior.")
    elif ident is None:
        status = "singular"
        message = ("the Hessian of the log-likelihood is not finite at the optimiser's end "
                   "point; no standard errors")
    elif ident.negative:
        status = "not_converged"
        message = (f"the optimiser stopped where the log-likelihood is not at a maximum: the "
                   f"observed information (scaled to unit diagonal) has a negative eigenvalue "
                   f"({ident.min_eig:.3g}), a saddle or an unfinished climb ({res.message})")
    elif ident.null.shape[1]:
        weak = ident.null[:, 0]
        top = np.argsort(-np.abs(weak))[:3]
        largest = [c.x_labels[i] for i in top]
        names = [c.x_labels[i] for i in top if abs(weak[i]) > 0.1]
        # a null direction with no entry above 0.1 (spread over many parameters, as a BNN's
        # often is) would otherwise be named by an empty list
        what = (f"parameters {names} are" if names else
                f"a combination of parameters with no dominant one (largest entries: {largest}) is")
        status = "singular"
        cov_x = ident.generalized_inverse()
        estimable = ident.estimable(jac)
        message = (f"the observed information matrix is singular (smallest eigenvalue "
                   f"{ident.min_eig:.3g} after scaling it to unit diagonal): {what} "
                   "not identified by the likelihood (a ridge or a symmetry of the model)")
        if estimable.any():
            message += ("; standard errors are given for the parameters the likelihood does "
                        "identify, NaN for the others")
    elif not grad_ok:
        status = "not_converged"
        message = (f"the optimiser did not converge: max |gradient| = {np.max(np.abs(grad)):.3g}"
                   f" ({res.message})")
    else:
        status = "ok"
        message = f"converged from {len(fits)} start(s); max |gradient| {np.max(np.abs(grad)):.2g}"
        if unimodal_reason(c.model) and len(fits) == 1:
            message += f" (one start suffices: {unimodal_reason(c.model)}; {res.message})"
        cov_x = ident.generalized_inverse()
        spread = [f[0] for f in fits if np.isfinite(f[0])]
        if max(spread) - min(spread) > 1e-6 * max(1.0, abs(ll)):
            message += (f"; starts reached different log-likelihoods {sorted(spread)}: "
                        "the likelihood is multimodal, the best is reported")
    if c.absent:
        message += (f"; {c.absent} do not enter the likelihood (no MLE: NaN); for a hierarchical "
                    "model see models.hierarchical.type2_mle")
    return status, message, cov_x, estimable


def _constrained(model, c: CompiledMLE, flat, jac, cov_x, estimable):
    """Estimates, SEs (delta method, cov = J cov_x J^T), labels and the labelled covariance on
    the constrained scale; NaN where there is no covariance or nothing is identified."""
    if cov_x is not None:
        cov_c = jac @ cov_x @ jac.T
        if estimable is not None:  # NaN rows/columns for what the likelihood does not identify
            cov_c[~estimable, :] = np.nan
            cov_c[:, ~estimable] = np.nan
        se_flat = np.sqrt(np.clip(np.diag(cov_c), 0, None))
        se_flat[~np.isfinite(np.diag(cov_c))] = np.nan
    else:
        cov_c = np.full((flat.size, flat.size), np.nan)
        se_flat = np.diag(cov_c)
    params, se, labels, offset = {}, {}, {}, 0
    for name, shape in zip(c.out_names, c.out_shapes):
        size = int(np.prod(shape))
        params[name] = flat[offset:offset + size].reshape(shape)
        se[name] = se_flat[offset:offset + size].reshape(shape)
        labels[name] = model_labels(model, name, shape)
        offset += size
    for name in c.absent:
        shape = c.absent_shapes[name]
        params[name] = np.full(shape, np.nan)
        se[name] = np.full(shape, np.nan)
        labels[name] = model_labels(model, name, shape)
    all_labels = [lab for name in params if name not in c.absent for lab in labels[name]]
    cov = pd.DataFrame(cov_c, index=all_labels, columns=all_labels)
    return params, se, labels, cov


@stopwatch.timed("MLE")
def fit_mle(model: pm.Model, n_starts: int | None = None, random_seed: int | None = 0,
            maxiter: int = 20_000, warn: bool = True, initvals: list[dict] | None = None
            ) -> MLEResult:
    """Maximum-likelihood estimate of ``model``'s parameters, priors ignored.

    Starts: the model's initial point, then ``n_starts - 1`` jittered ones (uniform(-1, 1) in
    the unconstrained space, as ``pm.sample`` jitters); the best log-likelihood wins.
    ``n_starts=None`` (default): one start where the model's builder declared the likelihood
    unimodal (:mod:`models.base.modality`: the GLM families), four otherwise. On a declared
    model each start runs Newton's method, as GLM software does (the model's first fit on
    differences of the exact gradient, later fits on the symbolic Hessian); elsewhere
    L-BFGS, polished by Newton steps. The optimisation runs in the
    unconstrained space (log sigma, ...), where the MLE is the same point (invariance); the
    observed information is the negative Hessian there, and standard errors on the
    constrained scale follow by the delta method, cov = J I^{-1} J^T.

    Problems are reported in ``status``/``message`` (and as an :class:`MLEWarning` when
    ``warn``): "does_not_exist" (the likelihood keeps rising towards infinity, e.g.
    separation), "singular" (information matrix not invertible: a parameter is not
    identified), "not_converged". Standard errors are NaN unless the status is "ok".

    ``initvals``: explicit starts instead (a list of {variable name: constrained value}
    dicts, e.g. prior draws: :func:`models.bnn.prior_starts`).
    """
    return fit_mle_with_optimum(model, n_starts, random_seed, maxiter, warn, initvals)[0]


def fit_mle_with_optimum(model: pm.Model, n_starts: int | None = None,
                         random_seed: int | None = 0, maxiter: int = 20_000, warn: bool = True,
                         initvals: list[dict] | None = None) -> tuple[MLEResult, np.ndarray]:
    """:func:`fit_mle` and the optimum in the unconstrained space (the flat-prior Laplace
    approximation starts its curvature there instead of optimising again)."""
    if n_starts is None:
        n_starts = 1 if unimodal_reason(model) else 4
    n_starts = check_positive_int(n_starts, "n_starts", maximum=1000)
    c = compiled_mle(model)
    c.fits += 1
    if c.fits == 2:  # fitted again (a sweep, a bootstrap): numba and the symbolic Hessian pay off
        c.compile_for_sweeps()
    o = _optimise(model, c, n_starts, random_seed, maxiter, initvals)
    ll, x, fits = o.ll, o.x, o.fits
    grad, info, ident = _information(c, x)
    flat, jac = c.f_out(x)
    status, message, cov_x, estimable = _status(c, o, grad, ident, jac)
    params, se, labels, cov = _constrained(model, c, flat, jac, cov_x, estimable)
    k = x.size
    n = _n_obs(model)
    result = MLEResult(
        params=params, se=se, cov=cov, loglik=ll, aic=2 * k - 2 * ll, bic=k * np.log(n) - 2 * ll,
        converged=status == "ok", message=message, status=status, n_obs=n, n_params=k,
        labels=labels, not_in_likelihood=list(c.absent), start_logliks=[f[0] for f in fits],
    )
    if warn and (status != "ok" or c.absent):
        warnings.warn(message, MLEWarning, stacklevel=3)
    return result, x


