"""The Taylor optimum of a non-quadratic convex loss over a ball: min_{‖v − c‖ ≤ ρ} Σ_n ℓ(T^n(v), y^n)."""

import numpy as np
import scipy.optimize

from keras_taylor.analysis.affine_rounds import as_rounds
from keras_taylor.losses import ConvexLoss


def trajectory_diameter(points: np.ndarray) -> float:
    """max_{n,m} ‖W^n − W^m‖ over the rows of `points` `[R, P]`."""
    squared = np.sum(points**2, axis=1)
    distances = squared[:, None] + squared[None] - 2 * points @ points.T
    # Below the Gram formula's rounding the points are equal (one recorded round: 0).
    distances[distances <= 64 * np.finfo(float).eps * (squared[:, None] + squared[None])] = 0.0
    return float(np.sqrt(distances.max()))


def factored_taylor_optimum(linear_rounds: list, loss: ConvexLoss, center: np.ndarray, radius: float,
                            start: np.ndarray | None = None, *, tolerance: float = 1e-7,
                            max_iterations: int = 2000) -> tuple[float, np.ndarray, dict]:
    """min_{‖v − center‖ ≤ radius} Σ_n ℓ(T^n(v), y^n) for a non-quadratic convex loss.

    L-BFGS-B first, unconstrained; if its minimizer leaves the ball, the KKT
    multiplier μ of the ball is found by a bracketed root search (brentq) on
    ‖v(μ) − center‖ = radius, each v(μ) minimizing f + μ/2‖v − center‖² by L-BFGS-B.

    Args:
        linear_rounds: Per round, the affine Taylor outputs (`LinearRound`s); neuron-scale
            rounds are stacked (`StackedRounds`) so that an evaluation is one product.
        loss: The convex loss ℓ.
        center, radius: The domain H (radius = inf for no bound).
        start: Warm start (default the center).
        tolerance: Gradient tolerance, relative to the gradient at the center.
        max_iterations: Solver iteration limit.

    Returns:
        `(minimum, minimizer, diagnostics)` with "converged", "gradient_norm" (of the
        Lagrangian, relative to the gradient at the center), "iterations" (L-BFGS-B
        iterations, summed), "constrained", "method".
    """

    linear_rounds = as_rounds(linear_rounds, loss)

    def objective(v):
        return linear_rounds.value_and_gradient(v, loss)

    if radius <= 0:  # H is the single point W^0
        value, gradient = objective(center)
        return float(value), center.copy(), {"converged": True, "gradient_norm": 0.0, "iterations": 0,
                                              "constrained": True, "method": "domain is a point"}
    center_gradient = objective(center)[1]
    reference = max(np.linalg.norm(center_gradient), 1e-12)
    start = center.copy() if start is None else start
    options = {"maxiter": max_iterations, "gtol": tolerance * reference, "ftol": 1e-15}
    result = scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B",
                                     options={**options, "maxiter": min(max_iterations, 500)})
    gradient_norm = np.linalg.norm(result.jac) / reference
    if np.linalg.norm(result.x - center) <= radius and gradient_norm <= 10 * tolerance:
        return float(result.fun), result.x, {
            "converged": True, "gradient_norm": float(gradient_norm), "iterations": int(result.nit),
            "constrained": False, "method": "L-BFGS-B",
        }
    # The ball binds: KKT says ∇f(v) + μ(v − c) = 0 with ‖v − c‖ = ρ. For fixed μ > 0,
    # v(μ) minimizes the strongly convex f + μ/2‖v − c‖² (L-BFGS-B), and ‖v(μ) − c‖
    # decreases in μ (from ≤ ‖∇f(c)‖/μ), so a bracketed root search on log μ finds μ*.
    iterations, state = int(result.nit), {"start": result.x}

    def solve(log_multiplier):
        nonlocal iterations
        multiplier = np.exp(log_multiplier)

        def penalized(v):
            value, gradient = objective(v)
            offset = v - center
            return value + 0.5 * multiplier * offset @ offset, gradient + multiplier * offset

        inner = scipy.optimize.minimize(penalized, state["start"], jac=True, method="L-BFGS-B", options=options)
        iterations += int(inner.nit)
        state["start"], state["solution"], state["multiplier"] = inner.x, inner.x, multiplier
        return inner

    def excess(log_multiplier):
        return np.log(np.linalg.norm(solve(log_multiplier).x - center) / radius)

    upper = np.log(max(np.linalg.norm(center_gradient), 1e-300) / radius)
    lower = upper - 5.0
    while excess(lower) < 0 and lower > upper - 80:  # the unconstrained minimizer may sit just outside
        lower -= 5.0
    root = scipy.optimize.root_scalar(excess, bracket=(lower, upper + 1e-9), method="brentq", xtol=1e-10,
                                      rtol=1e-12)
    inner = solve(root.root)
    solution, multiplier = inner.x, state["multiplier"]
    value, gradient = objective(solution)
    kkt = np.linalg.norm(gradient + multiplier * (solution - center)) / reference
    boundary = abs(np.linalg.norm(solution - center) - radius) / radius
    return float(value), solution, {
        "converged": bool(root.converged and kkt <= 10 * tolerance and boundary <= 1e-6),
        "gradient_norm": float(kkt), "iterations": iterations, "constrained": True,
        "method": "L-BFGS-B on the KKT multiplier (brentq)",
    }
