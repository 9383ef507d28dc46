"""Route FACTORS: factored Jacobians of the stored examples, for a convex loss that is not quadratic.

H is the ball centered at the first recorded weights whose radius is `radius`, or by
default `radius_scale` times the diameter of the recorded trajectory at that scale
(Theorem 2 assumes a bounded domain; without one a cross-entropy Taylor loss can
decrease forever along a separating direction).
"""

import time
import warnings

import numpy as np

from keras_taylor import schema
from keras_taylor.analysis import grid as grids
from keras_taylor.analysis.affine_rounds import LinearRound, as_rounds
from keras_taylor.analysis.bounded import factored_taylor_optimum, trajectory_diameter
from keras_taylor.analysis.results import MissingStatisticsError, SolverDiagnostics, TaylorOptimumWarning
from keras_taylor.analysis.route import RouteMinima, RouteSolver
from keras_taylor.losses import CONVEX_LOSSES, ConvexLoss, convex_loss_from_record
from keras_taylor.schema import Route
from keras_taylor.taylor import conv_patches

_STACK_BYTES = 2 << 30  # neuron-scale designs held at once by `_member_rounds`


class FactorsRoute(RouteSolver):
    """Layer and neuron scales by the bounded solver.

    Options: radius (the ball's radius; default `radius_scale` × the trajectory's diameter),
    radius_scale, tolerance, max_iterations (see `factored_taylor_optimum`).
    """

    route = Route.FACTORS
    options = ("radius", "radius_scale", "tolerance", "max_iterations")

    def minima(self, reader, layer: str | None, neurons, rounds, *, radius: float | None = None,
               radius_scale: float = 1.0, tolerance: float = 1e-9, max_iterations: int = 200) -> RouteMinima:
        if layer is None:
            raise MissingStatisticsError("Network-scale Taylor optima are recorded for squared error only.")
        loss = convex_loss_of(reader.manifest.loss)
        grid = grids.select_rounds(len(reader.round_losses.steps), rounds, reader.logdir)
        members = [None] if neurons is None else neurons
        minima = np.full((len(members), len(grid)), np.nan)
        all_diagnostics = []
        finite = reader.round_losses.finite[:int(grid[-1])] if grid.size else np.zeros(0, bool)
        if grid.size and not finite.any():
            raise MissingStatisticsError(f"{reader.logdir}: no round up to {int(grid[-1])} has a finite loss.")
        kept = reader.round_losses.finite_counts[grid - 1]  # the finite rounds of each prefix
        incurred = None
        for index, neuron, linear_rounds in _member_rounds(reader, layer, members, finite, loss):
            if incurred is None:  # ℓ^n(W^n) on exactly the stored examples: T^n(W^n) = f_{W^n}
                incurred = np.concatenate([[0.0], np.cumsum(linear_rounds.incurred(loss))])[kept]
            trajectory = linear_rounds.weights
            center = trajectory[0]
            bound = radius if radius is not None else radius_scale * trajectory_diameter(trajectory)
            info = {key: np.zeros(len(grid)) for key in ("converged", "gradient_norm", "iterations", "gap",
                                                         "solve_seconds")}
            start = center
            for position, count in enumerate(kept):
                if count == 0:  # no finite round yet: the empty sum
                    minima[index, position], info["converged"][position] = 0.0, True
                    continue
                began = time.perf_counter()
                minimum, start, details = factored_taylor_optimum(
                    linear_rounds.prefix(int(count)), loss, center, bound, start, tolerance=tolerance,
                    max_iterations=max_iterations
                )
                details["solve_seconds"] = time.perf_counter() - began
                minima[index, position] = minimum
                for key in info:
                    info[key][position] = details[key]
            converged = info["converged"].astype(bool)
            if not converged.all():
                warnings.warn(
                    f"{reader.logdir}: the Taylor optimum of layer {layer!r}"
                    + (f" neuron {neuron}" if neuron is not None else "")
                    + f" did not converge at rounds {grid[~converged].tolist()} (relative gradient norms "
                    f"{info['gradient_norm'][~converged].tolist()}).", TaylorOptimumWarning, stacklevel=4,
                )
            all_diagnostics.append(SolverDiagnostics(
                method=f"Newton (GLTR subproblems) on the ball ‖V − W^0‖ ≤ {bound:.4g}", converged=converged,
                gradient_norm=info["gradient_norm"], iterations=info["iterations"].astype(np.int64),
                rank=np.full(len(grid), -1), condition=np.full(len(grid), np.nan),
                ill_conditioned=np.zeros(len(grid), bool), solve_seconds=info["solve_seconds"],
                value_error=info["gap"],
            ))
        return RouteMinima(grid, minima, all_diagnostics, incurred)


def convex_loss_of(loss: dict) -> ConvexLoss:
    """The NumPy loss that a manifest's "loss" entry names."""
    if loss["name"] in CONVEX_LOSSES:
        return convex_loss_from_record(loss)
    raise MissingStatisticsError(
        f"The post-hoc analysis evaluates the losses {sorted(CONVEX_LOSSES)}; this run's loss "
        f"is {loss['name']!r} (declared convex by the user), which it cannot rebuild without TensorFlow."
    )


def layer_features(inputs: np.ndarray, record: schema.LayerRecord) -> np.ndarray:
    """`[B, S, P]` the affine features x̃ of each output position (S = 1 for dense)."""
    if record.kind == "conv2d":
        geometry = record.geometry
        patches = conv_patches(inputs, geometry["kernel_size"], geometry["strides"], geometry["padding"],
                               geometry["dilation_rate"])
        batch, height, width = patches.shape[:3]
        # [B, H', W', C, kh, kw] → the kernel's [kh, kw, C] order.
        features = patches.transpose(0, 1, 2, 4, 5, 3).reshape(batch, height * width, -1)
    else:
        features = inputs.reshape(len(inputs), 1, -1)
    if record.use_bias:
        features = np.concatenate([features, np.ones(features.shape[:2] + (1,), features.dtype)], axis=2)
    return features


def linear_rounds_of(reader, layer: str, members: list, keep: np.ndarray) -> list[list]:
    """The rounds `keep` `[R]` selects among the first R recorded rounds, for each member (None = the layer,
    else a neuron), as `LinearRound`s, in one pass over the stream: each round's features (conv patches)
    are built once and shared."""
    rounds = len(keep)
    record = reader.layer(layer)
    reader.require(schema.FACTORS_STREAM)
    linear_rounds = [[] for _ in members]
    read = 0
    kernel_field, bias_field = schema.kernel_field(layer), schema.bias_field(layer)
    fields = ["step", "outputs", "targets", kernel_field, bias_field,
              *(schema.factor_field(layer, part) for part in ("inputs", "z", "jacobian"))]
    for chunk in reader.stream(schema.FACTORS_STREAM).chunks(fields):  # this layer's fields only
        for row in range(len(chunk["step"])):
            if read == rounds:
                return linear_rounds
            read += 1
            if not keep[read - 1]:
                continue
            if kernel_field not in chunk:
                raise MissingStatisticsError(
                    f"{reader.logdir}: the factored data of layer {layer!r} lacks the weights W^n that bound the "
                    "Taylor optimum's domain; re-record the run."
                )
            outputs = chunk["outputs"][row].astype(np.float64)
            inputs = chunk[schema.factor_field(layer, "inputs")][row].astype(np.float64)
            z = chunk[schema.factor_field(layer, "z")][row].astype(np.float64)
            jacobian = chunk[schema.factor_field(layer, "jacobian")][row].astype(np.float64)
            batch, num_outputs = outputs.shape
            jacobian = jacobian.reshape(batch, num_outputs, -1, jacobian.shape[-1])  # [B, p, S, u']
            z = z.reshape(batch, -1, z.shape[-1])  # [B, S, u']
            kernel = chunk[kernel_field][row].astype(np.float64)
            parts = [kernel.reshape(-1, kernel.shape[-1])]
            if record.use_bias:
                parts.append(chunk[bias_field][row].astype(np.float64)[None])
            weights = np.concatenate(parts)  # [P, u]
            features = layer_features(inputs, record)
            for member, neuron in zip(linear_rounds, members):
                if neuron is None:
                    offset = outputs - np.einsum("bpsk,bsk->bp", jacobian, z)
                    member.append(LinearRound(offset, chunk["targets"][row], weights.reshape(-1),
                                              features=features, jacobian=jacobian))
                    continue
                stored = neuron if jacobian.shape[-1] == weights.shape[1] else record.neurons.index(neuron)
                offset = outputs - np.einsum("bps,bs->bp", jacobian[..., stored], z[..., stored])
                design = np.einsum("bps,bsq->bpq", jacobian[..., stored], features)
                member.append(LinearRound(offset, chunk["targets"][row], weights[:, neuron], design=design))
    if read < rounds:
        raise MissingStatisticsError(f"{reader.logdir} holds factored data for {read} rounds, not {rounds}.")
    return linear_rounds


def _member_rounds(reader, layer: str, members: list, keep: np.ndarray, loss: ConvexLoss):
    """Yields `(index, member, rounds)` for each member (None = the layer, else a neuron): the kept rounds
    (`keep` `[R]`) of the layer as a `RoundList`, of a neuron stacked (`StackedRounds`). Neurons are read
    from the stream together, as many at a time as fit `_STACK_BYTES` (sized from the first kept round)."""
    if members == [None]:
        yield 0, None, as_rounds(linear_rounds_of(reader, layer, [None], keep)[0], loss)
        return
    first_kept = int(np.argmax(keep)) + 1
    first_round = linear_rounds_of(reader, layer, members[:1], keep[:first_kept])[0][0]
    group = max(1, _STACK_BYTES // max(first_round.design.nbytes * int(keep.sum()), 1))
    for start in range(0, len(members), group):
        chunk = members[start:start + group]
        stacked = [as_rounds(member_rounds, loss) for member_rounds in linear_rounds_of(reader, layer, chunk, keep)]
        for offset, neuron in enumerate(chunk):
            yield start + offset, neuron, stacked[offset]
            stacked[offset] = None
