r"""Full-network Laplace with the generalised Gauss-Newton (GGN) Hessian and the linearised
predictive (Immer et al. 2021; Daxberger et al. 2021, "Laplace Redux"), around a MAP net.

With a Gaussian likelihood the GGN of the negative log-likelihood is
:math:`G = J^\top J / \sigma^2`, where :math:`J` (N x P) is the Jacobian of the network output
with respect to all P weights and biases at the MAP net. The posterior is approximated by
:math:`\mathcal N(\theta_*, (G + \alpha I)^{-1})` and the predictive is that of the network
linearised at :math:`\theta_*`: :math:`f(x) \sim \mathcal N(f_*(x),\ J(x) (G + \alpha
I)^{-1} J(x)^\top)`, :math:`y \sim \mathcal N(f_*(x), \cdot + \sigma^2)`, with :math:`\sigma`
the MAP net's (``noise="map"``, the default). The prior precision :math:`\alpha` is chosen post
hoc by the Laplace evidence

.. math::
    \log p(y \mid \theta_*, \sigma) - \tfrac\alpha2 \lVert\theta_*\rVert^2 + \tfrac P2 \log\alpha
    - \tfrac12 \log\lvert G + \alpha I\rvert

(MacKay 1992; Laplace Redux's post-hoc tuning), in closed form over the eigenvalues of G.
``noise="evidence"`` maximises the same evidence over :math:`\sigma` too (jointly with
:math:`\alpha`, Immer et al. 2021; the last-layer Laplace does the same), at the MAP net's
weights. At the optimum MacKay's fixed point holds: :math:`\sigma^2 = \lVert y -
f_*\rVert^2 / (N - \gamma)` and :math:`\alpha = \gamma / \lVert\theta_*\rVert^2`, with
:math:`\gamma = \sum_i \lambda_i / (\lambda_i + \alpha)` the effective number of parameters
(:math:`\lambda_i` the eigenvalues of G): the MAP net's noise is its training residual, which a
net with hundreds of effective parameters makes too small. P x P matrices: meant for networks
of up to a few thousand weights (the UCI nets have 42-651).

Is the Gaussian the network's posterior? :func:`posterior_check` asks by Pareto-smoothed
importance sampling (:mod:`models.evaluation.psis`): draws of the Laplace Gaussian,
importance-weighted to the model's own posterior over the weights (its prior, not the
evidence-chosen one, and its likelihood at the Laplace's sigma). Where it fails, the
linearised predictive is the posterior predictive of the network linearised at the MAP net (a
different model, Immer et al. 2021), not of this network.

The Jacobian is written by hand (backpropagation of one scalar output through the layers
:func:`models.families.bnn.forward` computes): a few matrix products in numpy, checked against
finite differences of ``forward`` in the tests. PyTorch's laplace library does this for torch
models; this project's networks are PyMC models evaluated in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
from scipy import optimize, stats

from models.evaluation.last_layer import NetworkLaplace
from models.evaluation.psis import PSIS_DRAWS, PosteriorCheck, compiled_logp
from models.families.bnn import forward, numpy_activation


def _derivative(activation: str):
    return {"relu": lambda z, h: (z > 0).astype(float), "tanh": lambda z, h: 1.0 - h ** 2,
            "sigmoid": lambda z, h: h * (1.0 - h)}[activation]


def parameter_names(n_hidden: int) -> list[str]:
    """The order of the weights in the flat parameter vector: w1, b1, ..., w_out, b_out."""
    names = []
    for layer in range(1, n_hidden + 1):
        names += [f"w{layer}", f"b{layer}"]
    return names + ["w_out", "b_out"]


def jacobian(params: dict, X, activation: str, n_hidden: int) -> np.ndarray:
    """(N, P): the derivative of the (single) network output at each row of ``X`` with respect
    to every weight and bias, flattened in :func:`parameter_names` order (each array C-order)."""
    act, dact = numpy_activation(activation), _derivative(activation)
    hs, zs = [np.asarray(X, dtype=float)], []
    for layer in range(1, n_hidden + 1):
        zs.append(hs[-1] @ np.asarray(params[f"w{layer}"]) + np.asarray(params[f"b{layer}"]))
        hs.append(act(zs[-1]))
    n = len(hs[0])
    blocks = {"w_out": hs[-1][:, :, None], "b_out": np.ones((n, 1))}  # w_out is (H, 1)
    delta = np.asarray(params["w_out"])[:, 0][None, :] * dact(zs[-1], hs[-1])  # df/dz_L
    for layer in range(n_hidden, 0, -1):
        blocks[f"w{layer}"] = hs[layer - 1][:, :, None] * delta[:, None, :]
        blocks[f"b{layer}"] = delta
        if layer > 1:
            delta = (delta @ np.asarray(params[f"w{layer}"]).T) * dact(zs[layer - 2], hs[layer - 1])
    return np.concatenate([blocks[k].reshape(n, -1) for k in parameter_names(n_hidden)], axis=1)


def flat_parameters(params: dict, n_hidden: int) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(params[k], dtype=float))
                           for k in parameter_names(n_hidden)])


@dataclass(frozen=True)
class GGNLaplace(NetworkLaplace):
    """The linearised Laplace posterior of a whole network (:class:`NetworkLaplace` over every
    weight): ``cov`` (P x P) in :func:`parameter_names` order; the features are the network's
    Jacobian (:func:`jacobian`) and the mean is the MAP net's output."""

    def features(self, X) -> np.ndarray:
        return jacobian(self.params, X, self.activation, self.n_hidden)

    def mean_f(self, X, features: np.ndarray) -> np.ndarray:
        return forward(self.params, X, self.activation, self.n_hidden)[:, 0]


NOISES = ("map", "evidence")  # where the GGN Laplace's noise sd comes from


def fit_ggn_laplace(params: dict, X, y, activation: str, n_hidden: int,
                    prior_precision: float | None = None, noise: str = "map") -> GGNLaplace:
    """GGN Laplace around the network ``params`` (a MAP net with its noise ``sigma``) on the
    training data (X, y): see the module docstring. ``prior_precision``: fixed instead of
    chosen by the evidence. ``noise``: "map" keeps the MAP net's ``sigma``; "evidence"
    chooses it by the evidence too (with ``prior_precision`` fixed, sigma alone)."""
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
    sigma_map = float(np.asarray(params["sigma"]))
    J = jacobian(params, X, activation, n_hidden)
    theta = flat_parameters(params, n_hidden)
    G = J.T @ J / sigma_map ** 2
    lam, V = np.linalg.eigh(G)
    lam = np.clip(lam, 0.0, None)  # G's eigenvalues at the MAP net's sigma
    resid = np.asarray(y, float) - forward(params, X, activation, n_hidden)[:, 0]
    P, sq = len(theta), float(theta @ theta)

    def log_evidence(log_alpha, sigma=sigma_map):
        alpha = np.exp(log_alpha)
        loglik = float(stats.norm.logpdf(resid, 0.0, sigma).sum())
        # at another sigma, G = J'J / sigma^2 has eigenvalues lam * (sigma_map / sigma)^2
        return (loglik - 0.5 * alpha * sq + 0.5 * P * log_alpha
                - 0.5 * np.sum(np.log(lam * (sigma_map / sigma) ** 2 + alpha)))

    fixed = None if prior_precision is None else float(np.log(prior_precision))
    sigma = sigma_map
    if noise == "map":
        if fixed is None:
            best = optimize.minimize_scalar(lambda a: -log_evidence(a), bounds=(-20.0, 20.0),
                                            method="bounded", options={"xatol": 1e-10})
            log_alpha = float(best.x)
        else:
            log_alpha = fixed
    else:  # sigma by the evidence, with alpha unless it is fixed: z = ([log alpha,] log sigma)
        def unpack(z):
            return (float(z[0]) if fixed is None else fixed), float(np.exp(z[-1]))

        free = [(0.0, (-20.0, 20.0))] if fixed is None else []
        free.append((np.log(sigma_map), (-20.0, 5.0)))
        best = optimize.minimize(lambda z: -log_evidence(*unpack(z)),
                                 np.array([start for start, _ in free]), method="L-BFGS-B",
                                 bounds=[bound for _, bound in free],
                                 options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000})
        log_alpha, sigma = unpack(best.x)
    alpha = np.exp(log_alpha)
    cov = (V / (lam * (sigma_map / sigma) ** 2 + alpha)) @ V.T
    return GGNLaplace(cov, float(alpha), float(sigma), float(log_evidence(log_alpha, sigma)),
                      {k: np.asarray(v) for k, v in params.items()}, activation, n_hidden)


def mixture_predictive(fits, X) -> tuple[np.ndarray, np.ndarray]:
    """(means, variances), each (K, n): the linearised predictive of each of the K Laplace
    fits at ``X`` with its own noise variance added, in standardised units; the equal mixture
    of these normals is the Laplace ensemble's predictive (score it with
    :func:`models.evaluation.scores.gaussian_predictive_metrics`)."""
    parts = [g.predict(X) for g in fits]
    return (np.stack([mu for mu, _ in parts]),
            np.stack([v + g.sigma ** 2 for g, (_, v) in zip(fits, parts)]))


def importance_log_ratios(laplace: GGNLaplace, model: pm.Model, z: np.ndarray) -> np.ndarray:
    """log p(theta, sigma | y) - log q(theta) at each row of ``z`` (draws x P, flat in
    :func:`parameter_names` order), up to one constant: ``model``'s log density (PyMC's,
    without the transforms' Jacobians) with sigma held at ``laplace.sigma``, minus the
    Laplace Gaussian's (scipy's). Raises ValueError for a model whose weights are not
    unconstrained (uniform priors: :func:`posterior_check` returns None there)."""
    logp = compiled_logp(model, jacobian=False)
    names = parameter_names(laplace.n_hidden)
    if any(model.rvs_to_transforms.get(model[k]) is not None for k in names):
        raise ValueError("importance_log_ratios: the weights have bounded (uniform) priors")
    sigma_rv = model["sigma"]
    value = model.rvs_to_values[sigma_rv].name
    if model.rvs_to_transforms.get(sigma_rv) is None or value != "sigma_log__":
        raise ValueError(f"importance_log_ratios: sigma's value variable is {value!r}, not its log")
    shapes = [np.shape(laplace.params[k]) for k in names]
    ends = np.cumsum([int(np.prod(sh)) for sh in shapes])
    z = np.atleast_2d(np.asarray(z, dtype=float))
    log_p = np.empty(len(z))
    for i, zi in enumerate(z):
        point = {k: part.reshape(sh) for k, part, sh in zip(names, np.split(zi, ends[:-1]), shapes)}
        point[value] = np.log(laplace.sigma)
        log_p[i] = logp(point)
    q = stats.multivariate_normal(flat_parameters(laplace.params, laplace.n_hidden), laplace.cov)
    return log_p - q.logpdf(z).reshape(len(z))


def posterior_check(laplace: GGNLaplace, model: pm.Model, draws: int = PSIS_DRAWS,
                    seed: int = 0) -> PosteriorCheck | None:
    """PSIS diagnostic of the GGN Laplace ``laplace`` as an approximation of ``model``'s
    posterior over the network's weights (see the module docstring): ``draws`` draws of the
    Gaussian, log importance ratios log p(theta, sigma | y) - log q(theta) with sigma held at
    ``laplace.sigma`` (``model``: the network of :func:`models.families.bnn.build` the
    Laplace was fitted on, its data the training split; :func:`importance_log_ratios`),
    Pareto-smoothed by ArviZ. The importance ratios are written here (ArviZ smooths ratios it
    is given; PyMC evaluates the model's log density at each draw). None for uniform weight
    priors (bounded weights, whose interval transform this does not handle)."""
    names = parameter_names(laplace.n_hidden)
    if any(model.rvs_to_transforms.get(model[k]) is not None for k in names):
        return None  # uniform weight priors: bounded weights, not handled here
    theta = flat_parameters(laplace.params, laplace.n_hidden)
    z = stats.multivariate_normal(theta, laplace.cov).rvs(
        size=int(draws), random_state=np.random.default_rng(seed))
    return PosteriorCheck.from_log_ratios(importance_log_ratios(laplace, model, np.atleast_2d(z)))
