"""The Taylor optimum of a non-quadratic convex loss over a ball: min_{‖v − c‖ ≤ ρ} Σ_n ℓ(T^n(v), y^n).

Newton's method with the ball as a hard constraint. At the iterate v, the second-order
model of f, m(s) = f + gᵀs + ½sᵀHs, is minimized over the ball ‖v + s − c‖ ≤ ρ. With
u = v + s − c that is the trust-region subproblem min_u bᵀu + ½uᵀHu, ‖u‖ ≤ ρ,
b = g − H(v − c), solved in a Krylov subspace of H by Lanczos (the GLTR method of
Gould, Lucidi, Roma & Toint, 1999), using only Hessian-vector products: H is never
formed. A backtracking line search along s keeps the iterates in the ball (it is
convex) and f decreasing. Convexity certifies the answer: for any v in the ball,
f(v) − min ≤ gᵀ(v − c) + ρ‖g‖ (the Frank–Wolfe duality gap), and the solver stops
when that bound is small.
"""

import numpy as np
import scipy.linalg
import scipy.optimize

from keras_taylor.analysis.affine_rounds import as_rounds
from keras_taylor.losses import ConvexLoss

_BASIS_BYTES = 256 << 20  # the Lanczos basis kept per subproblem (its size bounds the Krylov dimension)
_MAX_LANCZOS = 400


def trajectory_diameter(points: np.ndarray) -> float:
    """max_{n,m} ‖W^n − W^m‖ over the rows of `points` `[R, P]`."""
    squared = np.sum(points**2, axis=1)
    distances = squared[:, None] + squared[None] - 2 * points @ points.T
    # Below the Gram formula's rounding the points are equal (one recorded round: 0).
    distances[distances <= 64 * np.finfo(float).eps * (squared[:, None] + squared[None])] = 0.0
    return float(np.sqrt(distances.max()))


def duality_gap(gradient: np.ndarray, offset: np.ndarray, radius: float) -> float:
    """gᵀ(v − c) + ρ‖g‖ = max_{‖u − c‖ ≤ ρ} gᵀ(v − u): for convex f, an upper bound of f(v) − min over the ball.

    Args:
        gradient: ∇f(v).
        offset: v − c.
        radius: ρ (may be inf only if g = 0).
    """
    norm = np.linalg.norm(gradient)
    return float(gradient @ offset + (radius * norm if norm else 0.0))


def ball_quadratic_minimizer(hessian_product, linear: np.ndarray, radius: float, residual_tolerance: float,
                             max_dimension: int) -> tuple[np.ndarray, float, int]:
    """min_u bᵀu + ½uᵀHu subject to ‖u‖ ≤ ρ, for H ⪰ 0 given by its products (GLTR).

    Lanczos builds an orthonormal basis Q_k of the Krylov space of H and b with
    QᵀHQ = T_k tridiagonal; the subproblem restricted to it, min ‖b‖e₁ᵀh + ½hᵀT_k h,
    ‖h‖ ≤ ρ, is solved exactly through T_k's eigenvectors (λ ≥ 0 the multiplier of the
    ball, (T_k + λI)h = −‖b‖e₁). u = Q_k h, and its residual ‖(H + λI)u + b‖ is
    β_{k+1}|h_k|, which stops the iteration. The basis is reorthogonalized fully.

    Args:
        hessian_product: v ↦ Hv.
        linear: b `[P]`.
        radius: ρ (inf: no bound).
        residual_tolerance: Stop when ‖(H + λI)u + b‖ ≤ this.
        max_dimension: Krylov dimension limit.

    Returns:
        `(u, λ, dimension)`.
    """
    scale = np.linalg.norm(linear)
    if scale == 0:
        return np.zeros_like(linear), 0.0, 0
    basis = np.empty((max_dimension, linear.size))  # rows: the orthonormal Lanczos vectors
    basis[0] = linear / scale
    diagonal, off_diagonal = [], []
    for dimension in range(1, max_dimension + 1):
        direction = hessian_product(basis[dimension - 1])
        diagonal.append(basis[dimension - 1] @ direction)
        built = basis[:dimension]
        direction -= built.T @ (built @ direction)  # three-term recurrence and full reorthogonalization
        direction -= built.T @ (built @ direction)
        norm = np.linalg.norm(direction)
        coefficients, multiplier = _tridiagonal_ball_minimizer(np.array(diagonal), np.array(off_diagonal), scale,
                                                               radius)
        if (dimension == max_dimension or norm * abs(coefficients[-1]) <= residual_tolerance
                or norm <= 1e-14 * max(abs(diagonal[0]), 1e-300)):
            break
        off_diagonal.append(norm)
        basis[dimension] = direction / norm
    return basis[:dimension].T @ coefficients, multiplier, dimension


def _tridiagonal_ball_minimizer(diagonal, off_diagonal, scale, radius):
    """min_h scale·h₁ + ½hᵀTh, ‖h‖ ≤ ρ, T the symmetric tridiagonal ⪰ 0: `(h, λ)`."""
    values, vectors = scipy.linalg.eigh_tridiagonal(diagonal, off_diagonal)
    values = np.maximum(values, 0.0)  # T ⪰ 0 in exact arithmetic
    rotated = scale * vectors[0]  # Zᵀ(scale·e₁)

    def norm_at(multiplier):
        with np.errstate(divide="ignore"):
            return np.linalg.norm(rotated / (values + multiplier))

    floor = 1e-13 * max(values.max(), scale / radius if np.isfinite(radius) else 0.0)
    if values.min() > floor and norm_at(0.0) <= radius:
        multiplier = 0.0
    elif not np.isfinite(radius):  # H singular on b's Krylov space, no bound: the least-norm minimizer
        keep = values > floor
        coefficients = -vectors[:, keep] @ (rotated[keep] / values[keep])
        return coefficients, 0.0
    else:
        # ‖h(λ)‖ decreases in λ ≥ 0; at λ = ‖b‖/ρ it is at most ρ.
        upper = scale / radius
        lower = floor if norm_at(floor) > radius else 0.0
        if lower == 0.0:
            multiplier = 0.0
        else:
            multiplier = scipy.optimize.brentq(lambda m: 1.0 / radius - 1.0 / norm_at(m), lower, upper,
                                               xtol=1e-14 * upper, rtol=1e-14)
    coefficients = -vectors @ (rotated / np.maximum(values + multiplier, floor))
    return coefficients, multiplier


def factored_taylor_optimum(linear_rounds: list, loss: ConvexLoss, center: np.ndarray, radius: float,
                            start: np.ndarray | None = None, *, tolerance: float = 1e-9,
                            max_iterations: int = 200) -> tuple[float, np.ndarray, dict]:
    """min_{‖v − center‖ ≤ radius} Σ_n ℓ(T^n(v), y^n) for a non-quadratic convex loss (the module's method).

    Args:
        linear_rounds: Per round, the affine Taylor outputs (`LinearRound`s); neuron-scale
            rounds are stacked (`StackedRounds`) so that an evaluation is one product.
        loss: The convex loss ℓ.
        center, radius: The domain H (radius = inf for no bound).
        start: Warm start (default the center; projected onto the ball).
        tolerance: Stop when the certified error of the minimum, the duality gap
            gᵀ(v − c) + ρ‖g‖ ≥ f(v) − min, is at most `tolerance` · f(center) (with no
            bound: when ‖∇f(v)‖ ≤ `tolerance` · ‖∇f(center)‖).
        max_iterations: Newton iteration limit.

    Returns:
        `(minimum, minimizer, diagnostics)` with "converged", "gradient_norm" (the KKT
        residual ‖∇f(v) + λ(v − c)‖, relative to the gradient at the center), "gap" (the
        certified bound of f(v) − min), "iterations" (Newton steps), "products"
        (Hessian-vector products), "constrained" (the ball binds), "method".
    """
    linear_rounds = as_rounds(linear_rounds, loss)
    method = "Newton on the ball, Lanczos subproblems (GLTR)"
    if radius <= 0:  # H is the single point W^0
        value = linear_rounds.value(center, loss)
        return float(value), center.copy(), {"converged": True, "gradient_norm": 0.0, "gap": 0.0, "iterations": 0,
                                              "products": 0, "constrained": True, "method": "domain is a point"}
    center_value, center_gradient, _ = linear_rounds.curvature(center, loss)
    gradient_scale = max(np.linalg.norm(center_gradient), 1e-300)
    value_scale = max(abs(center_value), 1e-300)
    point = center.copy() if start is None else _into_ball(start, center, radius)
    value, gradient, hessian_product = linear_rounds.curvature(point, loss)
    if value > center_value:  # a warm start worse than the center
        point, value, gradient = center.copy(), center_value, center_gradient
        _, _, hessian_product = linear_rounds.curvature(point, loss)
    max_dimension = int(min(_MAX_LANCZOS, point.size, max(8, _BASIS_BYTES // (8 * point.size))))
    multiplier, iterations, products, converged = 0.0, 0, 0, False
    bounded = np.isfinite(radius)
    for iterations in range(max_iterations + 1):
        offset = point - center
        gap = duality_gap(gradient, offset, radius) if bounded else np.inf
        kkt = np.linalg.norm(gradient + multiplier * offset)
        converged = (gap <= tolerance * value_scale if bounded
                     else np.linalg.norm(gradient) <= tolerance * gradient_scale)
        if converged or iterations == max_iterations:
            break
        progress = gap / value_scale if bounded else kkt / gradient_scale
        forcing = min(0.1, np.sqrt(progress))
        linear = gradient - hessian_product(offset)
        products += 1
        for _ in range(3):  # an inexact subproblem that gives no descent is solved again, more accurately
            solution, new_multiplier, dimension = ball_quadratic_minimizer(
                hessian_product, linear, radius, forcing * kkt, max_dimension)
            products += dimension
            step = solution - offset
            slope = gradient @ step
            if slope < 0:
                break
            forcing *= 1e-2
        if slope >= 0:  # the model predicts no decrease at the accuracy Lanczos reaches
            break
        length = 1.0
        while True:  # Armijo backtracking; v + t·s stays in the ball for t ∈ [0, 1]
            trial = _into_ball(point + length * step, center, radius)
            trial_value = linear_rounds.value(trial, loss)
            if trial_value <= value + 1e-4 * length * slope or length < 1e-12:
                break
            length *= 0.5
        if trial_value > value:
            break
        multiplier = new_multiplier
        point = trial
        value, gradient, hessian_product = linear_rounds.curvature(point, loss)
    offset = point - center
    constrained = bool(bounded and np.linalg.norm(offset) >= radius * (1 - 1e-9))
    kkt = np.linalg.norm(gradient + (multiplier if constrained else 0.0) * offset) / gradient_scale
    return float(value), point, {
        "converged": bool(converged), "gradient_norm": float(kkt), "gap": float(gap), "iterations": int(iterations),
        "products": int(products), "constrained": constrained, "method": method,
    }


def _into_ball(point: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """`point` pulled radially onto the ball where it lies (by rounding) outside."""
    offset = point - center
    norm = np.linalg.norm(offset)
    return point if norm <= radius else center + offset * (radius / norm)
