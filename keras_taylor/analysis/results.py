"""What the post-hoc analysis returns: regret curves, neuron bands, growth fits, solver diagnostics."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SolverDiagnostics:
    """How each grid point's Taylor optimum was obtained.

    Attributes:
        method: Solver name ("eigh" for the exact quadratic route, conjugate gradients, Newton on the ball, ...).
        converged: `[K]` bool, whether the solver met its tolerance at each grid point.
        gradient_norm: `[K]` norm of the objective's (projected) gradient at the minimizer.
        iterations: `[K]` solver iterations (0 for direct solves).
        rank: `[K]` numerical rank of the Gram (quadratic route), -1 otherwise.
        condition: `[K]` condition number of the Gram on its numerical range, NaN otherwise.
        ill_conditioned: `[K]` bool, flagged when the condition number is large enough that the
            minimizer (not the minimum value) is sensitive.
        solve_seconds: `[K]` wall time of each grid point's solve where the solver measures it
            (a layer solved by conjugate gradients, the bounded solver), else None.
        value_error: `[K]` how far each minimum found may lie above the true one, where the solver
            measures it: the bounded solver's duality gap (a certified bound), conjugate gradients'
            Hestenes–Stiefel estimate (the value's decrease over its last 10 steps: an estimate,
            not a bound); else None.
    """

    method: str
    converged: np.ndarray
    gradient_norm: np.ndarray
    iterations: np.ndarray
    rank: np.ndarray
    condition: np.ndarray
    ill_conditioned: np.ndarray
    solve_seconds: np.ndarray | None = None
    value_error: np.ndarray | None = None


class _PerRound:
    """The per-round views of cumulative sums over a grid of N (`rounds` `[K]`, sums `[..., K]`)."""

    @property
    def average_loss(self) -> np.ndarray:
        """`[K]` running average training loss (1/N) Σ_{n≤N} ℓ^n(W^n)."""
        return self.cumulative_loss / self.rounds

    @property
    def taylor_optimum(self) -> np.ndarray:
        """`[..., K]` hindsight Taylor optimum (1/N) min_V Σ_{n≤N} 𝒯^n(V)."""
        return self.cumulative_taylor_optimum / self.rounds

    @property
    def normalized_regret(self) -> np.ndarray:
        """`[..., K]` Regret(N)/√N, the quantity the paper plots."""
        return self.regret / np.sqrt(self.rounds)


@dataclasses.dataclass(frozen=True)
class RegretCurve(_PerRound):
    """Regret(N) of one network, layer or neuron over a grid of round counts N.

    Attributes:
        scale: "network", "layer" or "neuron".
        layer: The layer's name (None at network scale).
        neuron: The neuron's index within the layer (None unless neuron scale).
        rounds: `[K]` int, the grid of N (rounds counted from 1).
        cumulative_loss: `[K]` Σ_{n≤N} ℓ^n(W^n), the loss the learner incurred (for cross-entropy,
            on the examples whose Taylor data were stored, see `examples_per_round`).
        cumulative_taylor_optimum: `[K]` min_V Σ_{n≤N} 𝒯^n(V).
        regret: `[K]` cumulative_loss − cumulative_taylor_optimum (may be ≤ 0).
        diagnostics: How each minimum was computed.
    """

    scale: str
    layer: str | None
    neuron: int | None
    rounds: np.ndarray
    cumulative_loss: np.ndarray
    cumulative_taylor_optimum: np.ndarray
    regret: np.ndarray
    diagnostics: SolverDiagnostics


@dataclasses.dataclass(frozen=True)
class NeuronRegretBand(_PerRound):
    """Neuron-scale regret of several neurons of one layer (the shaded bands of Fig. 3).

    Attributes:
        layer: The layer's name.
        neurons: `[U]` neuron indices.
        rounds: `[K]` the shared grid of N.
        cumulative_loss: `[K]` the learner's cumulative loss (shared by all neurons).
        cumulative_taylor_optimum: `[U, K]` per-neuron minima.
        regret: `[U, K]` per-neuron regret.
        curves: The per-neuron `RegretCurve`s, in `neurons` order.
    """

    layer: str
    neurons: np.ndarray
    rounds: np.ndarray
    cumulative_loss: np.ndarray
    cumulative_taylor_optimum: np.ndarray
    regret: np.ndarray
    curves: tuple

    @property
    def mean_normalized_regret(self) -> np.ndarray:
        """`[K]` mean over neurons of Regret(N)/√N."""
        return self.normalized_regret.mean(axis=0)

    @property
    def std_normalized_regret(self) -> np.ndarray:
        """`[K]` standard deviation over neurons of Regret(N)/√N."""
        return self.normalized_regret.std(axis=0)

    @property
    def mean_taylor_optimum(self) -> np.ndarray:
        """`[K]` mean over neurons of the Taylor optimum (1/N) min_V Σ 𝒯^n(V)."""
        return self.taylor_optimum.mean(axis=0)

    @property
    def std_taylor_optimum(self) -> np.ndarray:
        """`[K]` standard deviation over neurons of the Taylor optimum."""
        return self.taylor_optimum.std(axis=0)


@dataclasses.dataclass(frozen=True)
class GrowthFit:
    """Regret(N) ≈ coefficient·N^exponent fitted over the later half of the grid.

    Attributes:
        exponent: The fitted growth exponent (NaN when no fit is possible; see `status`).
        interval: `(low, high)` confidence interval of the exponent.
        confidence: The interval's confidence level.
        sign: +1 if the fitted regret is positive, -1 if negative, 0 if it is zero.
        rounds_used: `[K']` the grid points the fit used.
        status: "ok", or why no exponent was fitted ("zero regret", "sign changes", "too few points").
        coefficient: The fit's signed constant, Regret(N) ≈ coefficient·N^exponent: `sign` times exp
            of the log-log intercept, i.e. log|coefficient| = mean over `rounds_used` of
            log|Regret(N)| − exponent·log N. NaN when no exponent was fitted.
    """

    exponent: float
    interval: tuple
    confidence: float
    sign: int
    rounds_used: np.ndarray
    status: str
    coefficient: float

    def to_json(self) -> dict:
        """The fit as analysis.json stores it (NaN becomes null when written)."""
        return {"exponent": self.exponent, "interval": list(self.interval), "confidence": self.confidence,
                "sign": self.sign, "status": self.status, "rounds_used": np.asarray(self.rounds_used).tolist(),
                "coefficient": self.coefficient}


class MissingStatisticsError(ValueError):
    """The run directory holds no statistics for the requested scale (the message says what it holds)."""



class TaylorOptimumWarning(UserWarning):
    """A Taylor optimum did not converge to the solver's tolerance (see the diagnostics)."""


class NonFiniteRoundsWarning(UserWarning):
    """Some recorded rounds have a non-finite loss (training diverged or the data hold NaN/inf)."""


@dataclasses.dataclass(frozen=True)
class LayerRegrets:
    """The layer- and neuron-scale regret of several layers (`layer_regrets`).

    Attributes:
        layers: `{layer: RegretCurve}` at layer scale.
        neurons: `{layer: NeuronRegretBand}` at neuron scale.
        missing: `{(layer, scale): reason}` for each asked scale the run did not record.
    """

    layers: dict
    neurons: dict
    missing: dict
