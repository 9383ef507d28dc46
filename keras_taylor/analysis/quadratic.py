"""The exact minimum of a positive semidefinite quadratic, the squared-error routes' solver."""

import numpy as np
import scipy.linalg


def minimize_quadratic(gram: np.ndarray, linear: np.ndarray, constant: np.ndarray,
                       condition_limit: float = 1e10) -> tuple[np.ndarray, np.ndarray, dict]:
    """min_v vᵀHv + 2gᵀv + s for each member of a stack, with H positive semidefinite.

    Solved by Cholesky with complete pivoting (LAPACK `dpstrf`), which finds the
    numerical rank r: with PᵀHP = LLᵀ (L of r columns) and Pᵀg = Lu, the minimum is
    s − ‖u‖², unique even when the minimizer is not (H singular, e.g. pixels that
    are zero in every image). A g with a component outside H's range would make the
    quadratic unbounded below; that residual is reported.

    Args:
        gram: `[K, P, P]` H.
        linear: `[K, P]` g.
        constant: `[K]` s.
        condition_limit: Members whose H has a larger condition number on its range are
            flagged `ill_conditioned` (their minimizer, not their minimum, is sensitive).

    Returns:
        `(minimum [K], minimizer [K, P], diagnostics)`, diagnostics holding `[K]` arrays
        "rank", "condition", "gradient_norm" (‖Hv + g‖ relative to ‖H‖_F‖v‖ + ‖g‖, a backward
        error), "range_residual" (the part of g outside H's numerical range, same scale) and
        "ill_conditioned".
    """
    gram, linear, constant = (np.asarray(a, np.float64) for a in (gram, linear, constant))
    if gram.ndim != 3 or gram.shape[1] != gram.shape[2] or linear.shape != gram.shape[:2] or constant.shape != gram.shape[:1]:
        raise ValueError(
            "minimize_quadratic takes gram [K, P, P], linear [K, P], constant [K]. Received: shapes "
            f"{gram.shape}, {linear.shape}, {constant.shape}"
        )
    count, size = linear.shape
    minimum, minimizer = np.empty(count), np.zeros((count, size))
    diagnostics = {key: np.empty(count) for key in ("rank", "condition", "gradient_norm", "range_residual")}
    for member in range(count):
        hessian, gradient = gram[member], linear[member]
        scale = float(np.max(np.diag(hessian), initial=0.0))
        if scale <= 0:  # H = 0 (a dead neuron): the quadratic is constant where g = 0
            minimum[member] = constant[member]
            residual = np.linalg.norm(gradient)
            diagnostics["rank"][member], diagnostics["condition"][member] = 0, np.nan
            diagnostics["gradient_norm"][member] = diagnostics["range_residual"][member] = 0.0 if residual == 0 else 1.0
            continue
        factor, pivots, rank, info = scipy.linalg.lapack.dpstrf(
            hessian, lower=1, tol=max(size * np.finfo(float).eps, 1e-13)
        )
        if info < 0:
            raise ValueError(f"LAPACK dpstrf rejected argument {-info} for member {member}.")
        order = pivots[:size] - 1
        lower = np.tril(factor[:, :rank])
        permuted = gradient[order]
        coefficients = scipy.linalg.solve_triangular(lower[:rank], permuted[:rank], lower=True)
        outside = permuted[rank:] - lower[rank:] @ coefficients
        solution = np.zeros(size)
        solution[order[:rank]] = -scipy.linalg.solve_triangular(lower[:rank].T, coefficients, lower=False)
        minimum[member] = constant[member] - coefficients @ coefficients
        minimizer[member] = solution
        # Backward-error scale: a residual this small relative to ‖H‖‖v‖ + ‖g‖ is rounding.
        reference = max(np.linalg.norm(gradient) + np.linalg.norm(hessian) * np.linalg.norm(solution),
                        np.finfo(float).tiny)
        diagonal = np.abs(np.diag(lower[:rank]))
        diagnostics["rank"][member] = rank
        diagnostics["condition"][member] = (diagonal.max() / diagonal.min()) ** 2
        diagnostics["gradient_norm"][member] = np.linalg.norm(hessian @ solution + gradient) / reference
        diagnostics["range_residual"][member] = np.linalg.norm(outside) / reference
    diagnostics["rank"] = diagnostics["rank"].astype(np.int64)
    diagnostics["ill_conditioned"] = diagnostics["condition"] > condition_limit
    return minimum, minimizer, diagnostics

