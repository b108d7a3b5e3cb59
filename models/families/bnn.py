r"""Bayesian neural networks (fully connected) with initialisation-scaled weight priors.

For a layer with fan-in :math:`n_{in}` and fan-out :math:`n_{out}`, each weight's prior is

=================  ==========================================  =========================
``prior``          distribution                                variance
=================  ==========================================  =========================
he_normal          :math:`\mathcal N(0, 2/n_{in})`              :math:`2/n_{in}`
he_uniform         :math:`U(\pm\sqrt{6/n_{in}})`                :math:`2/n_{in}`
xavier_normal      :math:`\mathcal N(0, 2/(n_{in}+n_{out}))`    :math:`2/(n_{in}+n_{out})`
xavier_uniform     :math:`U(\pm\sqrt{6/(n_{in}+n_{out})})`      :math:`2/(n_{in}+n_{out})`
lecun_normal       :math:`\mathcal N(0, 1/n_{in})`              :math:`1/n_{in}`
standard_normal    :math:`\mathcal N(0, 1)`                     1 (the usual BNN default)
=================  ==========================================  =========================

He scales suit ReLU (they keep the pre-activation second moment constant through depth),
Xavier/Glorot scales suit tanh and sigmoid. Biases: :math:`b \sim \mathcal N(0, \sigma_b^2)`
with ``bias_sd`` (default 0.1: small next to the unit-scale signal that the weights
propagate, so the weight prior decides the function class). Regression adds a learned noise
scale :math:`\sigma \sim \text{HalfNormal}(1)` (targets are expected standardised).

Likelihoods: ``"normal"`` (:math:`y \sim \mathcal N(f(x), \sigma^2)`), ``"bernoulli"``
(logit link), ``"categorical"`` (softmax over K outputs). Coordinates: ``feature`` (input
columns), ``hidden_<l>`` (units of layer l), ``output``. The prior is also where the MLE
optimiser and the chains start (:func:`prior_starts`): the initialisation IS the prior.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from models.base.checks import as_design_matrix, as_labels, as_outcome, check_aligned
from models.base.coords import OBS_DIM

PRIORS = ("he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "lecun_normal",
          "standard_normal")
ACTIVATIONS = ("relu", "tanh", "sigmoid")
LIKELIHOODS = ("normal", "bernoulli", "categorical")


@dataclass(frozen=True)
class NetworkSpec:
    """A fully connected network: hidden layer widths, activation, weight prior, likelihood and
    bias prior sd, validated when made. ``build_model(X, y)`` builds it; :func:`network_spec`
    reads it back from a model that :func:`build` made."""

    hidden: tuple[int, ...] = (50,)
    activation: str = "relu"
    prior: str = "he_normal"
    likelihood: str = "normal"
    bias_sd: float = 0.1

    def __post_init__(self):
        hidden = tuple(int(h) for h in self.hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must list at least one positive layer width, got {list(hidden)}")
        object.__setattr__(self, "hidden", hidden)
        _check(self.activation, ACTIVATIONS, "activation")
        _check(self.prior, PRIORS, "prior")
        _check(self.likelihood, LIKELIHOODS, "likelihood")
        if not self.bias_sd > 0:
            raise ValueError(f"bias_sd must be positive, got {self.bias_sd}")

    @property
    def depth(self) -> int:
        return len(self.hidden)

    def build_model(self, X, y, classes=None) -> pm.Model:
        return build(X, y, self.hidden, self.activation, self.prior, self.likelihood,
                     self.bias_sd, classes)


# The spec of every model :func:`build` made, for :func:`network_spec` (weakly held: a
# discarded model takes its entry with it).
_SPECS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def network_spec(model: pm.Model) -> NetworkSpec:
    """The :class:`NetworkSpec` a model was built from (``build`` records it)."""
    try:
        return _SPECS[model]
    except KeyError:
        raise ValueError("network_spec: this model was not made by models.families.bnn.build") from None


def weight_variance(prior: str, n_in: int, n_out: int) -> float:
    """The prior variance of one weight of a layer with this fan-in and fan-out."""
    return {"he_normal": 2 / n_in, "he_uniform": 2 / n_in,
            "xavier_normal": 2 / (n_in + n_out), "xavier_uniform": 2 / (n_in + n_out),
            "lecun_normal": 1 / n_in, "standard_normal": 1.0}[_check(prior, PRIORS, "prior")]


def _check(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def weight_prior(prior: str, name: str, n_in: int, n_out: int, dims):
    """The PyMC variable for a weight matrix under ``prior``."""
    var = weight_variance(prior, n_in, n_out)
    if prior.endswith("uniform"):
        half_width = np.sqrt(3 * var)  # Var U(-a, a) = a^2 / 3
        return pm.Uniform(name, -half_width, half_width, dims=dims)
    return pm.Normal(name, 0.0, np.sqrt(var), dims=dims)


def activation_fn(name: str):
    return {"relu": lambda z: pt.maximum(z, 0.0), "tanh": pt.tanh,
            "sigmoid": pm.math.sigmoid}[_check(name, ACTIVATIONS, "activation")]


def numpy_activation(name: str):
    return {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh,
            "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[_check(name, ACTIVATIONS, "activation")]


def build(X, y, hidden: Sequence[int] = (50,), activation: str = "relu",
          prior: str = "he_normal", likelihood: str = "normal", bias_sd: float = 0.1,
          classes=None) -> pm.Model:
    """A BNN ``f(x)`` with ``len(hidden)`` hidden layers and the chosen likelihood.

    Variables: ``w1, b1, ..., w<L>, b<L>`` for hidden layers, ``w_out, b_out`` for the output
    layer, ``sigma`` (normal likelihood). Data containers ``X`` and ``y`` (swap with
    :func:`models.inference.set_data`).
    """
    spec = NetworkSpec(tuple(hidden), activation, prior, likelihood, bias_sd)
    act = activation_fn(activation)
    hidden = list(spec.hidden)
    check_aligned(("X", X), ("y", y))
    X_values, names = as_design_matrix(X, "X", check_columns=False)
    n = X_values.shape[0]
    coords = {"feature": names, OBS_DIM: np.arange(n)}
    if likelihood == "categorical":
        y_values, class_labels = as_labels(y, n, "y", classes)
        coords["output"] = [str(c) for c in class_labels]
    else:
        y_values = as_outcome(y, n, "y", kind="binary" if likelihood == "bernoulli" else "real")
        coords["output"] = ["f"]
    widths = [X_values.shape[1], *hidden, len(coords["output"])]
    for layer, width in enumerate(hidden, start=1):
        coords[f"hidden_{layer}"] = np.arange(width)
    with pm.Model(coords=coords) as model:
        X_data = pm.Data("X", X_values, dims=(OBS_DIM, "feature"))
        y_data = pm.Data("y", y_values, dims=OBS_DIM)
        h, in_dim = X_data, "feature"
        for layer in range(1, len(widths) - 1):
            out_dim = f"hidden_{layer}"
            w = weight_prior(prior, f"w{layer}", widths[layer - 1], widths[layer], (in_dim, out_dim))
            b = pm.Normal(f"b{layer}", 0.0, bias_sd, dims=out_dim)
            h, in_dim = act(h @ w + b), out_dim
        w = weight_prior(prior, "w_out", widths[-2], widths[-1], (in_dim, "output"))
        b = pm.Normal("b_out", 0.0, bias_sd, dims="output")
        _observe(h @ w + b, y_data, likelihood)
    _SPECS[model] = spec
    return model


def build_product(X, y, units: int = 3, prior: str = "xavier_normal",
                  likelihood: str = "normal", bias_sd: float = 0.1,
                  power: float = 1.0) -> pm.Model:
    """The one-hidden-layer tanh net of :func:`build`, sampled in product coordinates.

    Hidden unit j's output weight v_j, input weights w_j and bias b_j become ``r[j]`` = log v_j
    and ``u[:, j]`` = v_j (w_j, b_j). Where tanh is nearly linear the data identify only the
    product of a unit's output and input weights: a ridge that narrows where v_j is large, and
    NUTS diverges there (README, "Longer tuning, and where wine's divergences sit"). In these
    coordinates the ridge runs along ``r`` alone. v_j's sign is folded to positive, which is
    exact because tanh is odd and the prior symmetric, so the posterior over functions is
    :func:`build`'s. The prior is :func:`build`'s, written in the new coordinates with the
    Jacobian of (r, u) -> (v, w, b): log J = r_j - (d + 1) r_j per unit, for d inputs.
    Deterministics ``w1``, ``b1``, ``w_out`` carry :func:`build`'s names and dims, so
    :func:`forward` and the function-space checks read the draws unchanged. Start chains at
    nets fitted with :func:`build` through :func:`product_start`. Normal weight priors and a
    normal or bernoulli likelihood only (a uniform prior's edges would be hard walls in these
    coordinates; several outputs would need a vector v_j).

    ``power`` a in (0, 1]: ``u[:, j]`` = v_j^a (w_j, b_j) (log J = r_j - a (d + 1) r_j). a = 1
    is the product above; smaller a is partly non-centred (Gorinova et al. 2020): where v_j is
    small the prior alone holds w_j, and u_j's scale shrinks only as v_j^a, a milder funnel
    than a = 1's, while the ridge at large v_j narrows as v_j^(a - 1) instead of the network
    weights' 1 / v_j. ``BNNProtocol(coordinates="product", product_power=a)`` samples in
    them."""
    normal_priors = tuple(p for p in PRIORS if p.endswith("normal"))
    _check(prior, normal_priors, "prior (product coordinates)")
    _check(likelihood, ("normal", "bernoulli"), "likelihood (product coordinates)")
    if int(units) < 1:
        raise ValueError(f"units must be a positive number of tanh units, got {units!r}")
    a = _check_power(power)
    check_aligned(("X", X), ("y", y))
    X_values, names = as_design_matrix(X, "X", check_columns=False)
    n, d, H = X_values.shape[0], X_values.shape[1], int(units)
    y_values = as_outcome(y, n, "y", kind="binary" if likelihood == "bernoulli" else "real")
    bias_row = "bias"
    while bias_row in names:  # a column named "bias" must not collide with the bias row
        bias_row += "_"
    coords = {"feature": names, "input_row": [*names, bias_row], OBS_DIM: np.arange(n),
              "hidden_1": np.arange(H), "output": ["f"]}
    s_in = np.sqrt(weight_variance(prior, d, H))
    s_out = np.sqrt(weight_variance(prior, H, 1))
    with pm.Model(coords=coords) as model:
        X_data = pm.Data("X", X_values, dims=(OBS_DIM, "feature"))
        y_data = pm.Data("y", y_values, dims=OBS_DIM)
        r = pm.Flat("r", dims="hidden_1")
        u = pm.Flat("u", dims=("input_row", "hidden_1"))
        v = pt.exp(r)
        wb = u * pt.exp(-a * r)[None, :]
        w1, b1 = wb[:d], wb[d]
        # the folded prior of v is half-normal (twice the normal density on v > 0)
        pm.Potential("prior_in_product_coordinates",
                     pm.logp(pm.HalfNormal.dist(s_out), v).sum() + r.sum()
                     + pm.logp(pm.Normal.dist(0.0, s_in), w1).sum()
                     + pm.logp(pm.Normal.dist(0.0, bias_sd), b1).sum() - a * (d + 1) * r.sum())
        pm.Deterministic("w1", w1, dims=("feature", "hidden_1"))
        pm.Deterministic("b1", b1, dims="hidden_1")
        w_out = pm.Deterministic("w_out", v[:, None], dims=("hidden_1", "output"))
        b_out = pm.Normal("b_out", 0.0, bias_sd, dims="output")
        _observe(pt.tanh(X_data @ w1 + b1) @ w_out + b_out, y_data, likelihood)
    return model


def _observe(f, y_data, likelihood: str) -> None:
    """The likelihood of :func:`build` and :func:`build_product` (inside the model's context):
    ``y_obs`` given the network's output ``f`` (observations x outputs); a normal likelihood
    adds the noise sd ``sigma`` ~ HalfNormal(1)."""
    if likelihood == "normal":
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y_obs", mu=f[:, 0], sigma=sigma, observed=y_data, dims=OBS_DIM)
    elif likelihood == "bernoulli":
        pm.Bernoulli("y_obs", logit_p=f[:, 0], observed=y_data, dims=OBS_DIM)
    else:
        pm.Categorical("y_obs", logit_p=f, observed=y_data, dims=OBS_DIM)


def _check_power(power) -> float:
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0 < power <= 1:
        raise ValueError(f"power must be a number in (0, 1] (u = v**power (w, b)), got {power!r}")
    return float(power)


def product_start(params: dict, power: float = 1.0) -> dict:
    """A net of :func:`build` (one tanh layer, one output: ``w1``, ``b1``, ``w_out``,
    ``b_out`` and, for a normal likelihood, ``sigma``) as a start point of
    :func:`build_product` with the same ``power`` a: each unit's signs flipped where its
    output weight is negative (the same function), then r = log v and u = v^a (w, b). An
    output weight of exactly 0 has no product coordinates and is refused."""
    a = _check_power(power)
    v = np.asarray(params["w_out"], dtype=float)[:, 0]
    if np.any(v == 0):
        raise ValueError("product_start: a hidden unit's output weight is exactly 0 "
                         f"(units {np.flatnonzero(v == 0).tolist()}); it has no log scale")
    sign = np.sign(v)
    w = np.asarray(params["w1"], dtype=float) * sign[None, :]
    b = np.asarray(params["b1"], dtype=float) * sign
    v = np.abs(v)
    start = {"r": np.log(v), "u": np.vstack([w, b[None, :]]) * v[None, :] ** a,
             "b_out": np.asarray(params["b_out"], dtype=float)}
    if "sigma" in params:
        start["sigma"] = np.asarray(params["sigma"], dtype=float)
    return start


def forward(params: dict, X, activation: str, n_hidden: int) -> np.ndarray:
    """Network outputs for weights in ``params`` with leading sample dims: (..., N, outputs).

    Hand-written forward pass in numpy (a few matrix products): far cheaper than a
    posterior-predictive call per test set, and it is what function-space diagnostics need.
    """
    act = numpy_activation(activation)
    h = np.asarray(X, dtype=float)
    for layer in range(1, n_hidden + 1):
        w, b = np.asarray(params[f"w{layer}"]), np.asarray(params[f"b{layer}"])
        h = act(h @ w + b[..., None, :])
    return h @ np.asarray(params["w_out"]) + np.asarray(params["b_out"])[..., None, :]


def unit_scales(posterior, n_hidden: int) -> dict:
    """Per unit j of the last hidden layer, the size of its output weights (``|w_out[j]|``;
    the norm over outputs for several) and of its input weights (``||w<L>[:, j]||``), each a
    (chain, draw) array: the two scales whose product alone the data identify while the unit
    stays in its activation's near-linear range (the ridge :func:`divergence_locations
    <models.inference.divergence_locations>` points to when divergences sit at a large output
    and small input weight). ``posterior``: a Dataset or DataTree node with w<L> and w_out."""
    w_in = np.asarray(posterior[f"w{n_hidden}"].transpose("chain", "draw", ...).values, dtype=float)
    w_out = np.asarray(posterior["w_out"].transpose("chain", "draw", ...).values, dtype=float)
    out = {}
    for j in range(w_out.shape[2]):
        out[f"|w_out[{j}]|" if w_out.shape[3] == 1 else f"||w_out[{j}, :]||"] = np.linalg.norm(
            w_out[:, :, j, :], axis=-1)
        out[f"||w{n_hidden}[:, {j}]||"] = np.linalg.norm(w_in[:, :, :, j], axis=-1)
    return out


def canonical_hidden_order(w1, b1, w_out, odd: bool):
    """Remove the permutation (and, for odd activations, sign) symmetry of one hidden layer.

    Arrays carry leading sample dims: w1 (..., d, H), b1 (..., H), w_out (..., H, K). For an
    odd activation (tanh), unit j's (w1[:, j], b1[j], w_out[j]) and its negation compute the
    same function, so each unit is flipped to make w_out[j, 0] >= 0; then units are sorted by
    w_out[j, 0]. Weight-space R-hat after this ordering is meaningful; before it, it is not.
    """
    w1, b1, w_out = (np.array(a, dtype=float, copy=True) for a in (w1, b1, w_out))
    if odd:
        sign = np.where(w_out[..., 0] < 0, -1.0, 1.0)
        w1 *= sign[..., None, :]
        b1 *= sign
        w_out *= sign[..., None]
    order = np.argsort(w_out[..., 0], axis=-1)
    w1 = np.take_along_axis(w1, order[..., None, :], axis=-1)
    b1 = np.take_along_axis(b1, order, axis=-1)
    w_out = np.take_along_axis(w_out, order[..., None], axis=-2)
    return w1, b1, w_out
