"""Post-hoc Taylor optima and regret over a recorded run (NumPy/SciPy only).

Paper, Theorem 2: with ℓ^n(W) the minibatch loss of round n and 𝒯^n(V) the
Taylor loss of round n at a chosen scale (network, one layer, one neuron),

    Regret(N) = Σ_{n≤N} ℓ^n(W^n) − min_{V∈H} Σ_{n≤N} 𝒯^n(V),

and the Taylor optimum is that minimum divided by N. The theorem bounds the
regret from above by O(√N); it is not bounded below by zero (a learner that
moves can beat every fixed comparator, and a dead neuron's regret is exactly 0).
"""

import dataclasses
import warnings

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse
import scipy.sparse.linalg
import scipy.stats

from keras_taylor import schedules, storage
from keras_taylor.losses import CONVEX_LOSSES, ConvexLoss, convex_loss_from_record, reduction_scale
from keras_taylor.taylor import conv_patches


@dataclasses.dataclass(frozen=True)
class SolverDiagnostics:
    """How each grid point's Taylor optimum was obtained.

    Attributes:
        method: Solver name ("eigh" for the exact quadratic route, "L-BFGS-B", ...).
        converged: `[K]` bool, whether the solver met its tolerance at each grid point.
        gradient_norm: `[K]` norm of the objective's (projected) gradient at the minimizer.
        iterations: `[K]` solver iterations (0 for direct solves).
        rank: `[K]` numerical rank of the Gram (quadratic route), -1 otherwise.
        condition: `[K]` condition number of the Gram on its numerical range, NaN otherwise.
        ill_conditioned: `[K]` bool, flagged when the condition number is large enough that the
            minimizer (not the minimum value) is sensitive.
    """

    method: str
    converged: np.ndarray
    gradient_norm: np.ndarray
    iterations: np.ndarray
    rank: np.ndarray
    condition: np.ndarray
    ill_conditioned: np.ndarray


@dataclasses.dataclass(frozen=True)
class RegretCurve:
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

    @property
    def average_loss(self) -> np.ndarray:
        """`[K]` running average training loss (1/N) Σ_{n≤N} ℓ^n(W^n)."""
        return self.cumulative_loss / self.rounds

    @property
    def taylor_optimum(self) -> np.ndarray:
        """`[K]` hindsight Taylor optimum (1/N) min_V Σ_{n≤N} 𝒯^n(V)."""
        return self.cumulative_taylor_optimum / self.rounds

    @property
    def normalized_regret(self) -> np.ndarray:
        """`[K]` Regret(N)/√N, the quantity the paper plots."""
        return self.regret / np.sqrt(self.rounds)


@dataclasses.dataclass(frozen=True)
class NeuronRegretBand:
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
    def normalized_regret(self) -> np.ndarray:
        """`[U, K]` Regret(N)/√N per neuron."""
        return self.regret / np.sqrt(self.rounds)

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
        return (self.cumulative_taylor_optimum / self.rounds).mean(axis=0)

    @property
    def std_taylor_optimum(self) -> np.ndarray:
        """`[K]` standard deviation over neurons of the Taylor optimum."""
        return (self.cumulative_taylor_optimum / self.rounds).std(axis=0)


@dataclasses.dataclass(frozen=True)
class GrowthFit:
    """Regret(N) ≈ c·N^exponent fitted over the later half of the grid.

    Attributes:
        exponent: The fitted growth exponent (NaN when no fit is possible; see `status`).
        interval: `(low, high)` confidence interval of the exponent.
        confidence: The interval's confidence level.
        sign: +1 if the fitted regret is positive, -1 if negative, 0 if it is zero.
        rounds_used: `[K']` the grid points the fit used.
        status: "ok", or why no exponent was fitted ("zero regret", "sign changes", "too few points").
    """

    exponent: float
    interval: tuple
    confidence: float
    sign: int
    rounds_used: np.ndarray
    status: str


class MissingStatisticsError(ValueError):
    """The run directory holds no statistics for the requested scale (the message says what it holds)."""


def _open(run) -> storage.Run:
    return run if isinstance(run, storage.Run) else storage.load_run(run)


def _taylor_run(run) -> storage.Run:
    run = _open(run)
    if run.manifest.get("kind") != "taylor":
        raise MissingStatisticsError(
            f"{run.logdir} is a {run.manifest.get('kind')!r} run, not a TaylorRecorder run: it holds no Taylor data."
        )
    return run


@dataclasses.dataclass(frozen=True)
class RoundLosses:
    """The per-round losses a run recorded, in round order.

    Attributes:
        steps: `[R]` the training step of each recorded round.
        losses: `[R]` ℓ^n(W^n), the loss incurred (NaN/inf where training diverged).
        finite: `[R]` whether the loss is finite (non-finite rounds are kept out of the statistics).
    """

    steps: np.ndarray
    losses: np.ndarray
    finite: np.ndarray

    @property
    def cumulative(self) -> np.ndarray:
        """`[R]` Σ_{n≤N} ℓ^n(W^n) for N = 1..R (NaN from the first non-finite round on)."""
        return np.cumsum(self.losses)


def round_losses(run) -> RoundLosses:
    """The losses incurred on each recorded round of a TaylorRecorder run."""
    run = _taylor_run(run)
    if "rounds" not in run.streams:
        raise MissingStatisticsError(f"{run.logdir} has recorded no rounds yet.")
    rows = run.stream("rounds").read()
    return RoundLosses(rows["step"].astype(np.int64), rows["loss"].astype(np.float64), rows["finite"].astype(bool))


def checkpoint_rounds(run) -> np.ndarray:
    """`[K]` the round counts N at which the run's running sums were written (its exact grid)."""
    run = _taylor_run(run)
    for name in run.streams:
        if name.startswith("gram."):
            return np.unique(run.stream(name).read("rounds").astype(np.int64))
    total = len(round_losses(run).steps)
    schedule = schedules.Schedule.from_config(run.manifest["checkpoints"])
    return np.unique([index + 1 for index in range(total) if schedule(index)] + [total])


def log_grid(total_rounds: int, points: int = 20) -> np.ndarray:
    """`[K]` about `points` log-spaced round counts from 1 to `total_rounds` (every round if fewer)."""
    if total_rounds <= points:
        return np.arange(1, total_rounds + 1)
    return np.unique(np.round(np.geomspace(1, total_rounds, points)).astype(np.int64))


# ------------------------------------------------------------ quadratic minima


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


# ------------------------------------------------------------------ routes


def _layer_record(run: storage.Run, layer: str) -> dict:
    layers = run.manifest.get("layers", {})
    if layer not in layers:
        raise MissingStatisticsError(
            f"{run.logdir} recorded no layer {layer!r}; it recorded {sorted(layers)} "
            f"({_describe_routes(run)})."
        )
    return layers[layer]


def _describe_routes(run: storage.Run) -> str:
    parts = [f"{name}: neuron {record['neuron']}, layer {record['layer']}"
             for name, record in run.manifest.get("layers", {}).items()]
    parts.append(f"network {run.manifest.get('network', {}).get('route', 'skipped')}")
    return "; ".join(parts)


def _route(run: storage.Run, layer: str | None, neuron: int | None) -> str:
    """The route that holds the requested scale, or a MissingStatisticsError saying what was recorded."""
    if layer is None:
        if neuron is not None:
            raise ValueError("neuron= needs layer= too.")
        network_record = run.manifest.get("network", {})
        if network_record.get("route") != "gram":
            raise MissingStatisticsError(
                f"{run.logdir} has no network-scale statistics ({network_record.get('reason') or 'not recorded'}); "
                f"it recorded {_describe_routes(run)}."
            )
        return "gram"
    record = _layer_record(run, layer)
    scale = "layer" if neuron is None else "neuron"
    route = record[scale]
    if route == "skipped":
        reasons = "; ".join(record.get("reasons", [])) or "not requested"
        raise MissingStatisticsError(
            f"{run.logdir} did not record the {scale} scale of layer {layer!r} ({reasons}); "
            f"it recorded {_describe_routes(run)}."
        )
    if neuron is not None and neuron not in record["neurons"]:
        raise MissingStatisticsError(
            f"{run.logdir} recorded neurons {record['neurons']} of layer {layer!r}, not neuron {neuron}."
        )
    return route


def _select_grid(available: np.ndarray, rounds) -> np.ndarray:
    if rounds is None:
        return available
    rounds = np.unique(np.asarray(rounds, np.int64))
    missing = np.setdiff1d(rounds, available)
    if missing.size:
        raise MissingStatisticsError(
            f"The running sums were written at rounds {available.tolist()}; no sums exist for rounds "
            f"{missing.tolist()} (choose the recorder's `checkpoints` to cover them)."
        )
    return rounds


def _gram_rows(run: storage.Run, stream: str, grid: np.ndarray):
    """Yields (N, gram, linear, constant) of the checkpoints of `stream` at the rounds in `grid`."""
    if stream not in run.streams:
        raise MissingStatisticsError(f"{run.logdir} has no stream {stream!r} although its manifest names the route.")
    wanted = set(grid.tolist())
    sums = run.stream(stream)
    for index, counts in enumerate(sums.chunks(("rounds",))):
        rows = [row for row, count in enumerate(counts["rounds"]) if int(count) in wanted]
        if not rows:
            continue  # the Grams of checkpoints off the grid stay on disk
        chunk = sums.chunk(index)
        for row in rows:
            wanted.discard(int(chunk["rounds"][row]))
            yield int(chunk["rounds"][row]), chunk["gram"][row], chunk["linear"][row], chunk["constant"][row]


def _quadratic_minima(run: storage.Run, layer: str | None, neurons, rounds):
    """Taylor-optimum sums of a squared-error run at the requested scale.

    Returns:
        `(grid [K], minima [U, K], diagnostics dict of [U, K])`, U = 1 at layer and network scale.
    """
    if layer is None:
        stream, members, shared = "gram.network", [0], False
    elif neurons is None:
        record = _layer_record(run, layer)
        if record.get("jacobian_is_identity"):
            return _identity_layer_minima(run, layer, record, rounds)
        stream, members, shared = f"gram.{layer}.layer", [0], False
    else:
        record = _layer_record(run, layer)
        stream, shared = f"gram.{layer}.neuron", bool(record.get("jacobian_is_identity"))
        members = [record["neurons"].index(neuron) for neuron in neurons]
    grid = _select_grid(checkpoint_rounds(run), rounds)
    minima = np.full((len(members), len(grid)), np.nan)
    diagnostics = {key: np.zeros((len(members), len(grid))) for key in
                   ("rank", "condition", "gradient_norm", "range_residual", "ill_conditioned")}
    position = {count: index for index, count in enumerate(grid)}
    found = set()
    for count, gram, linear, constant in _gram_rows(run, stream, grid):
        if shared:  # J = I: one Gram Σ x̃x̃ᵀ serves every output neuron
            gram = np.broadcast_to(gram[0], (len(members),) + gram.shape[1:])
        else:
            gram = gram[members]
        minimum, _, info = minimize_quadratic(gram, linear[members], constant[members])
        minima[:, position[count]] = minimum
        for key in diagnostics:
            diagnostics[key][:, position[count]] = info[key]
        found.add(count)
    missing = sorted(set(grid.tolist()) - found)
    if missing:
        raise MissingStatisticsError(f"{run.logdir}: stream {stream!r} has no sums at rounds {missing}.")
    return grid, minima, diagnostics


def _identity_layer_minima(run: storage.Run, layer: str, record: dict, rounds):
    """Layer scale of an output layer with J = I, from its neurons' sums.

    The layer's Taylor loss is Σ_α (neuron α's) minus (u − 1) copies of the shared
    Σ κ‖r‖² = Σ_n ℓ^n(W^n) (each neuron's constant holds the whole residual), and
    its neurons decouple, so min = Σ_α min_α − (u − 1) Σ_{finite n≤N} ℓ^n.
    """
    units = len(record["neurons"])
    if record["neuron"] != "gram" or sorted(record["neurons"]) != list(range(units)) or units == 0:
        raise MissingStatisticsError(
            f"The layer scale of output layer {layer!r} is derived from all its neurons' sums; "
            f"{run.logdir} recorded neurons {record['neurons']} by route {record['neuron']!r}."
        )
    grid, minima, diagnostics = _quadratic_minima(run, layer, record["neurons"], rounds)
    losses = round_losses(run)
    finite_loss = np.cumsum(np.where(losses.finite, losses.losses, 0.0))[grid - 1]
    layer_minima = minima.sum(axis=0) - (units - 1) * finite_loss
    summary = {key: (value.max(axis=0) if key != "rank" else value.sum(axis=0))[None]
               for key, value in diagnostics.items()}
    return grid, layer_minima[None], summary


def _streamed_grid(run: storage.Run, losses: RoundLosses, rounds) -> np.ndarray:
    """`[K]` the grid of a streamed route: `rounds`, or about 20 log-spaced points over the recorded rounds."""
    total = len(losses.steps)
    grid = log_grid(total) if rounds is None else np.unique(np.asarray(rounds, np.int64))
    if grid.size and (grid[0] < 1 or grid[-1] > total):
        raise MissingStatisticsError(f"{run.logdir} recorded {total} rounds; asked for rounds {grid.tolist()}.")
    return grid


def _streamed_neuron_minima(run: storage.Run, layer: str, neurons, rounds):
    """Neuron-scale Taylor-optimum sums from streamed per-example factors.

    Each streamed example carries its weight κ, the neuron's z, q = Jᵀr, curvature
    c = (JᵀJ)_αα, ‖r‖², and the id of its (distinct) input row x̃ (see `_neuron_sums`).

    Returns:
        As `_quadratic_minima`.
    """
    record = _layer_record(run, layer)
    members = [record["neurons"].index(neuron) for neuron in neurons]
    losses = round_losses(run)
    grid = _streamed_grid(run, losses, rounds)
    for name in (f"stream.{layer}", f"inputs.{layer}"):
        if name not in run.streams:
            raise MissingStatisticsError(f"{run.logdir} has no stream {name!r} although its manifest names the route.")
    table = run.stream(f"inputs.{layer}").read()
    inputs = np.zeros((int(table["input_id"].max()) + 1, table["inputs"].shape[1]), np.float64)
    inputs[table["input_id"]] = table["inputs"]
    last_step = losses.steps[-1] if len(losses.steps) else -1

    def rows():
        for chunk in run.stream(f"stream.{layer}").chunks():
            # A killed run can leave streamed rows ahead of its last written round: not part of the record yet.
            chunk = {key: value[chunk["step"] <= last_step] for key, value in chunk.items()}
            position = np.searchsorted(losses.steps, chunk["step"])
            if np.any(position >= len(losses.steps)) or np.any(
                    losses.steps[np.minimum(position, len(losses.steps) - 1)] != chunk["step"]):
                raise storage.CorruptRunError(f"{run.logdir}: stream 'stream.{layer}' holds steps that no round recorded.")
            yield (position + 1, chunk["input_id"], chunk["weight"],
                   *(chunk[key][:, members] for key in ("z", "q", "curvature")), chunk["residual_sq"])

    return (grid,) + _neuron_sums(inputs, rows(), grid, len(members))


def _chain_neuron_minima(run: storage.Run, layer: str, neurons, rounds):
    """Neuron-scale Taylor-optimum sums rebuilt from the streamed chain factors.

    Per example the neuron's z, q_α = (Jᵀr)_α, curvature c = (JᵀJ)_αα and the layer
    input x̃ follow from the chain factors (Observation 2, `_ChainFactors`); they are
    then summed as the streamed neuron route sums its rows (`_neuron_sums`).

    Returns:
        As `_quadratic_minima`.
    """
    losses = round_losses(run)
    grid = _streamed_grid(run, losses, rounds)
    factors = _load_chain_factors(run, layer, losses, int(grid[-1]) if grid.size else 0)
    members = np.asarray(neurons, np.int64)
    if factors is None:  # no finite round streamed anything: every sum is zero
        return (grid,) + _neuron_sums(np.zeros((0, 1)), iter(()), grid, len(members))
    rounds_total, batch = factors.valid.shape
    if factors.input_table is not None:
        inputs = factors.input_table.astype(np.float64)
    else:  # each example's x̃ = s ⊙ z of the layer below is its own row
        inputs = factors.features(slice(0, rounds_total))[factors.valid]
    per_block = max(1, _BLOCK_ELEMENTS // (batch * factors.units**2))

    def rows():
        start = 0
        for part in _round_blocks(0, rounds_total, per_block):
            valid = factors.valid[part]
            count = int(valid.sum())
            ids = factors.input_id[part][valid] if factors.input_table is not None else np.arange(start, start + count)
            start += count
            curvature = np.einsum("rbii->rbi", factors.jtj(part))
            yield (np.repeat(factors.round_counts[part], valid.sum(axis=1)), ids, factors.weight[part][valid],
                   factors.z[part][valid][:, members], factors.q(part)[valid][:, members],
                   curvature[valid][:, members], factors.residual_sq[part][valid])

    return (grid,) + _neuron_sums(inputs, rows(), grid, len(members))


def _neuron_sums(inputs: np.ndarray, rows, grid: np.ndarray, count: int):
    """Neuron Taylor-optimum sums at the grid points from per-example rows in round order.

    Each row block is `(round_count, input_id, κ, z, q, c, ‖r‖²)`, the last four per
    member `[n, count]`. Between grid points the per-id weights are summed first, so
    each distinct x̃ enters the Gram once per segment however often it was seen:
    H_α += X̃ᵀ diag(Σκc) X̃ over the columns that are non-zero in the segment.

    Returns:
        `(minima [count, K], diagnostics dict of [count, K])`.
    """
    size = inputs.shape[1]
    gram, linear, constant = np.zeros((count, size, size)), np.zeros((count, size)), np.zeros(count)
    curvature_sum, linear_sum = np.zeros((len(inputs), count)), np.zeros((len(inputs), count))
    minima = np.full((count, len(grid)), np.nan)
    diagnostics = {key: np.zeros((count, len(grid))) for key in
                   ("rank", "condition", "gradient_norm", "range_residual", "ill_conditioned")}
    segment = 0

    def close_segment():
        touched = np.flatnonzero(np.any(curvature_sum != 0, axis=1) | np.any(linear_sum != 0, axis=1))
        used = inputs[touched]
        columns = np.flatnonzero(np.any(used != 0, axis=0))
        used = used[:, columns]
        block = np.ix_(columns, columns)
        for member in range(count):
            gram[member][block] += (used * curvature_sum[touched, member, None]).T @ used
            linear[member, columns] += used.T @ linear_sum[touched, member]
        curvature_sum[touched] = 0
        linear_sum[touched] = 0
        minimum, _, info = minimize_quadratic(gram, linear, constant)
        minima[:, segment] = minimum
        for key in diagnostics:
            diagnostics[key][:, segment] = info[key]

    for round_count, input_id, weight, z, q, curvature, residual_sq in rows:
        weight = np.asarray(weight, np.float64)[:, None]
        z, q, curvature = (np.asarray(value, np.float64) for value in (z, q, curvature))
        residual_sq = np.asarray(residual_sq, np.float64)[:, None]
        start = 0
        while start < len(round_count):
            while segment < len(grid) and round_count[start] > grid[segment]:
                close_segment()
                segment += 1
            if segment == len(grid):
                break
            stop = start + int(np.searchsorted(round_count[start:], grid[segment], side="right"))
            part = slice(start, stop)
            ids = input_id[part]
            np.add.at(curvature_sum, ids, weight[part] * curvature[part])
            np.add.at(linear_sum, ids, weight[part] * (q[part] - curvature[part] * z[part]))
            constant += np.sum(weight[part] * (residual_sq[part] - 2 * z[part] * q[part]
                                               + curvature[part] * z[part] ** 2), axis=0)
            start = stop
        if segment == len(grid):
            break
    while segment < len(grid):
        close_segment()
        segment += 1
    return minima, diagnostics


# ------------------------------------------- layer scale from streamed chain factors

# Float64 elements of the largest temporary of one block of rounds (16 MiB).
_BLOCK_ELEMENTS = 1 << 21
# Damping of the Kronecker preconditioner, relative to its largest eigenvalue.
_KRONECKER_DAMPING = 1e-6


@dataclasses.dataclass(frozen=True)
class _ChainFactors:
    """The streamed factors of one hidden layer l = c_j of a dense chain c_0, ..., c_m.

    Rows are laid out per round, `[R, B, ·]`: the R rounds that streamed rows, in order,
    each padded to the largest batch B with κ = 0. Factors stay at the run's dtype; each
    product is formed in float64 for a block of rounds at a time (a `slice` of R). Rows of
    one round share W^n and K^n, so the chain runs as batched matmuls per round.

    Attributes:
        round_counts: `[R]` the round count N (from 1) of each row block.
        valid: `[R, B]` which rows hold an example.
        weight: `[R, B]` κ (0 on padding).
        residual_sq: `[R, B]` ‖r‖².
        z: `[R, B, u]` the layer's pre-activation.
        multipliers: s_k `[R, B, u_k]` for k = j, ..., m − 1.
        kernels: W_k `[R, u_{k−1}, u_k]` for k = j + 1, ..., m − 1.
        output_gram: K = W_m W_mᵀ `[R, u_{m−1}, u_{m−1}]`.
        q_top: q of c_{m−1} `[R, B, u_{m−1}]`.
        input_table: `[D, P]` the distinct x̃ of c_0 (with its 1) when j = 0, else None.
        input_id: `[R, B]` each example's row of `input_table` when j = 0, else None.
        below: (z, s) of c_{j−1} `[R, B, u_{j−1}]` when j > 0 (x̃ = s ⊙ z), else None.
        use_bias: Whether x̃ ends in a 1 that `below` lacks.
    """

    round_counts: np.ndarray
    valid: np.ndarray
    weight: np.ndarray
    residual_sq: np.ndarray
    z: np.ndarray
    multipliers: tuple
    kernels: tuple
    output_gram: np.ndarray
    q_top: np.ndarray
    input_table: np.ndarray | None
    input_id: np.ndarray | None
    below: tuple | None
    use_bias: bool

    @property
    def batch(self) -> int:
        return self.valid.shape[1]

    @property
    def units(self) -> int:
        return self.z.shape[2]

    @property
    def size(self) -> int:
        """P, the length of x̃."""
        if self.input_table is not None:
            return self.input_table.shape[1]
        return self.below[0].shape[2] + int(self.use_bias)

    def features(self, part: slice) -> np.ndarray:
        """`[r, B, P]` x̃ of the rows of the rounds `part`."""
        if self.input_table is not None:
            return self.input_table[self.input_id[part]].astype(np.float64)
        z, multiplier = self.below
        features = multiplier[part].astype(np.float64) * z[part]
        if self.use_bias:
            features = np.concatenate([features, np.ones(features.shape[:2] + (1,))], axis=2)
        return features

    def _chain(self, part: slice):
        # The multipliers stay at the run's dtype: each product with a float64 array is float64,
        # and an explicit cast would copy every example's multipliers on every matvec.
        multipliers = [multiplier[part] for multiplier in self.multipliers]
        kernels = [kernel[part].astype(np.float64) for kernel in self.kernels]
        return multipliers, kernels

    def apply_jtj(self, part: slice, vectors: np.ndarray) -> np.ndarray:
        """`[r, B, u]` M_e y_e = J_eᵀJ_e y_e of `vectors` y `[r, B, u]`, without forming M_e.

        Up the chain (S_j, then W_kᵀ and S_k), through K, and back down (S_k, W_k).
        """
        multipliers, kernels = self._chain(part)
        product = multipliers[0] * vectors
        for kernel, multiplier in zip(kernels, multipliers[1:]):
            product = multiplier * (product @ kernel)
        product = multipliers[-1] * (product @ self.output_gram[part].astype(np.float64))
        for kernel, multiplier in zip(reversed(kernels), reversed(multipliers[:-1])):
            product = multiplier * (product @ kernel.transpose(0, 2, 1))
        return product

    def jtj(self, part: slice) -> np.ndarray:
        """`[r, B, u, u]` M_e, from M_{m−1} = S K S down by M_k = S_k W_{k+1} M_{k+1} W_{k+1}ᵀ S_k."""
        multipliers, kernels = self._chain(part)
        top = multipliers[-1]
        jtj = top[..., :, None] * self.output_gram[part, None].astype(np.float64) * top[..., None, :]
        for kernel, multiplier in zip(reversed(kernels), reversed(multipliers[:-1])):
            jtj = kernel[:, None] @ jtj @ kernel.transpose(0, 2, 1)[:, None]
            jtj = multiplier[..., :, None] * jtj * multiplier[..., None, :]
        return jtj

    def q(self, part: slice) -> np.ndarray:
        """`[r, B, u]` q = Jᵀr of the layer, from q_k = s_k ⊙ (W_{k+1} q_{k+1})."""
        multipliers, kernels = self._chain(part)
        q = self.q_top[part].astype(np.float64)
        for kernel, multiplier in zip(reversed(kernels), reversed(multipliers[:-1])):
            q = multiplier * (q @ kernel.transpose(0, 2, 1))
        return q


def _round_blocks(start: int, stop: int, rounds_per_block: int):
    """Slices of at most `rounds_per_block` rounds covering [start, stop)."""
    for begin in range(start, stop, rounds_per_block):
        yield slice(begin, min(begin + rounds_per_block, stop))


def _chain_rows(run: storage.Run, losses: RoundLosses, fields: list, last_round: int):
    """The rows of stream "chain" of the rounds 1..`last_round`, laid out `[R, B, ·]` per round.

    Returns:
        `(round_counts [R], valid [R, B], rows)`, rows a dict of the `fields` (zero padded), or
        None if none of those rounds streamed a row.
    """
    stream = run.stream("chain")
    row_steps = [chunk["step"] for chunk in stream.chunks(("step",))]
    row_steps = np.concatenate(row_steps).astype(np.int64) if row_steps else np.zeros(0, np.int64)
    # A killed run can leave streamed rows ahead of its last written round: not part of the record yet.
    last_step = losses.steps[-1] if len(losses.steps) else -1
    row_steps = row_steps[:np.searchsorted(row_steps, last_step, side="right")]
    index = np.searchsorted(losses.steps, row_steps)
    if np.any(index >= len(losses.steps)) or np.any(losses.steps[np.minimum(index, len(losses.steps) - 1)]
                                                   != row_steps):
        raise storage.CorruptRunError(f"{run.logdir}: stream 'chain' holds steps that no round recorded.")
    counts = index + 1
    if np.any(np.diff(counts) < 0):
        raise storage.CorruptRunError(f"{run.logdir}: the rows of stream 'chain' are not in step order.")
    used = int(np.searchsorted(counts, last_round, side="right"))
    if used == 0:
        return None
    round_counts, first_row, rows_per_round = np.unique(counts[:used], return_index=True, return_counts=True)
    slot = np.repeat(np.arange(len(round_counts)), rows_per_round)
    offset = np.arange(used) - first_row[slot]
    shape = (len(round_counts), int(rows_per_round.max()))
    rows, start = {}, 0
    for chunk in stream.chunks(fields):
        missing = [field for field in fields if field not in chunk]
        if missing:
            raise MissingStatisticsError(f"{run.logdir}: stream 'chain' lacks the fields {missing}.")
        stop = min(start + len(chunk[fields[0]]), used)
        for field in fields:
            if field not in rows:
                rows[field] = np.zeros(shape + chunk[field].shape[1:], chunk[field].dtype)
            rows[field][slot[start:stop], offset[start:stop]] = chunk[field][: stop - start]
        start = stop
        if start == used:
            break
    valid = np.zeros(shape, bool)
    valid[slot, offset] = True
    return round_counts, valid, rows


def _chain_weights(run: storage.Run, round_steps: np.ndarray, fields: list) -> dict:
    """The `fields` of stream "chain.weights" at each of `round_steps` (sorted), `[R, ·]` each."""
    weights, found = {}, np.zeros(len(round_steps), bool)
    for chunk in run.stream("chain.weights").chunks(["step"] + fields):
        missing = [field for field in fields if field not in chunk]
        if missing:
            raise MissingStatisticsError(f"{run.logdir}: stream 'chain.weights' lacks the fields {missing}.")
        where = np.minimum(np.searchsorted(round_steps, chunk["step"]), len(round_steps) - 1)
        match = round_steps[where] == chunk["step"]
        for field in fields:
            if field not in weights:
                weights[field] = np.zeros((len(round_steps),) + chunk[field].shape[1:], chunk[field].dtype)
            weights[field][where[match]] = chunk[field][match]
        found[where[match]] = True
    if not found.all():
        raise storage.CorruptRunError(
            f"{run.logdir}: stream 'chain.weights' has no weights for the steps {round_steps[~found].tolist()}."
        )
    return weights


def _input_table(run: storage.Run, layer: str, input_ids: np.ndarray) -> np.ndarray:
    """`[D, P]` the distinct inputs of stream "inputs.<layer>" by id, checked to hold every one of `input_ids`."""
    table = run.stream(f"inputs.{layer}").read()
    inputs = np.zeros((int(table["input_id"].max()) + 1, table["inputs"].shape[1]), table["inputs"].dtype)
    inputs[table["input_id"]] = table["inputs"]
    stored = np.zeros(len(inputs) + 1, bool)
    stored[table["input_id"]] = True
    if not stored[np.clip(input_ids, 0, len(inputs))].all():
        raise storage.CorruptRunError(f"{run.logdir}: stream 'chain' names inputs that 'inputs.{layer}' lacks.")
    return inputs


def _load_chain_factors(run: storage.Run, layer: str, losses: RoundLosses, last_round: int):
    """The factors of `layer` for the rounds 1..`last_round` (a `_ChainFactors`; None if none streamed rows)."""
    chain = run.manifest.get("chain")
    if not chain or layer not in chain["layers"][:-1]:
        raise MissingStatisticsError(
            f"{run.logdir} streams the layer scale of {layer!r} but its manifest names no dense chain holding it "
            f"(chain: {chain})."
        )
    names = chain["layers"]
    position = names.index(layer)
    hidden = names[:-1]
    for name in ["chain", "chain.weights"] + ([f"inputs.{names[0]}"] if position == 0 else []):
        if name not in run.streams:
            raise MissingStatisticsError(f"{run.logdir} has no stream {name!r} although its manifest names the route.")
    below = [] if position == 0 else [f"{names[position - 1]}/z", f"{names[position - 1]}/s"]
    fields = (["weight", "residual_sq", "q", f"{layer}/z"] + [f"{name}/s" for name in hidden[position:]]
              + (["input_id"] if position == 0 else below))
    layout = _chain_rows(run, losses, fields, last_round)
    if layout is None:
        return None
    round_counts, valid, rows = layout
    kernels = [f"{name}/kernel" for name in hidden[position + 1:]]
    weights = _chain_weights(run, losses.steps[round_counts - 1], kernels + ["output_gram"])
    return _ChainFactors(
        round_counts=round_counts, valid=valid, weight=rows["weight"].astype(np.float64),
        residual_sq=rows["residual_sq"].astype(np.float64), z=rows[f"{layer}/z"],
        multipliers=tuple(rows[f"{name}/s"] for name in hidden[position:]),
        kernels=tuple(weights[field] for field in kernels), output_gram=weights["output_gram"], q_top=rows["q"],
        input_table=_input_table(run, names[0], rows["input_id"][valid]) if position == 0 else None,
        input_id=rows["input_id"] if position == 0 else None,
        below=tuple(rows[field] for field in below) or None,
        use_bias=position > 0 and bool(chain["use_bias"][layer]),
    )


def _explicit_chain_minima(factors: _ChainFactors, ends: np.ndarray) -> dict:
    """Forms H, g, s segment by segment (H by one GEMM per block of rounds) and solves each exactly.

    Per example H += κ (x̃x̃ᵀ) ⊗ M, so a block's H is ((κ x̃x̃ᵀ) flattened `[n, P²]`)ᵀ @ (M
    flattened `[n, u²]`), whose `[P, P, u, u]` layout is transposed to v's `[P, u, P, u]`
    once per grid point.
    """
    size, units = factors.size, factors.units
    gram, linear, constant = np.zeros((size * size, units * units)), np.zeros((size, units)), 0.0
    rounds_per_block = max(1, _BLOCK_ELEMENTS // (factors.batch * (size * size + 2 * units * units)))
    results = {key: np.zeros(len(ends)) for key in ("minimum", "rank", "condition", "gradient_norm",
                                                    "range_residual", "ill_conditioned")}
    start = 0
    for position, end in enumerate(ends):
        for part in _round_blocks(start, end, rounds_per_block):
            features, jtj = factors.features(part), factors.jtj(part)
            weighted = factors.weight[part][..., None] * features
            z, q = factors.z[part].astype(np.float64), factors.q(part)
            gram += (weighted[..., :, None] * features[..., None, :]).reshape(-1, size * size).T @ jtj.reshape(
                -1, units * units)
            curvature_z = (jtj @ z[..., None])[..., 0]
            linear += weighted.reshape(-1, size).T @ (q - curvature_z).reshape(-1, units)
            constant += np.sum(factors.weight[part] * (factors.residual_sq[part] - 2 * np.sum(z * q, axis=2)
                                                       + np.sum(z * curvature_z, axis=2)))
        start = end
        hessian = gram.reshape(size, size, units, units).transpose(0, 2, 1, 3).reshape(size * units, -1)
        minimum, _, info = minimize_quadratic(hessian[None], linear.reshape(1, -1), np.array([constant]))
        results["minimum"][position] = minimum[0]
        for key in info:
            results[key][position] = info[key][0]
    results["converged"] = (results["gradient_norm"] < 1e-6) & (results["range_residual"] < 1e-6)
    results["iterations"] = np.zeros(len(ends), np.int64)
    return results


class _PrefixGram:
    """H of the rounds [0, `rounds`) as a matrix-free operator on the columns of x̃ that are not always zero.

    Hv = Σ_e κ_e x̃_e ⊗ (M_e Vᵀx̃_e): X̃V is formed once over the distinct inputs, its rows
    gathered by id, M_e applied along the chain, and the κ-weighted results summed per
    distinct input (a sparse matrix product) before one GEMM with X̃ᵀ.

    Attributes:
        columns: `[P']` the columns of x̃ that are non-zero in some example of the prefix.
        table: `[D, P']` the distinct x̃ restricted to `columns`.
        input_weight: `[D]` Σκ of each distinct input.
    """

    def __init__(self, factors: _ChainFactors, rounds: int):
        self.factors = factors
        valid = factors.valid[:rounds]
        widest = max([factors.units] + [multiplier.shape[2] for multiplier in factors.multipliers])
        self.blocks = list(_round_blocks(0, rounds, max(1, _BLOCK_ELEMENTS // (4 * factors.batch * widest))))
        if factors.input_table is not None:
            distinct, local = np.unique(factors.input_id[:rounds][valid], return_inverse=True)
            table = factors.input_table[distinct].astype(np.float64)
        else:  # inputs of a hidden layer change every round: each example is its own row
            table = np.concatenate([factors.features(part)[factors.valid[part]] for part in self.blocks])
            local = np.arange(len(table))
        self.local_id = np.zeros(valid.shape, np.int64)
        self.local_id[valid] = local
        self.columns = np.flatnonzero(np.any(table != 0, axis=0))
        self.table = np.ascontiguousarray(table[:, self.columns])
        self.input_weight = np.bincount(local, factors.weight[:rounds][valid], minlength=len(table))
        self.aggregators = []
        for part in self.blocks:
            rows = factors.valid[part].reshape(-1)
            self.aggregators.append(scipy.sparse.csr_matrix(
                (factors.weight[part].reshape(-1)[rows], (self.local_id[part].reshape(-1)[rows], np.flatnonzero(rows))),
                shape=(len(table), rows.size),
            ))
        self.shape = (len(self.columns) * factors.units,) * 2

    def matvec(self, vector: np.ndarray) -> np.ndarray:
        units = self.factors.units
        projected = self.table @ vector.reshape(len(self.columns), units)
        pulled = np.zeros_like(projected)
        for part, aggregator in zip(self.blocks, self.aggregators):
            curvature = self.factors.apply_jtj(part, projected[self.local_id[part]])
            pulled += aggregator @ curvature.reshape(-1, units)
        return (self.table.T @ pulled).reshape(-1)

    def kronecker_inverse(self, mean_jtj: np.ndarray):
        """The inverse of (Σκ x̃x̃ᵀ) ⊗ (Σκ M)/(Σκ), damped relative to its largest eigenvalue.

        Pixels that are zero in every image are not among `columns`; the damping keeps
        inputs that are almost always zero and units that are almost always off invertible.
        """
        input_values, input_vectors = np.linalg.eigh(self.table.T @ (self.input_weight[:, None] * self.table))
        unit_values, unit_vectors = np.linalg.eigh(mean_jtj)
        spectrum = np.outer(np.maximum(input_values, 0), np.maximum(unit_values, 0))
        spectrum += _KRONECKER_DAMPING * max(spectrum.max(), np.finfo(float).tiny)
        units = self.factors.units

        def solve(vector):
            rotated = input_vectors.T @ vector.reshape(len(self.columns), units) @ unit_vectors
            return (input_vectors @ (rotated / spectrum) @ unit_vectors.T).reshape(-1)

        return scipy.sparse.linalg.LinearOperator(self.shape, matvec=solve, dtype=np.float64)


def _cg_chain_minima(factors: _ChainFactors, ends: np.ndarray, rtol: float, maxiter: int) -> dict:
    """Solves each grid point's Hv = −g by preconditioned conjugate gradients, warm-started.

    g, s and Σκ M are summed segment by segment (M_e formed a block at a time and
    dropped); H is never formed (`_PrefixGram`). The value reported is f(v) = vᵀHv + 2gᵀv + s
    = vᵀ(Hv + g) + gᵀv + s at the returned v, an upper bound of the minimum that meets it
    as the relative residual ‖Hv + g‖/‖g‖ goes to 0.
    """
    size, units = factors.size, factors.units
    linear, constant, jtj_sum, weight_sum = np.zeros((size, units)), 0.0, np.zeros((units, units)), 0.0
    solution = np.zeros((size, units))
    rounds_per_block = max(1, _BLOCK_ELEMENTS // (factors.batch * (size + 2 * units * units)))
    results = {key: np.zeros(len(ends)) for key in ("minimum", "gradient_norm", "iterations")}
    results["converged"] = np.zeros(len(ends), bool)
    start = 0
    for position, end in enumerate(ends):
        for part in _round_blocks(start, end, rounds_per_block):
            weight, features, jtj = factors.weight[part], factors.features(part), factors.jtj(part)
            z, q = factors.z[part].astype(np.float64), factors.q(part)
            curvature_z = (jtj @ z[..., None])[..., 0]
            linear += (weight[..., None] * features).reshape(-1, size).T @ (q - curvature_z).reshape(-1, units)
            constant += np.sum(weight * (factors.residual_sq[part] - 2 * np.sum(z * q, axis=2)
                                         + np.sum(z * curvature_z, axis=2)))
            jtj_sum += np.einsum("rb,rbkl->kl", weight, jtj)
            weight_sum += np.sum(weight)
        start = end
        gradient_scale = np.linalg.norm(linear)
        if gradient_scale == 0:  # no examples yet, or g = 0: v = 0 is a minimizer
            solution[:] = 0.0
            results["minimum"][position], results["converged"][position] = constant, True
            continue
        gram = _PrefixGram(factors, end)
        operator = scipy.sparse.linalg.LinearOperator(gram.shape, matvec=gram.matvec, dtype=np.float64)
        preconditioner = gram.kronecker_inverse(jtj_sum / weight_sum)
        target = -linear[gram.columns].reshape(-1)
        iterate, iterations = solution[gram.columns].reshape(-1), 0

        def count(_):
            nonlocal iterations
            iterations += 1

        while True:  # restarted (residual recomputed) should CG's recursive residual drift below the true one
            before = iterations
            iterate, _ = scipy.sparse.linalg.cg(operator, target, x0=iterate, rtol=rtol, atol=0.0,
                                                maxiter=maxiter - iterations, M=preconditioner, callback=count)
            residual = gram.matvec(iterate) - target  # Hv + g
            relative = np.linalg.norm(residual) / gradient_scale
            if relative <= rtol or iterations >= maxiter or iterations == before:
                break
        solution[:] = 0.0
        solution[gram.columns] = iterate.reshape(-1, units)
        results["minimum"][position] = iterate @ residual - target @ iterate + constant
        results["gradient_norm"][position] = relative
        results["iterations"][position] = iterations
        results["converged"][position] = relative <= rtol
        del gram, operator, preconditioner  # the next prefix's operator replaces this one's input table
    results["iterations"] = results["iterations"].astype(np.int64)
    return results


def _streamed_layer_minima(run: storage.Run, layer: str, rounds, *, layer_solver: str = "auto",
                           max_explicit_parameters: int = 4096, cg_rtol: float = 1e-4, cg_maxiter: int = 3000):
    """Layer-scale Taylor-optimum sums of a hidden dense-chain layer from streamed chain factors.

    The recorder streams, per example, κ, ‖r‖², the layer's z, the multipliers s_k of
    every chain layer from l up, q of the top hidden layer and (per round) the kernels
    above l and K = W_L W_Lᵀ; x̃ is the stored input row of the lowest streamed layer,
    else s_{l−1} ⊙ z_{l−1} (and a 1). From these J_lᵀ J_l = M_l and q_l follow down the
    chain (`keras_taylor.statistics` notation):

        M_{L−1} = S_{L−1} K S_{L−1},  M_k = S_k W_{k+1} M_{k+1} W_{k+1}ᵀ S_k,
        q_k = s_k ⊙ (W_{k+1} q_{k+1}),

    and each example adds κ (x̃x̃ᵀ) ⊗ M to H, κ x̃ ⊗ (q − Mz) to g and
    κ (‖r‖² − 2zᵀq + zᵀMz) to s. The minimum of vᵀHv + 2gᵀv + s is found exactly
    from H ("explicit", pivoted Cholesky) or matrix-free ("cg", conjugate gradients with
    a Kronecker preconditioner, for a layer whose H does not fit in memory).

    Args:
        run: The opened run.
        layer: A hidden layer of `manifest["chain"]` whose layer scale was streamed.
        rounds: The grid of N; default about 20 log-spaced round counts.
        layer_solver: "explicit", "cg", or "auto": explicit when P·u ≤ `max_explicit_parameters`.
        max_explicit_parameters: The largest P·u that "auto" solves explicitly (H is (P·u)²).
        cg_rtol: CG stops when ‖Hv + g‖ ≤ cg_rtol·‖g‖. On an MNIST-sized first layer (one
            epoch), 1e-4 gave the minimum at N = 938 to 6e-8 of 1e-8's (10⁻⁶ of the regret) in a
            quarter of the iterations; where the examples' total curvature rank nears P·u
            (N ≈ 20–75 rounds there) H is far worse conditioned, 1e-4 took up to 2,200
            iterations and left 7·10⁻⁴ of the regret (1e-6 was not reached in 5,000).
        cg_maxiter: CG iteration limit per grid point.

    Returns:
        As `_quadratic_minima`, with the diagnostics also holding "converged", "iterations"
        and "method" `[1, K]`. For CG, "gradient_norm" is the relative residual
        ‖Hv + g‖/‖g‖, "rank" −1, "condition" NaN, "range_residual" 0.

    Raises:
        MissingStatisticsError: the run lacks the chain streams or the layer is not in its chain.
        ValueError: an unknown `layer_solver`.
    """
    if layer_solver not in ("auto", "explicit", "cg"):
        raise ValueError(f"layer_solver must be 'auto', 'explicit' or 'cg'. Received: layer_solver={layer_solver!r}")
    losses = round_losses(run)
    grid = _streamed_grid(run, losses, rounds)
    factors = _load_chain_factors(run, layer, losses, int(grid[-1]) if grid.size else 0)
    if factors is None:  # no round up to the grid's end streamed a row: every prefix sums to 0
        results = {"minimum": np.zeros(len(grid)), "gradient_norm": np.zeros(len(grid)),
                   "iterations": np.zeros(len(grid), np.int64), "converged": np.ones(len(grid), bool)}
        solver, method = "none", "none (no recorded round up to the grid's end streamed an example)"
    else:
        ends = np.searchsorted(factors.round_counts, grid, side="right")  # the row blocks of each prefix
        solver = layer_solver
        if solver == "auto":
            solver = "explicit" if factors.size * factors.units <= max_explicit_parameters else "cg"
        if solver == "explicit":
            results = _explicit_chain_minima(factors, ends)
            method = "pivoted Cholesky of the layer Gram summed from streamed chain factors"
        else:
            results = _cg_chain_minima(factors, ends, cg_rtol, cg_maxiter)
            method = f"Kronecker-preconditioned conjugate gradients (cg_rtol={cg_rtol:g}) on streamed chain factors"
    for key, value in (("rank", -1), ("condition", np.nan), ("range_residual", 0.0), ("ill_conditioned", False)):
        results.setdefault(key, np.full(len(grid), value))
    failed = ~results["converged"]
    if solver == "cg" and failed.any():
        warnings.warn(
            f"{run.logdir}: conjugate gradients for the layer-scale Taylor optimum of {layer!r} did not reach "
            f"cg_rtol={cg_rtol:g} within cg_maxiter={cg_maxiter} at rounds {grid[failed].tolist()} (relative "
            f"residuals {results['gradient_norm'][failed].tolist()}); those minima are upper bounds.",
            TaylorOptimumWarning, stacklevel=4,
        )
    minima = results.pop("minimum")
    diagnostics = {key: np.asarray(value)[None] for key, value in results.items()}
    diagnostics["method"] = np.full((1, len(grid)), method)
    return grid, minima[None], diagnostics


# ------------------------------------------------------------------ curves


def _diagnostics(method: str, info: dict, member: int, iterations=None) -> SolverDiagnostics:
    gradient_norm = info["gradient_norm"][member]
    return SolverDiagnostics(
        method=method,
        converged=(gradient_norm < 1e-6) & (info["range_residual"][member] < 1e-6),
        gradient_norm=gradient_norm,
        iterations=np.zeros(len(gradient_norm), np.int64) if iterations is None else iterations,
        rank=info["rank"][member].astype(np.int64),
        condition=info["condition"][member],
        ill_conditioned=info["ill_conditioned"][member].astype(bool),
    )


_LAYER_STREAM_OPTIONS = ("layer_solver", "max_explicit_parameters", "cg_rtol", "cg_maxiter")


def _minima(run: storage.Run, layer, neurons, rounds, **solver_options):
    route = _route(run, layer, None if neurons is None else neurons[0])
    for neuron in neurons or ():
        _route(run, layer, neuron)
    stream_options = {name: solver_options.pop(name) for name in _LAYER_STREAM_OPTIONS if name in solver_options}
    if not run.manifest["loss"]["quadratic"]:
        return _factored_minima(run, layer, neurons, rounds, **solver_options)
    if solver_options:
        raise TypeError(f"Unknown solver options for a squared-error run: {sorted(solver_options)}.")
    if route == "stream" and neurons is None:
        grid, minima, info = _streamed_layer_minima(run, layer, rounds, **stream_options)
        diagnostics = SolverDiagnostics(
            method=str(info["method"][0, 0]) if grid.size else "none", converged=info["converged"][0].astype(bool),
            gradient_norm=info["gradient_norm"][0], iterations=info["iterations"][0].astype(np.int64),
            rank=info["rank"][0].astype(np.int64), condition=info["condition"][0].astype(np.float64),
            ill_conditioned=info["ill_conditioned"][0].astype(bool),
        )
        return grid, minima, [diagnostics], round_losses(run).cumulative[grid - 1]
    if route == "stream":
        grid, minima, info = _streamed_neuron_minima(run, layer, neurons, rounds)
    elif route == "chain":
        grid, minima, info = _chain_neuron_minima(run, layer, neurons, rounds)
    else:
        grid, minima, info = _quadratic_minima(run, layer, neurons, rounds)
    diagnostics = [_diagnostics("pivoted Cholesky", info, member) for member in range(len(minima))]
    return grid, minima, diagnostics, round_losses(run).cumulative[grid - 1]


def regret_curve(run, layer: str | None = None, neuron: int | None = None, rounds=None,
                 **solver_options) -> RegretCurve:
    """Regret(N) of the network, one layer or one neuron (paper, Theorem 2).

    Args:
        run: A run directory (path) or an opened `storage.Run` of a TaylorRecorder.
        layer: None for the network scale, else a recorded layer's name.
        neuron: With `layer`, a recorded neuron (unit or filter index) for the neuron scale.
        rounds: The grid of N. Default: the checkpoints the recorder wrote its running
            sums at (squared error; log-spaced by default), a log-spaced grid of about 20
            points for streamed and cross-entropy routes.
        **solver_options: For cross-entropy runs, options of the bounded solver (see
            `factored_taylor_optimum`); for a layer whose chain factors were streamed,
            `layer_solver`, `max_explicit_parameters`, `cg_rtol`, `cg_maxiter` (see
            `_streamed_layer_minima`; ignored by every other route, so one set of options
            can serve a whole run).

    Returns:
        The `RegretCurve`.

    Raises:
        MissingStatisticsError: the run did not record that scale (the message says what it did record).
    """
    run = _taylor_run(run)
    grid, minima, diagnostics, cumulative_loss = _minima(run, layer, None if neuron is None else [neuron], rounds,
                                                         **solver_options)
    return RegretCurve(
        scale="network" if layer is None else ("layer" if neuron is None else "neuron"),
        layer=layer, neuron=neuron, rounds=grid, cumulative_loss=cumulative_loss,
        cumulative_taylor_optimum=minima[0], regret=cumulative_loss - minima[0], diagnostics=diagnostics[0],
    )


def neuron_regret_band(run, layer: str, neurons=None, rounds=None, *, sample: int | None = None,
                       seed: int = 0, **solver_options) -> NeuronRegretBand:
    """Neuron-scale regret of several neurons of one layer, solved together.

    Args:
        run: A run directory or opened run.
        layer: The layer's name.
        neurons: Neuron indices; default every recorded neuron of the layer.
        rounds: The grid of N (as `regret_curve`).
        sample: Take a fixed random sample of this many of those neurons (the paper uses 50).
        seed: Seed of the sample.

    Returns:
        The `NeuronRegretBand` (mean and standard deviation across neurons as properties).
    """
    run = _taylor_run(run)
    recorded = list(_layer_record(run, layer)["neurons"])
    neurons = recorded if neurons is None else [int(n) for n in neurons]
    if not neurons:
        raise MissingStatisticsError(f"{run.logdir} recorded no neurons of layer {layer!r}.")
    if sample is not None and sample < len(neurons):
        neurons = sorted(np.random.default_rng(seed).choice(neurons, sample, replace=False).tolist())
    grid, minima, diagnostics, cumulative_loss = _minima(run, layer, neurons, rounds, **solver_options)
    curves = tuple(
        RegretCurve("neuron", layer, neuron, grid, cumulative_loss, minima[index], cumulative_loss - minima[index],
                    diagnostics[index])
        for index, neuron in enumerate(neurons)
    )
    return NeuronRegretBand(layer, np.array(neurons), grid, cumulative_loss, minima, cumulative_loss[None] - minima,
                            curves)


def fit_growth(curve, *, fraction: float = 0.5, confidence: float = 0.95) -> GrowthFit:
    """Fits Regret(N) ≈ c·N^a over the later `fraction` of the grid (log-log least squares).

    Zero and negative regret are reported, never clipped: regret that is zero on the
    whole fitted range (a dead neuron) gives status "zero regret"; regret that is
    negative throughout is fitted as −c·N^a with sign −1; regret that changes sign
    (or is zero somewhere) on the range gives status "sign changes" and no exponent.

    Args:
        curve: A `RegretCurve` (or anything with `rounds` and `regret` `[K]`).
        fraction: The share of the grid, from its end, that the fit uses.
        confidence: Level of the exponent's t-interval.

    Returns:
        The `GrowthFit`.
    """
    rounds, regret = np.asarray(curve.rounds, np.float64), np.asarray(curve.regret, np.float64)
    keep = np.arange(len(rounds)) >= int(np.floor(len(rounds) * (1 - fraction)))
    rounds, regret = rounds[keep], regret[keep]
    nan = (float("nan"), float("nan"))

    def no_fit(status: str, sign: int = 0) -> GrowthFit:
        return GrowthFit(float("nan"), nan, confidence, sign, rounds.astype(np.int64), status)

    if len(rounds) < 3:
        return no_fit("too few points")
    if not np.all(np.isfinite(regret)):
        return no_fit("non-finite regret")
    if np.all(regret == 0):
        return no_fit("zero regret")
    sign = int(np.sign(regret[-1]))
    if not np.all(np.sign(regret) == sign):
        return no_fit("sign changes", sign)
    fit = scipy.stats.linregress(np.log(rounds), np.log(sign * regret))
    half_width = scipy.stats.t.ppf(0.5 + confidence / 2, len(rounds) - 2) * fit.stderr
    return GrowthFit(float(fit.slope), (float(fit.slope - half_width), float(fit.slope + half_width)),
                     confidence, sign, rounds.astype(np.int64), "ok")


# ------------------------------------------------------- cross-entropy (factored)


class TaylorOptimumWarning(UserWarning):
    """A bounded Taylor optimum did not converge to the solver's tolerance (see the diagnostics)."""


def _convex_loss(manifest: dict) -> ConvexLoss:
    loss = manifest["loss"]
    if loss["name"] in CONVEX_LOSSES:
        return convex_loss_from_record(loss)
    raise MissingStatisticsError(
        f"The post-hoc analysis evaluates the losses {sorted(CONVEX_LOSSES)}; this run's loss "
        f"is {loss['name']!r} (declared convex by the user), which it cannot rebuild without TensorFlow."
    )


@dataclasses.dataclass(frozen=True)
class _LinearRound:
    """One round's Taylor outputs as an affine map of the weights at one scale: T(v) = offset + map(v)."""

    offset: np.ndarray  # [B, p_L]
    targets: np.ndarray
    weights: np.ndarray  # W^n at this scale, flattened
    design: np.ndarray | None = None  # [B, p_L, P] (neuron scale)
    features: np.ndarray | None = None  # [B, S, P] layer scale: x̃ or the patches with a 1
    jacobian: np.ndarray | None = None  # [B, p_L, S, u] layer scale

    def outputs(self, v: np.ndarray) -> np.ndarray:
        if self.design is not None:
            return self.offset + self.design @ v
        preactivation = self.features @ v.reshape(self.features.shape[-1], -1)
        return self.offset + np.einsum("bpsk,bsk->bp", self.jacobian, preactivation)

    def pullback(self, output_gradient: np.ndarray) -> np.ndarray:
        """∇_v of ⟨output_gradient, T(v)⟩."""
        if self.design is not None:
            return np.einsum("bp,bpq->q", output_gradient, self.design)
        preactivation_gradient = np.einsum("bp,bpsk->bsk", output_gradient, self.jacobian)
        return np.einsum("bsq,bsk->qk", self.features, preactivation_gradient).reshape(-1)


@dataclasses.dataclass(frozen=True)
class _StackedRounds:
    """Rounds whose Taylor outputs are affine in one neuron's weights, stacked over their examples.

    One evaluation of Σ_n ℓ(T^n(v), y^n) is then one product with the stacked design
    instead of a Python loop over rounds. Each example carries its round's reduction
    scale (1/B_n for a mean over the batch, 1 for a sum), so rounds of unequal size
    add up as the per-round losses do.
    """

    offset: np.ndarray  # [E, p_L]
    design: np.ndarray  # [E, p_L, P]
    targets: np.ndarray  # [E, ...]
    example_weight: np.ndarray  # [E]
    round_of_example: np.ndarray  # [E]
    weights: np.ndarray  # [R, P] W^n of each round
    ends: np.ndarray  # [R] examples up to and including each round

    @classmethod
    def from_rounds(cls, linear_rounds: list, loss: ConvexLoss) -> "_StackedRounds":
        sizes = np.array([len(r.offset) for r in linear_rounds], np.int64)
        return cls(
            offset=np.concatenate([r.offset for r in linear_rounds]),
            design=np.concatenate([r.design for r in linear_rounds]),
            targets=np.concatenate([np.asarray(r.targets) for r in linear_rounds]),
            example_weight=np.concatenate([np.full(size, reduction_scale(size, loss.reduction)) for size in sizes]),
            round_of_example=np.repeat(np.arange(len(sizes)), sizes),
            weights=np.stack([r.weights for r in linear_rounds]), ends=np.cumsum(sizes),
        )

    def __len__(self) -> int:
        return len(self.ends)

    def prefix(self, rounds: int) -> "_StackedRounds":
        """The first `rounds` rounds (views, no copy)."""
        end = int(self.ends[rounds - 1]) if rounds else 0
        return _StackedRounds(self.offset[:end], self.design[:end], self.targets[:end], self.example_weight[:end],
                              self.round_of_example[:end], self.weights[:rounds], self.ends[:rounds])

    def value_and_gradient(self, v: np.ndarray, loss: ConvexLoss) -> tuple[float, np.ndarray]:
        design = self.design.reshape(-1, self.design.shape[-1])  # [E·p_L, P]: BLAS matrix-vector products
        outputs = self.offset + (design @ v).reshape(self.offset.shape)
        value = float(self.example_weight @ loss.per_example(outputs, self.targets))
        output_gradient = self.example_weight[:, None] * loss.per_example_gradient(outputs, self.targets)
        return value, output_gradient.reshape(-1) @ design

    def incurred(self, loss: ConvexLoss) -> np.ndarray:
        """ℓ^n(W^n) of each round: T^n(W^n) = f_{W^n}."""
        outputs = self.offset + np.einsum("epq,eq->ep", self.design, self.weights[self.round_of_example])
        per_example = self.example_weight * loss.per_example(outputs, self.targets)
        return np.bincount(self.round_of_example, per_example, minlength=len(self))


@dataclasses.dataclass(frozen=True)
class _RoundList:
    """Rounds kept one by one (layer scale: each round's features and Jacobians), with the
    interface of `_StackedRounds`."""

    rounds: list

    def __len__(self) -> int:
        return len(self.rounds)

    @property
    def weights(self) -> np.ndarray:
        return np.stack([taylor_round.weights for taylor_round in self.rounds])

    def prefix(self, rounds: int) -> "_RoundList":
        return _RoundList(self.rounds[:rounds])

    def value_and_gradient(self, v: np.ndarray, loss: ConvexLoss) -> tuple[float, np.ndarray]:
        value, gradient = 0.0, np.zeros_like(v)
        for taylor_round in self.rounds:
            outputs = taylor_round.outputs(v)
            value += loss(outputs, taylor_round.targets)
            gradient += taylor_round.pullback(loss.gradient(outputs, taylor_round.targets))
        return value, gradient

    def incurred(self, loss: ConvexLoss) -> np.ndarray:
        return np.array([loss(r.outputs(r.weights), r.targets) for r in self.rounds])


def _as_rounds(linear_rounds, loss: ConvexLoss):
    """A list of `_LinearRound`s as `_StackedRounds` when every round has a design (neuron scale),
    else as a `_RoundList`; stacked or listed rounds pass through."""
    if isinstance(linear_rounds, (_StackedRounds, _RoundList)):
        return linear_rounds
    if linear_rounds and all(r.design is not None for r in linear_rounds):
        return _StackedRounds.from_rounds(linear_rounds, loss)
    return _RoundList(list(linear_rounds))


def _features(inputs: np.ndarray, record: dict) -> np.ndarray:
    """`[B, S, P]` the affine features x̃ of each output position (S = 1 for dense)."""
    if record["kind"] == "conv2d":
        patches = conv_patches(inputs, record["kernel_size"], record["strides"], record["padding"],
                               record["dilation_rate"])
        batch, height, width = patches.shape[:3]
        # [B, H', W', C, kh, kw] → the kernel's [kh, kw, C] order.
        features = patches.transpose(0, 1, 2, 4, 5, 3).reshape(batch, height * width, -1)
    else:
        features = inputs.reshape(len(inputs), 1, -1)
    if record["use_bias"]:
        features = np.concatenate([features, np.ones(features.shape[:2] + (1,), features.dtype)], axis=2)
    return features


def _linear_rounds(run: storage.Run, layer: str, neuron: int | None, rounds: int) -> list:
    """The first `rounds` recorded rounds of one layer's (or neuron's) factored Taylor data."""
    return _linear_rounds_of(run, layer, [neuron], rounds)[0]


def _linear_rounds_of(run: storage.Run, layer: str, members: list, rounds: int) -> list[list]:
    """`_linear_rounds` of several members (None = the layer, else a neuron) in one pass over the
    stream: each round's features (conv patches) are built once and shared."""
    record = _layer_record(run, layer)
    if "factors" not in run.streams:
        raise MissingStatisticsError(f"{run.logdir} has no stream 'factors' although its manifest names the route.")
    linear_rounds = [[] for _ in members]
    read = 0
    for chunk in run.stream("factors").chunks():
        for row in range(len(chunk["step"])):
            if read == rounds:
                return linear_rounds
            read += 1
            if f"{layer}/kernel" not in chunk:
                raise MissingStatisticsError(
                    f"{run.logdir}: the factored data of layer {layer!r} lacks the weights W^n that bound the "
                    "Taylor optimum's domain (recorded by an older keras_taylor); re-record the run."
                )
            outputs = chunk["outputs"][row].astype(np.float64)
            inputs = chunk[f"{layer}/inputs"][row].astype(np.float64)
            z = chunk[f"{layer}/z"][row].astype(np.float64)
            jacobian = chunk[f"{layer}/jacobian"][row].astype(np.float64)
            batch, num_outputs = outputs.shape
            jacobian = jacobian.reshape(batch, num_outputs, -1, jacobian.shape[-1])  # [B, p, S, u']
            z = z.reshape(batch, -1, z.shape[-1])  # [B, S, u']
            kernel = chunk[f"{layer}/kernel"][row].astype(np.float64)
            parts = [kernel.reshape(-1, kernel.shape[-1])]
            if record["use_bias"]:
                parts.append(chunk[f"{layer}/bias"][row].astype(np.float64)[None])
            weights = np.concatenate(parts)  # [P, u]
            features = _features(inputs, record)
            for member, neuron in zip(linear_rounds, members):
                if neuron is None:
                    offset = outputs - np.einsum("bpsk,bsk->bp", jacobian, z)
                    member.append(_LinearRound(offset, chunk["targets"][row], weights.reshape(-1),
                                               features=features, jacobian=jacobian))
                    continue
                stored = neuron if jacobian.shape[-1] == weights.shape[1] else record["neurons"].index(neuron)
                offset = outputs - np.einsum("bps,bs->bp", jacobian[..., stored], z[..., stored])
                design = np.einsum("bps,bsq->bpq", jacobian[..., stored], features)
                member.append(_LinearRound(offset, chunk["targets"][row], weights[:, neuron], design=design))
    if read < rounds:
        raise MissingStatisticsError(f"{run.logdir} holds factored data for {read} rounds, not {rounds}.")
    return linear_rounds


def _trajectory_diameter(points: np.ndarray) -> float:
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
        linear_rounds: Per round, the affine Taylor outputs (`_linear_rounds`); neuron-scale
            rounds are stacked (`_StackedRounds`) so that an evaluation is one product.
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

    linear_rounds = _as_rounds(linear_rounds, loss)

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


_STACK_BYTES = 2 << 30  # neuron-scale designs held at once by `_member_rounds`


def _member_rounds(run: storage.Run, layer: str, members: list, rounds: int, loss: ConvexLoss):
    """Yields `(index, member, rounds)` for each member (None = the layer, else a neuron): the layer's
    rounds as a `_RoundList`, a neuron's stacked (`_StackedRounds`). Neurons are read from the
    stream together, as many at a time as fit `_STACK_BYTES` (sized from the first round)."""
    if members == [None]:
        yield 0, None, _as_rounds(_linear_rounds(run, layer, None, rounds), loss)
        return
    first_round = _linear_rounds_of(run, layer, members[:1], 1)[0][0]
    group = max(1, _STACK_BYTES // max(first_round.design.nbytes * rounds, 1))
    for start in range(0, len(members), group):
        chunk = members[start:start + group]
        stacked = [_as_rounds(member_rounds, loss) for member_rounds in _linear_rounds_of(run, layer, chunk, rounds)]
        for offset, neuron in enumerate(chunk):
            yield start + offset, neuron, stacked[offset]
            stacked[offset] = None


def _factored_minima(run: storage.Run, layer, neurons, rounds, *, radius: float | None = None,
                     radius_scale: float = 1.0, tolerance: float = 1e-7, max_iterations: int = 2000):
    """Taylor-optimum sums of a non-quadratic run over the ball H around W^0.

    H is the ball centered at the first recorded weights whose radius is `radius`, or
    by default `radius_scale` times the diameter of the recorded trajectory at that
    scale (Theorem 2 assumes a bounded domain; without one a cross-entropy Taylor
    loss can decrease forever along a separating direction).
    """
    if layer is None:
        raise MissingStatisticsError("Network-scale Taylor optima are recorded for squared error only.")
    loss = _convex_loss(run.manifest)
    total = len(round_losses(run).steps)
    grid = log_grid(total) if rounds is None else np.unique(np.asarray(rounds, np.int64))
    if grid.size and (grid[0] < 1 or grid[-1] > total):
        raise MissingStatisticsError(f"{run.logdir} recorded {total} rounds; asked for rounds {grid.tolist()}.")
    members = [None] if neurons is None else neurons
    minima = np.full((len(members), len(grid)), np.nan)
    all_diagnostics = []
    incurred = None
    for index, neuron, linear_rounds in _member_rounds(run, layer, members, int(grid[-1]), loss):
        if incurred is None:  # ℓ^n(W^n) on exactly the stored examples: T^n(W^n) = f_{W^n}
            incurred = np.cumsum(linear_rounds.incurred(loss))[grid - 1]
        trajectory = linear_rounds.weights
        center = trajectory[0]
        bound = radius if radius is not None else radius_scale * _trajectory_diameter(trajectory)
        info = {key: np.zeros(len(grid)) for key in ("converged", "gradient_norm", "iterations")}
        start = center
        for position, count in enumerate(grid):
            minimum, start, details = factored_taylor_optimum(
                linear_rounds.prefix(count), loss, center, bound, start, tolerance=tolerance,
                max_iterations=max_iterations
            )
            minima[index, position] = minimum
            for key in info:
                info[key][position] = details[key]
        converged = info["converged"].astype(bool)
        if not converged.all():
            warnings.warn(
                f"{run.logdir}: the Taylor optimum of layer {layer!r}" + (f" neuron {neuron}" if neuron is not None else "")
                + f" did not converge at rounds {grid[~converged].tolist()} (relative gradient norms "
                f"{info['gradient_norm'][~converged].tolist()}).", TaylorOptimumWarning, stacklevel=3,
            )
        all_diagnostics.append(SolverDiagnostics(
            method=f"L-BFGS-B on the ball ‖V − W^0‖ ≤ {bound:.4g}", converged=converged,
            gradient_norm=info["gradient_norm"], iterations=info["iterations"].astype(np.int64),
            rank=np.full(len(grid), -1), condition=np.full(len(grid), np.nan),
            ill_conditioned=np.zeros(len(grid), bool),
        ))
    return grid, minima, all_diagnostics, incurred
