"""MLE and posterior for ANY PyMC model of this library, and their side-by-side comparison.

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
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pymc.blocking import DictToArrayBijection
from pymc.initial_point import make_initial_point_fn
from pymc.pytensorf import compile, join_nonshared_inputs
from pytensor.graph.traversal import ancestors
from scipy import optimize, special

from models._build import OBS_DIM
from models.interrupts import interrupted
from models.likelihood import LOG2
from models.validation import check_positive_int

# Thresholds of :func:`diagnose` (Vehtari et al. 2021 for R-hat/ESS; Betancourt 2016 for E-BFMI).
RHAT_MAX = 1.01
ESS_MIN = 400
EBFMI_MIN = 0.3


class MLEWarning(UserWarning):
    """The MLE is not trustworthy: it does not exist, is not unique, or did not converge."""


# ------------------------------------------------------------------------------ labels
def _labels(name: str, dims, shape, coords) -> list[str]:
    """Scalar labels in C order, formatted as ArviZ does: ``beta[height]``, ``beta[a, b]``."""
    shape = tuple(int(s) for s in shape)
    if shape == ():
        return [name]
    axes = []
    for axis, n in enumerate(shape):
        dim = dims[axis] if dims and axis < len(dims) else None
        values = coords.get(dim) if dim else None
        axes.append([str(v) for v in values] if values is not None and len(values) == n
                    else [str(i) for i in range(n)])
    return [f"{name}[{', '.join(combo)}]" for combo in itertools.product(*axes)]


def _model_labels(model: pm.Model, name: str, shape) -> list[str]:
    return _labels(name, model.named_vars_to_dims.get(name), shape, model.coords)


def scalar_labels(name: str, dims, shape, coords) -> list[str]:
    """The scalar labels ``beta[height]`` / ``beta[a, b]`` of a variable, in C order."""
    return _labels(name, dims, shape, coords)


def _flat_by_label(da: xr.DataArray, name: str) -> pd.Series:
    """A DataArray without sample dims, flattened in C order and indexed by its own labels."""
    coords = {d: da.coords[d].values for d in da.dims if d in da.coords}
    return pd.Series(np.ravel(da.values), index=_labels(name, da.dims, da.shape, coords))


def posterior_summary(idata: xr.DataTree, var_names=None, prob: float = 0.95,
                      group: str = "posterior") -> pd.DataFrame:
    """Per scalar parameter: mean, sd, equal-tailed interval at ``prob``, bulk/tail ESS,
    R-hat and MCSE, every row labelled from the variable's OWN dims and coords.

    Why not ``arviz.summary``: ArviZ 1.3 (arviz-stats 1.3.3) mislabels the rows of a 2-D
    variable when an earlier variable in the same call shares one of its dims (softmax's
    ``intercept_centered`` (class) then ``beta`` (predictor, class): values in the wrong rows).
    Here the moments and quantiles are plain xarray reductions over (chain, draw), and ESS,
    R-hat and MCSE come from ArviZ as Datasets (keyed by dims, so they cannot be misplaced);
    each is flattened with labels built from that variable's own dims and coords.
    Columns: ``mean``, ``sd``, ``eti{pct}_lb``, ``eti{pct}_ub``, ``ess_bulk``, ``ess_tail``,
    ``r_hat``, ``mcse_mean``, ``mcse_sd``.
    """
    import arviz as az

    post = idata[group].to_dataset() if isinstance(idata, xr.DataTree) else idata
    names = list(var_names) if var_names is not None else list(post.data_vars)
    pct = f"{round(prob * 100):d}"
    sample = ("chain", "draw")
    tree = xr.DataTree.from_dict({"posterior": post[names]})
    multi = post.sizes.get("chain", 1) > 1
    diag = {"ess_bulk": az.ess(tree, method="bulk").dataset,
            "ess_tail": az.ess(tree, method="tail").dataset,
            "r_hat": az.rhat(tree).dataset if multi else None,
            "mcse_mean": az.mcse(tree, method="mean").dataset,
            "mcse_sd": az.mcse(tree, method="sd").dataset}
    frames = []
    for name in names:
        da = post[name]
        q = da.quantile([0.5 - prob / 2, 0.5 + prob / 2], dim=sample)
        cols = {"mean": da.mean(sample), "sd": da.std(sample, ddof=1),
                f"eti{pct}_lb": q.isel(quantile=0, drop=True),
                f"eti{pct}_ub": q.isel(quantile=1, drop=True)}
        for key, ds in diag.items():
            cols[key] = ds[name] if ds is not None else xr.full_like(cols["mean"], np.nan)
        frames.append(pd.DataFrame({k: _flat_by_label(v.transpose(*cols["mean"].dims), name)
                                    for k, v in cols.items()}))
    out = pd.concat(frames) if frames else pd.DataFrame()
    out.index.name = "parameter"
    return out


# ------------------------------------------------------------------------------ MLE
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


def _n_obs(model: pm.Model) -> int:
    """Number of observations: rows of the observed data (leading dimension), summed."""
    return int(sum(np.shape(model.rvs_to_values[rv].eval())[0] if np.ndim(
        model.rvs_to_values[rv].eval()) else 1 for rv in model.observed_RVs))


class _CompiledMLE:
    """The model's log-likelihood, gradient, Hessian and constrained map, compiled once."""

    def __init__(self, model: pm.Model):
        self.model = model
        loglik = _observed_loglik(model)
        entering = set(ancestors([loglik]))
        discrete = [v.name for v in model.value_vars if v.dtype.startswith("int") and v in entering]
        if discrete:
            raise ValueError(f"fit_mle handles continuous parameters only; discrete: {discrete}")
        self.free = [v for v in model.continuous_value_vars if v in entering]
        if not self.free:
            raise ValueError("no free parameter enters the likelihood")
        self.absent = [model.values_to_rvs[v].name for v in model.continuous_value_vars
                       if v not in entering]
        self.point0 = model.initial_point()
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
        self.f_ll_grad = compile([x], [ll_x, grad])
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
            self.x_labels += _labels(name, model.named_vars_to_dims.get(rv.name),
                                     np.shape(self.point0[v.name]), model.coords)

    def _shapes(self, rvs) -> list[tuple]:
        """Shapes of variables at the initial point, evaluated through their value variables
        (compiling the random variables themselves would try to draw from them)."""
        if not rvs:
            return []
        exprs = self.model.replace_rvs_by_values(rvs)
        fn = compile(self.model.value_vars, exprs, on_unused_input="ignore", mode="FAST_COMPILE")
        return [tuple(np.shape(v)) for v in fn(*[self.point0[v.name] for v in self.model.value_vars])]

    def f_hess(self, x, scale=None) -> np.ndarray:
        """Hessian of the log-likelihood: central differences of the exact gradient
        (``scale``: each coordinate's natural scale, see :func:`_central_jacobian`)."""
        return _central_jacobian(lambda z: np.asarray(self.f_ll_grad(z)[1], dtype=float), x,
                                 scale)

    def f_out(self, x):
        """Constrained parameters (flat) and their Jacobian w.r.t. the unconstrained x."""
        flat = np.asarray(self.f_flat(x), dtype=float)
        return flat, _central_jacobian(lambda z: np.asarray(self.f_flat(z), dtype=float), x)

    def ravel(self, point) -> np.ndarray:
        return DictToArrayBijection.map({v.name: point[v.name] for v in self.free}).data

    def loglik(self, x) -> float:
        return float(self.f_ll_grad(x)[0])


def _central_jacobian(f, x: np.ndarray, scale=None) -> np.ndarray:
    """d f / d x by central differences, step ~ cbrt(eps) scaled to each coordinate:
    max(|x_j|, scale_j), where ``scale`` defaults to 1 (a coefficient of an income in dollars
    lives on a scale of 1e-4: a step of 6e-6 there costs 1e-4 relative accuracy)."""
    x = np.asarray(x, dtype=float)
    scale = np.ones_like(x) if scale is None else np.asarray(scale, dtype=float)
    steps = np.cbrt(np.finfo(float).eps) * np.maximum(scale, np.abs(x))
    columns = []
    for j, h in enumerate(steps):
        e = np.zeros_like(x)
        e[j] = h
        columns.append((f(x + e) - f(x - e)) / (2 * h))
    jac = np.stack(columns, axis=-1)
    return jac


def _compiled(model: pm.Model) -> _CompiledMLE:
    # Compile once per model object: sweeps call fit_mle repeatedly after pm.set_data.
    cached = getattr(model, "_mlebayes_compiled_mle", None)
    if cached is None:
        cached = _CompiledMLE(model)
        model._mlebayes_compiled_mle = cached
    return cached


def _maximise(c: _CompiledMLE, x0: np.ndarray, maxiter: int):
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


def _unbounded_direction(c: _CompiledMLE, x, x0, ll, ident):
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


def fit_mle(model: pm.Model, n_starts: int = 4, random_seed: int | None = 0,
            maxiter: int = 20_000, warn: bool = True, initvals: list[dict] | None = None
            ) -> MLEResult:
    """Maximum-likelihood estimate of ``model``'s parameters, priors ignored.

    Starts: the model's initial point, then ``n_starts - 1`` jittered ones (uniform(-1, 1) in
    the unconstrained space, as ``pm.sample`` jitters); the best log-likelihood wins. The
    optimisation runs in the unconstrained space (log sigma, ...), where the MLE is the same
    point (invariance); the observed information is the negative Hessian there, and standard
    errors on the constrained scale follow by the delta method, cov = J I^{-1} J^T.

    Problems are reported in ``status``/``message`` (and as an :class:`MLEWarning` when
    ``warn``): "does_not_exist" (the likelihood keeps rising towards infinity, e.g.
    separation), "singular" (information matrix not invertible: a parameter is not
    identified), "not_converged". Standard errors are NaN unless the status is "ok".

    ``initvals``: explicit starts instead (a list of {variable name: constrained value}
    dicts, e.g. prior draws: :func:`models.bnn.prior_starts`).
    """
    n_starts = check_positive_int(n_starts, "n_starts", maximum=1000)
    c = _compiled(model)
    make_start = make_initial_point_fn(model=model, jitter_rvs=set(model.free_RVs),
                                       return_transformed=True)
    rng = np.random.default_rng(random_seed)
    if initvals is not None:
        starts = [c.ravel(make_initial_point_fn(model=model, overrides=iv,
                                                return_transformed=True)(0)) for iv in initvals]
    else:
        starts = [c.ravel(model.initial_point())]
        starts += [c.ravel(make_start(int(rng.integers(2**30)))) for _ in range(n_starts - 1)]
    fits = []
    for x0 in starts:
        if not np.isfinite(c.loglik(x0)):
            continue
        x, res = _maximise(c, x0, maxiter)
        fits.append((c.loglik(x), x, res, x0))
    if not fits:
        raise ValueError("the log-likelihood is not finite at any starting point; check the data "
                         "against the model's support")
    ll, x, res, x0 = max(fits, key=lambda f: f[0] if np.isfinite(f[0]) else -np.inf)

    _, grad = c.f_ll_grad(x)
    info = -np.asarray(c.f_hess(x), dtype=float)
    diag = np.diag(info)
    if np.all(np.isfinite(info)) and np.all(diag > 0):
        # again, with steps on each coordinate's own scale 1/sqrt(I_jj) (units-free)
        info = -np.asarray(c.f_hess(x, scale=1.0 / np.sqrt(diag)), dtype=float)
    info = 0.5 * (info + info.T)
    ident = _identifiability(info) if np.all(np.isfinite(info)) else None
    grad_ok = (np.max(np.abs(grad)) <= 1e-4 * max(1.0, np.sqrt(abs(ll)))
               or (ident is not None and ident.newton_decrement(grad) <= 1e-8 * max(1.0, abs(ll))))
    direction, ll_far = _unbounded_direction(c, x, x0, ll, ident)
    flat, jac = c.f_out(x)
    cov_x, estimable = None, None
    if direction is not None:
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
        names = [c.x_labels[i] for i in np.argsort(-np.abs(weak))[:3] if abs(weak[i]) > 0.1]
        status = "singular"
        cov_x = ident.generalized_inverse()
        estimable = ident.estimable(jac)
        message = (f"the observed information matrix is singular (smallest eigenvalue "
                   f"{ident.min_eig:.3g} after scaling it to unit diagonal): parameters {names} "
                   "are not identified by the likelihood (a ridge or a symmetry of the model)")
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
        cov_x = ident.generalized_inverse()
        spread = [f[0] for f in fits if np.isfinite(f[0])]
        if max(spread) - min(spread) > 1e-6 * max(1.0, abs(ll)):
            message += (f"; starts reached different log-likelihoods {sorted(spread)}: "
                        "the likelihood is multimodal, the best is reported")
    if c.absent:
        message += (f"; {c.absent} do not enter the likelihood (no MLE: NaN); for a hierarchical "
                    "model see models.hierarchical.type2_mle")

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
        labels[name] = _model_labels(model, name, shape)
        offset += size
    for name in c.absent:
        shape = c.absent_shapes[name]
        params[name] = np.full(shape, np.nan)
        se[name] = np.full(shape, np.nan)
        labels[name] = _model_labels(model, name, shape)
    all_labels = [lab for name in params if name not in c.absent for lab in labels[name]]
    cov = pd.DataFrame(cov_c, index=all_labels, columns=all_labels)
    k = x.size
    n = _n_obs(model)
    result = MLEResult(
        params=params, se=se, cov=cov, loglik=ll, aic=2 * k - 2 * ll, bic=k * np.log(n) - 2 * ll,
        converged=status == "ok", message=message, status=status, n_obs=n, n_params=k,
        labels=labels, not_in_likelihood=list(c.absent), start_logliks=[f[0] for f in fits],
    )
    if warn and (status != "ok" or c.absent):
        warnings.warn(message, MLEWarning, stacklevel=2)
    return result


# ------------------------------------------------------------------------------ data swap
def set_data(model: pm.Model, **arrays) -> None:
    """Swap the model's data containers (``X``, ``y``, ...) without recompiling.

    The ``obs_id`` coordinate is resized to the new number of rows.
    """
    n = {np.shape(a)[0] for a in arrays.values() if np.ndim(a)}
    if len(n) > 1:
        raise ValueError(f"new data arrays have different numbers of rows: {sorted(n)}")
    coords = {OBS_DIM: np.arange(n.pop())} if n and OBS_DIM in model.coords else None
    pm.set_data(arrays, model=model, coords=coords)


@contextlib.contextmanager
def data_swapped(model: pm.Model, **arrays):
    """Temporarily swap data containers; the original data are restored on exit."""
    original = {name: model[name].get_value() for name in arrays}
    set_data(model, **arrays)
    try:
        yield model
    finally:
        set_data(model, **original)


# ------------------------------------------------------------------------------ posterior
def check_start(model: pm.Model) -> None:
    """Raise, in words and naming the variable, if the log-probability is not finite at the
    model's initial point (what would otherwise surface as a sampler error deep in nutpie)."""
    logps = model.point_logps()
    bad = {name: value for name, value in logps.items() if not np.isfinite(value)}
    if bad:
        raise ValueError(
            "cannot start sampling: the log-probability is not finite at the initial point for "
            + ", ".join(f"{name} (logp = {value})" for name, value in bad.items())
            + "; check that the data lie in the likelihood's support and that each prior "
            "(and any initval) is proper at its initial value")


def sample_posterior(model: pm.Model, draws: int = 1000, tune: int = 1000, chains: int = 4,
                     random_seed: int | None = None, sampler: str = "nutpie",
                     progressbar: bool = False, target_accept: float | None = None,
                     adaptation: str | None = None, init_from_prior: bool = False,
                     **kwargs) -> xr.DataTree:
    """NUTS posterior as an ``xarray.DataTree`` with posterior, sample_stats, observed_data
    and the pointwise log_likelihood (for LOO and predictive scores).

    ``sampler``: "nutpie" (default), "pymc", "numpyro" or "blackjax" (PyMC's ``nuts_sampler``).
    ``adaptation`` (nutpie only): the mass-matrix adaptation, "diag" (nutpie's default) or
    "low_rank" (diagonal plus low-rank corrections: adapts to strong posterior correlations,
    as in neural networks). ``init_from_prior``: start every chain at its own draw from the
    prior (nutpie's "prior" initialisation, no extra jitter; per-chain ``initvals`` for the
    other samplers) instead of the support point plus U(-1, 1) jitter.
    """
    draws = check_positive_int(draws, "draws")
    tune = check_positive_int(tune, "tune", minimum=0)
    chains = check_positive_int(chains, "chains", maximum=64)
    samplers = ("nutpie", "pymc", "numpyro", "blackjax")
    if sampler not in samplers:
        raise ValueError(f"sampler must be one of {samplers}, got {sampler!r}")
    if target_accept is not None:
        kwargs["target_accept"] = target_accept
    if adaptation is not None:
        check_adaptation(adaptation, sampler)
        if sampler == "nutpie":
            kwargs["nuts"] = {**kwargs.get("nuts", {}), "adaptation": adaptation}
    if init_from_prior:
        if sampler == "nutpie":
            kwargs["compile_kwargs"] = {**kwargs.get("compile_kwargs", {}),
                                        **NUTPIE_PRIOR_INIT}
        else:
            kwargs["initvals"] = prior_initvals(model, chains, random_seed)
    check_start(model)
    idata = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                      nuts_sampler=sampler, progressbar=progressbar, model=model, **kwargs)
    _check_complete(idata, draws, chains)
    pm.compute_log_likelihood(idata, model=model, progressbar=False)
    return idata


ADAPTATIONS = ("diag", "low_rank")
# nutpie: draw each chain's start from the prior, without the default U(-1, 1) jitter on top
NUTPIE_PRIOR_INIT = {"default_initialization_strategy": "prior", "jitter_rvs": set()}


def prior_initvals(model: pm.Model, chains: int, seed: int | None) -> list[dict]:
    """One draw of the free variables from their priors per chain (``pm.sample(initvals=)``)."""
    rvs = model.free_RVs
    draws = pm.draw(rvs, draws=chains, random_seed=seed)
    draws = draws if isinstance(draws, list) else [draws]
    if chains == 1:  # pm.draw(draws=1) returns one draw without the leading draws axis
        draws = [np.asarray(d)[None] for d in draws]
    return [{rv.name: np.asarray(d[i]) for rv, d in zip(rvs, draws)} for i in range(chains)]


def check_adaptation(adaptation: str, sampler: str = "nutpie") -> None:
    if adaptation not in ADAPTATIONS:
        raise ValueError(f"adaptation must be one of {ADAPTATIONS}, got {adaptation!r}")
    if adaptation != "diag" and sampler != "nutpie":
        raise ValueError(f"adaptation={adaptation!r} needs sampler='nutpie' (got {sampler!r})")


def _check_complete(idata, draws: int, chains: int) -> None:
    """Samplers (PyMC's, nutpie) catch Ctrl-C and return the draws so far; a partial posterior
    must never reach a report, so an interrupted run is re-raised as KeyboardInterrupt."""
    post = idata["posterior"]
    got_draws, got_chains = post.sizes.get("draw", 0), post.sizes.get("chain", 0)
    if got_draws < draws or got_chains < chains:
        raise KeyboardInterrupt(f"sampling was interrupted: {got_chains} chain(s) x {got_draws} "
                                f"draws of the {chains} x {draws} asked for")
    # nutpie, interrupted, returns a trace of full length whose unfinished draws are NaN
    missing = sum(int(np.isnan(post[v].values).sum()) for v in post.data_vars
                  if np.issubdtype(post[v].dtype, np.floating))
    if missing:
        raise KeyboardInterrupt(f"sampling was interrupted: {missing} posterior values are NaN "
                                "(unfinished draws); nothing is reported")
    if interrupted():
        raise KeyboardInterrupt("sampling was interrupted")


# ------------------------------------------------------------------------------ diagnostics
@dataclass
class Diagnostics:
    """Convergence diagnostics with pass/fail per threshold (see :func:`diagnose`)."""

    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    e_bfmi_min: float
    checks: dict[str, bool]
    note: str = ""  # e.g. how R-hat was computed for a single chain

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def failures(self) -> str:
        """The failed checks in words: 'r_hat_max = 1.012 (needs <= 1.01), ...'."""
        frame = self.to_frame()
        return ", ".join(f"{k} = {r['value']:.4g} (needs {r['threshold']})"
                         for k, r in frame.iterrows() if not r["passed"])

    def to_frame(self) -> pd.DataFrame:
        rows = [
            ("r_hat_max", self.r_hat_max, f"<= {RHAT_MAX}" + (f" ({self.note})" if self.note
                                                               else "")),
            ("ess_bulk_min", self.ess_bulk_min, f">= {ESS_MIN}"),
            ("ess_tail_min", self.ess_tail_min, f">= {ESS_MIN}"),
            ("divergences", self.divergences, "== 0"),
            ("e_bfmi_min", self.e_bfmi_min, f">= {EBFMI_MIN}"),
        ]
        return pd.DataFrame([{"check": n, "value": v, "threshold": t, "passed": self.checks[n]}
                             for n, v, t in rows]).set_index("check")


def _extreme(tree, fn) -> float:
    values = [np.asarray(tree[v].values, dtype=float).ravel() for v in tree.data_vars]
    values = np.concatenate(values) if values else np.array([np.nan])
    values = values[np.isfinite(values)]
    return float(fn(values)) if values.size else float("nan")


def diagnose(idata: xr.DataTree, var_names=None) -> Diagnostics:
    """Max R-hat (rank-normalised), min bulk and tail ESS, divergences and min E-BFMI.

    Thresholds: R-hat <= 1.01, ESS >= 400, no divergences, E-BFMI >= 0.3. All computed by
    ArviZ; Deterministics are included, so a hierarchical model's group effects count.
    """
    import arviz as az

    note = ""
    post = idata["posterior"]
    if post.sizes.get("chain", 1) == 1:
        # ArviZ's R-hat is NaN for one chain; split-R-hat of its two halves (as if they were
        # two chains) still checks that the chain is stationary, which is all one chain can show
        half = post.sizes["draw"] // 2
        halves = [post.to_dataset().isel(draw=slice(k * half, (k + 1) * half))
                  .assign_coords(draw=np.arange(half), chain=[k]) for k in (0, 1)]
        rhat_tree = xr.DataTree.from_dict({"posterior": xr.concat(halves, dim="chain")})
        note = ("one chain: R-hat compares its two halves (at least 2 chains are needed to see "
                "chains that settle in different places)")
    else:
        rhat_tree = idata
    rhat = _extreme(az.rhat(rhat_tree, var_names=var_names).dataset, np.max)
    ess_bulk = _extreme(az.ess(idata, var_names=var_names, method="bulk").dataset, np.min)
    ess_tail = _extreme(az.ess(idata, var_names=var_names, method="tail").dataset, np.min)
    divergences = int(idata["sample_stats"]["diverging"].sum())
    bfmi = float(np.min(az.bfmi(idata).dataset["energy"].values))
    checks = {
        "r_hat_max": bool(rhat <= RHAT_MAX),
        "ess_bulk_min": bool(ess_bulk >= ESS_MIN),
        "ess_tail_min": bool(ess_tail >= ESS_MIN),
        "divergences": divergences == 0,
        "e_bfmi_min": bool(bfmi >= EBFMI_MIN),
    }
    return Diagnostics(rhat, ess_bulk, ess_tail, divergences, bfmi, checks, note)


def rank_test(idata: xr.DataTree, var_names=None) -> pd.Series:
    """p-value of ArviZ's multi-chain rank uniformity test ("mtc_c", the test ``plot_rank``
    prints on each panel) per scalar, labelled from dims/coords. Ranks are pooled over all
    chains and draws and scaled to (0, 1), as ``plot_rank`` does. A small p-value says the
    chains' rank distributions differ even where R-hat passes (it is reported beside R-hat,
    not folded into :func:`diagnose`'s thresholds)."""
    from scipy.stats import rankdata

    post = idata["posterior"].to_dataset()
    out = {}
    if post.sizes.get("chain", 1) < 2:
        return pd.Series(out, dtype=float)
    for name in var_names if var_names is not None else list(post.data_vars):
        da = post[name].transpose("chain", "draw", ...)
        flat = da.values.reshape(da.shape[0], da.shape[1], -1)
        labels = _flat_by_label(da.isel(chain=0, draw=0, drop=True), name).index
        for j, label in enumerate(labels):
            x = flat[..., j]
            if not np.all(np.isfinite(x)) or np.ptp(x) == 0:
                continue
            r = rankdata(x.ravel()).reshape(x.shape) / (x.size + 1)
            ds = xr.Dataset({"r": (("chain", "draw"), r)})
            out[label] = float(ds.azstats.mchain_uniformity_test(dim=("chain", "draw"))[0]["r"])
    return pd.Series(out, dtype=float)


# ------------------------------------------------------------------------------ comparison
def compare(mle: MLEResult, idata: xr.DataTree, prob: float = 0.95) -> pd.DataFrame:
    """MLE and posterior side by side, one row per scalar parameter.

    Columns: ``mle``, ``se``, ``wald_lb``/``wald_ub`` (Wald interval at ``prob``),
    ``post_mean``, ``post_sd``, ``eti_lb``/``eti_ub`` (equal-tailed credible interval at the
    same ``prob``; ArviZ 1.x would default to 89%), ``shift_in_se`` = (posterior mean - MLE)/SE
    and ``width_ratio`` = credible width / Wald width.
    """
    names = [n for n in mle.params if n in idata["posterior"].data_vars]
    summary = posterior_summary(idata, var_names=names, prob=prob)
    pct = f"{round(prob * 100):d}"
    summary = summary.rename(columns={"mean": "post_mean", "sd": "post_sd",
                                      f"eti{pct}_lb": "eti_lb", f"eti{pct}_ub": "eti_ub"})
    table = mle.table(prob).join(summary[["post_mean", "post_sd", "eti_lb", "eti_ub"]],
                                 how="inner")
    table["shift_in_se"] = (table["post_mean"] - table["mle"]) / table["se"]
    table["width_ratio"] = (table["eti_ub"] - table["eti_lb"]) / (table["wald_ub"] - table["wald_lb"])
    return table


def _point_tree(model: pm.Model, params: dict[str, np.ndarray]) -> xr.DataTree:
    """A one-chain, one-draw 'posterior' holding a point estimate (for pm.compute_log_likelihood)."""
    data = {}
    for rv in model.free_RVs:
        value = np.asarray(params[rv.name])
        dims = list(model.named_vars_to_dims.get(rv.name) or [])
        if len(dims) != value.ndim:
            dims = [f"{rv.name}_dim_{i}" for i in range(value.ndim)]
        data[rv.name] = (["chain", "draw", *dims], value[None, None])
    coords = {d: model.coords[d] for d in model.coords}
    ds = xr.Dataset(data, coords={k: list(v) for k, v in coords.items() if v is not None})
    return xr.DataTree.from_dict({"posterior": ds})


def pointwise_log_likelihood(model: pm.Model, posterior: xr.DataTree) -> np.ndarray:
    """log p(y_i | theta_s) as an array (samples, observations), computed by PyMC."""
    ll = pm.compute_log_likelihood(posterior, model=model, extend_inferencedata=False,
                                   progressbar=False)
    name = model.observed_RVs[0].name
    arr = ll[name]  # extend_inferencedata=False returns the log_likelihood dataset itself
    sample_dims = ["chain", "draw"]
    arr = arr.stack(sample=sample_dims).transpose("sample", ...)
    return arr.values.reshape(arr.shape[0], -1)


def _check_test_data(test_data: dict) -> None:
    """Held-out data must be finite numbers: a NaN or inf would make every score NaN."""
    from models.validation import DataError

    for name, values in test_data.items():
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"test data {name!r} must be numeric") from None
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])[:5].tolist() if arr.ndim else [0]
            raise DataError(f"test data {name!r} has NaN or inf in row(s) {rows}: refuse to "
                            "score held-out data that the model cannot evaluate")


def _check_support(ll: np.ndarray, test_data: dict) -> None:
    """A test point outside the likelihood's support (a logistic outcome of 2, a negative
    count) has log-likelihood -inf or NaN under every draw: refuse it, naming the rows."""
    from models.validation import DataError

    bad = ~np.isfinite(ll).any(axis=0)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataError(f"test data: row(s) {rows} lie outside the likelihood's support "
                        "(log-likelihood -inf or NaN under every posterior draw), e.g. an outcome "
                        "the family cannot produce; check them against the training data's type")


def predictive_log_score(model: pm.Model, mle: MLEResult, idata: xr.DataTree,
                         **test_data) -> pd.DataFrame:
    """Held-out log score of the plug-in MLE predictive vs the posterior predictive.

    ``test_data`` are the data containers to swap in (e.g. ``X=X_test, y=y_test``); the model
    is not recompiled and its training data are restored afterwards. Posterior predictive
    density per observation: log mean_s p(y_i | theta_s) (log-sum-exp). Rows: "mle_plugin",
    "posterior_predictive"; columns: total and per-observation score in nats and bits.
    """
    _check_test_data(test_data)
    posterior = xr.DataTree.from_dict({"posterior": idata["posterior"].to_dataset()})
    with data_swapped(model, **test_data):
        ll_post = pointwise_log_likelihood(model, posterior)
        params = {n: np.nan_to_num(v) for n, v in mle.params.items()}
        ll_mle = pointwise_log_likelihood(model, _point_tree(model, params))[0]
    _check_support(ll_post, test_data)
    lppd = special.logsumexp(ll_post, axis=0) - np.log(ll_post.shape[0])
    rows = {}
    for label, pointwise in (("mle_plugin", ll_mle), ("posterior_predictive", lppd)):
        n = pointwise.size
        rows[label] = {"n_test": n, "log_score_nats": pointwise.sum(),
                       "per_obs_nats": pointwise.mean(), "per_obs_bits": pointwise.mean() / LOG2}
    return pd.DataFrame(rows).T


def predictive_class_probs(model: pm.Model, mle: MLEResult, idata: xr.DataTree, X,
                           n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, K) for new ``X``: plug-in MLE and posterior predictive.

    Generic over binary and categorical likelihoods: with every outcome set to class k, the
    pointwise likelihood IS p(y = k | x, theta); the posterior predictive probability is its
    mean over draws. The model's training data are restored afterwards.
    """
    X = np.asarray(X, dtype=float)
    posterior = xr.DataTree.from_dict({"posterior": idata["posterior"].to_dataset()})
    params = {n: np.nan_to_num(v) for n, v in mle.params.items()}
    plugin, post = [], []
    for k in range(n_classes):
        y_k = np.full(X.shape[0], k, dtype="int64")
        with data_swapped(model, X=X, y=y_k):
            post.append(np.exp(pointwise_log_likelihood(model, posterior)).mean(axis=0))
            plugin.append(np.exp(pointwise_log_likelihood(model, _point_tree(model, params))[0]))
    return np.stack(plugin, axis=1), np.stack(post, axis=1)


class CompiledSampler:
    """NUTS for many data sets on ONE compiled model (nutpie's ``with_data``): compile once,
    swap data per fit. For sweeps and simulations, where ``pm.sample`` would recompile each
    time (about 3 s per call for a small logistic regression here, vs 0.1-0.2 s per fit).

    ``sample(draws, tune, chains, random_seed, **data)`` returns a DataTree with the posterior
    and sample_stats (no log_likelihood: use :func:`sample_posterior` for a report fit).
    """

    def __init__(self, model: pm.Model, adaptation: str = "diag",
                 target_accept: float | None = None, init_from_prior: bool = False):
        """``adaptation``/``target_accept``/``init_from_prior``: options used by every
        ``sample`` call (see :func:`sample_posterior`)."""
        import nutpie

        check_adaptation(adaptation)
        if target_accept is not None and not 0 < target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
        self._nutpie = nutpie
        self.model = model
        self.options = {"adaptation": adaptation}
        if target_accept is not None:
            self.options["target_accept"] = float(target_accept)
        self.compiled = nutpie.compile_pymc_model(model, **(NUTPIE_PRIOR_INIT if init_from_prior
                                                            else {}))

    def sample(self, draws: int = 1000, tune: int = 1000, chains: int = 2,
               random_seed: int | None = None, cores: int | None = None, **data) -> xr.DataTree:
        """``cores``: threads for the chains (default: all cores; 1 inside a Dask worker)."""
        check_positive_int(draws, "draws")
        check_positive_int(tune, "tune", minimum=0)
        check_positive_int(chains, "chains", maximum=64)
        compiled = self.compiled.with_data(**{k: np.asarray(v) for k, v in data.items()}) \
            if data else self.compiled
        extra = {"cores": int(cores)} if cores else {}
        tree = self._nutpie.sample(compiled, draws=draws, tune=tune, chains=chains,
                                   seed=random_seed, progress_bar=False, **self.options, **extra)
        _check_complete(tree, draws, chains)
        return tree


# Chain stacking is trusted only if, in every chain, at most this share of observations has a
# Pareto k above ArviZ's good_k (min(1 - 1/log10(S), 0.7)): a few unreliable terms barely move
# a sum over hundreds of points; past that the weights reward the chain whose LOO is most
# over-estimated (measured: a 50-unit ReLU net on yacht had 47-66% of points above 0.7, and
# stacking put weight 1 on a chain that then scored -4.2 nats per test point vs -1.2 pooled).
STACKING_MAX_BAD_K_SHARE = 0.01


@dataclass
class ChainStacking:
    """Result of :func:`stack_chains`: one entry per chain."""

    weights: np.ndarray  # stacking weights, sum to 1 (equal weights when not reliable)
    elpd_loo: np.ndarray  # each chain's own PSIS-LOO elpd on the training data (nats)
    pareto_k_max: np.ndarray  # largest Pareto k of each chain's PSIS-LOO
    pareto_k_bad: np.ndarray  # share of observations with k > good_k (LOO unreliable there)
    stacking_weights: np.ndarray  # what stacking chose, whether used or not
    good_k: float = 0.7

    @property
    def reliable(self) -> bool:
        return bool(np.all(self.pareto_k_bad <= STACKING_MAX_BAD_K_SHARE))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"weight used": self.weights,
                             "stacking weight": self.stacking_weights,
                             "elpd_loo (train)": self.elpd_loo,
                             "Pareto k max": self.pareto_k_max,
                             f"share k > {self.good_k:.2f}": self.pareto_k_bad},
                            index=pd.Index(range(len(self.weights)), name="chain"))


def stack_chains(idata: xr.DataTree, model: pm.Model) -> ChainStacking:
    """Stacking weights for chains that do not mix (Yao, Vehtari & Gelman 2022, "Stacking for
    non-mixing Bayesian computations", JMLR 23(79)).

    When each chain is stationary but the chains sit in different modes, pooling them gives
    every mode the weight 1/chains, whatever its posterior mass. Stacking instead treats each
    chain as its own predictive distribution and weights the chains to maximise the
    leave-one-out log score of their mixture on the training data: each chain's pointwise
    elpd from PSIS-LOO (``arviz.loo``), the weights from ``arviz.compare(method="stacking")``.
    The pointwise log-likelihood is ``idata``'s own or computed by PyMC on ``model``'s data.
    Use the weights with the chains' draws (weight / draws per draw). Not a posterior: a
    predictive combination, and only as good as each chain's LOO: when more than
    ``STACKING_MAX_BAD_K_SHARE`` of any chain's observations have Pareto k above ArviZ's
    ``good_k``, ``reliable`` is False and ``weights`` fall back to equal (``stacking_weights``
    keeps what stacking chose, for the record).
    """
    import arviz as az

    if "log_likelihood" in idata.children:
        ll = idata["log_likelihood"].to_dataset()
    else:
        ll = pm.compute_log_likelihood(idata, model=model, extend_inferencedata=False,
                                       progressbar=False)
    post = idata["posterior"].to_dataset()
    chains = post.sizes["chain"]
    if chains < 2:
        raise ValueError(f"stack_chains needs at least 2 chains, got {chains}")
    elpd, k_max, k_bad, good_k = {}, [], [], 0.7
    for c in range(chains):
        tree = xr.DataTree.from_dict({"posterior": post.isel(chain=[c]),
                                      "log_likelihood": ll.isel(chain=[c])})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the Pareto-k warning: reported in the result
            elpd[c] = az.loo(tree, pointwise=True)
        k = np.asarray(elpd[c].pareto_k).ravel()
        good_k = float(getattr(elpd[c], "good_k", 0.7))
        k_max.append(float(k.max()))
        k_bad.append(float((k > good_k).mean()))
    table = az.compare(elpd, method="stacking", round_to="none")
    stacked = table.loc[list(range(chains)), "weight"].to_numpy(dtype=float)
    reliable = max(k_bad) <= STACKING_MAX_BAD_K_SHARE
    return ChainStacking(weights=stacked if reliable else np.full(chains, 1.0 / chains),
                         elpd_loo=np.array([float(elpd[c].elpd) for c in range(chains)]),
                         pareto_k_max=np.array(k_max), pareto_k_bad=np.array(k_bad),
                         stacking_weights=stacked, good_k=good_k)
