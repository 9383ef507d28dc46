"""Losses that are convex in the network outputs, in NumPy.

The Taylor loss ℓ(T^n(V), y) is convex in V because T^n is affine in V, *provided*
ℓ is convex in its first argument. This module holds the Keras losses for which that
is known, evaluated in NumPy so that post-hoc analysis needs no TensorFlow. All of
them are also differentiable, which the post-hoc solvers need:

- mean squared error (a convex quadratic);
- categorical and sparse categorical cross-entropy *from logits* (log-sum-exp minus
  a linear term), and binary cross-entropy from logits (softplus(z) − y·z per output);
- Huber (convex, continuously differentiable, quadratic near 0 and linear beyond δ),
  log-cosh (convex, smooth) and squared hinge (convex, continuously differentiable).

A model that ends in a softmax (a sigmoid) and is trained with a probability-space
(binary) cross-entropy is linearized at its logits, where Keras itself evaluates the
loss from the logits it caches on the activation's output; linearizing at the
probabilities would not give a convex Taylor loss (−log of an affine function leaves
its domain).

`resolve_loss` maps a Keras loss (string, function or object) to one of these. It
refuses every other Keras loss with `NonConvexLossError` and the reason (see
`_REFUSED`), unless the caller declares it convex. `CONVEX_LOSSES` and
`convex_loss_from_record` rebuild a loss from what a run's manifest stores.
"""

import dataclasses
from typing import Any

import numpy as np
from scipy import special

from keras_taylor.errors import NonConvexLossError, ShapeMismatchError

_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")


def _reduce(per_example: np.ndarray, reduction: str) -> float:
    return float(per_example.sum() if reduction == "sum" else per_example.mean())


def reduction_scale(batch_size: int, reduction: str) -> float:
    """The factor a reduction applies to each example's loss in a batch of `batch_size`."""
    return 1.0 if reduction == "sum" else 1.0 / batch_size


class ConvexLoss:
    """A loss ℓ(outputs, targets), convex in `outputs [B, p_L]`, with Keras's reduction.

    Attributes:
        name: Keras-style name of the loss.
        reduction: "sum_over_batch_size" (mean over examples) or "sum".
    """

    name = "convex_loss"
    reduction = "sum_over_batch_size"

    def per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Loss of each example, `[B]`."""
        raise NotImplementedError

    def per_example_gradient(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Gradient of each example's loss w.r.t. its outputs, `[B, p_L]`."""
        raise NotImplementedError

    def per_example_hessian_product(self, outputs: np.ndarray, targets: np.ndarray,
                                    directions: np.ndarray) -> np.ndarray:
        """Each example's Hessian w.r.t. its outputs applied to its direction, `[B, p_L]`.

        Where the second derivative jumps (Huber at |e| = δ, the squared hinge at the
        margin) the one-sided value of the active piece is used: a generalized Hessian,
        which is what Newton's method needs there.
        """
        raise NotImplementedError

    def check_targets(self, outputs_shape: tuple, targets: np.ndarray) -> np.ndarray:
        """Returns targets in the form the loss reads, or raises `ShapeMismatchError`."""
        raise NotImplementedError

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return _reduce(self.per_example(outputs, targets), self.reduction)

    def gradient(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Gradient of the reduced loss w.r.t. `outputs`, `[B, p_L]`."""
        scale = reduction_scale(outputs.shape[0], self.reduction)
        return scale * self.per_example_gradient(outputs, targets)

    def config(self) -> dict:
        """The constructor arguments (reduction included): what a run manifest stores."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def _targets_like_outputs(name: str, outputs_shape: tuple, targets) -> np.ndarray:
    """Targets shaped like the outputs; `[B]` for outputs `[B, 1]` is expanded, as Keras does."""
    targets = np.asarray(targets)
    outputs_shape = tuple(outputs_shape)
    if targets.shape == outputs_shape[:1] and outputs_shape[1:] == (1,):
        targets = targets[:, None]
    if targets.shape != outputs_shape:
        raise ShapeMismatchError(
            f"{name} needs targets shaped like the outputs {outputs_shape}. Received: targets.shape={targets.shape}"
        )
    return targets


def _softmax_hessian_product(logits: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(diag(p) − p pᵀ) d per example, p = softmax(logits): the Hessian of logsumexp."""
    probabilities = special.softmax(logits, axis=-1)
    return probabilities * (directions - np.sum(probabilities * directions, axis=-1, keepdims=True))


@dataclasses.dataclass(frozen=True)
class MeanSquaredError(ConvexLoss):
    """Keras `mean_squared_error`: mean over output components, then the reduction."""

    reduction: str = "sum_over_batch_size"
    name = "mean_squared_error"

    def per_example(self, outputs, targets):
        return np.mean((outputs - targets) ** 2, axis=-1)

    def per_example_gradient(self, outputs, targets):
        return 2.0 * (outputs - targets) / outputs.shape[-1]

    def per_example_hessian_product(self, outputs, targets, directions):
        return 2.0 * directions / outputs.shape[-1]

    def check_targets(self, outputs_shape, targets):
        targets = np.asarray(targets)
        if targets.shape != tuple(outputs_shape):
            raise ShapeMismatchError(
                f"mean_squared_error needs targets shaped like the outputs {tuple(outputs_shape)}. "
                f"Received: targets.shape={targets.shape}"
            )
        return targets


@dataclasses.dataclass(frozen=True)
class CategoricalCrossentropyFromLogits(ConvexLoss):
    """Keras `categorical_crossentropy(from_logits=True)`, label smoothing included.

    Per example: (Σ_k y_k) · logsumexp(z) − ⟨y, z⟩, with smoothed targets y.
    """

    label_smoothing: float = 0.0
    reduction: str = "sum_over_batch_size"
    name = "categorical_crossentropy"

    def _smoothed(self, targets):
        if not self.label_smoothing:
            return targets
        num_classes = targets.shape[-1]
        return targets * (1.0 - self.label_smoothing) + self.label_smoothing / num_classes

    def per_example(self, outputs, targets):
        targets = self._smoothed(targets)
        return targets.sum(-1) * special.logsumexp(outputs, axis=-1) - np.sum(targets * outputs, -1)

    def per_example_gradient(self, outputs, targets):
        targets = self._smoothed(targets)
        return targets.sum(-1, keepdims=True) * special.softmax(outputs, axis=-1) - targets

    def per_example_hessian_product(self, outputs, targets, directions):
        total = self._smoothed(targets).sum(-1, keepdims=True)
        return total * _softmax_hessian_product(outputs, directions)

    def check_targets(self, outputs_shape, targets):
        targets = np.asarray(targets)
        if targets.shape != tuple(outputs_shape):
            raise ShapeMismatchError(
                "categorical_crossentropy needs one-hot (or soft) targets shaped like the "
                f"outputs {tuple(outputs_shape)}. Received: targets.shape={targets.shape}"
            )
        if np.any(targets < 0):
            raise ValueError("categorical_crossentropy targets must be non-negative.")
        return targets


@dataclasses.dataclass(frozen=True)
class SparseCategoricalCrossentropyFromLogits(ConvexLoss):
    """Keras `sparse_categorical_crossentropy(from_logits=True)`: logsumexp(z) − z_y."""

    reduction: str = "sum_over_batch_size"
    name = "sparse_categorical_crossentropy"

    def per_example(self, outputs, targets):
        picked = np.take_along_axis(outputs, targets[:, None], axis=-1)[:, 0]
        return special.logsumexp(outputs, axis=-1) - picked

    def per_example_gradient(self, outputs, targets):
        gradient = special.softmax(outputs, axis=-1)
        gradient[np.arange(len(targets)), targets] -= 1.0
        return gradient

    def per_example_hessian_product(self, outputs, targets, directions):
        return _softmax_hessian_product(outputs, directions)

    def check_targets(self, outputs_shape, targets):
        targets = np.asarray(targets)
        if targets.ndim == 2 and targets.shape[1] == 1:
            targets = targets[:, 0]
        if targets.shape != (outputs_shape[0],):
            raise ShapeMismatchError(
                "sparse_categorical_crossentropy needs integer targets [B] or [B, 1] for "
                f"outputs {tuple(outputs_shape)}. Received: targets.shape={targets.shape}"
            )
        as_int = targets.astype(np.int64)
        if not np.array_equal(as_int, targets) or as_int.min() < 0 or as_int.max() >= outputs_shape[1]:
            raise ShapeMismatchError(
                f"sparse_categorical_crossentropy targets must be class indices in "
                f"[0, {outputs_shape[1]}). Received values in [{targets.min()}, {targets.max()}]"
            )
        return as_int


@dataclasses.dataclass(frozen=True)
class BinaryCrossentropyFromLogits(ConvexLoss):
    """Keras `binary_crossentropy(from_logits=True)`, label smoothing included.

    Per example: the mean over the p_L outputs of softplus(z) − y·z (TensorFlow's
    `sigmoid_cross_entropy_with_logits`), with smoothed targets y(1 − s) + s/2. Convex
    in z for every y (softplus is convex, y·z linear); smooth, with gradient
    (σ(z) − y) / p_L. Several outputs are independent binary labels (multi-label).
    """

    label_smoothing: float = 0.0
    reduction: str = "sum_over_batch_size"
    name = "binary_crossentropy"

    def _smoothed(self, targets, shape):
        targets = np.reshape(targets, shape)  # stored [B] targets of a [B, 1] output
        if not self.label_smoothing:
            return targets
        return targets * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing

    def per_example(self, outputs, targets):
        targets = self._smoothed(targets, outputs.shape)
        return np.mean(np.logaddexp(0.0, outputs) - targets * outputs, axis=-1)

    def per_example_gradient(self, outputs, targets):
        targets = self._smoothed(targets, outputs.shape)
        return (special.expit(outputs) - targets) / outputs.shape[-1]

    def per_example_hessian_product(self, outputs, targets, directions):
        probability = special.expit(outputs)
        return probability * (1.0 - probability) * directions / outputs.shape[-1]

    def check_targets(self, outputs_shape, targets):
        targets = _targets_like_outputs("binary_crossentropy", outputs_shape, targets)
        if np.any(targets < 0) or np.any(targets > 1):
            raise ValueError(
                "binary_crossentropy targets must be probabilities in [0, 1] (outside it the loss is "
                f"unbounded below in the logit). Received values in [{targets.min()}, {targets.max()}]"
            )
        return targets


@dataclasses.dataclass(frozen=True)
class Huber(ConvexLoss):
    """Keras `huber`: the mean over outputs of ½e² for |e| ≤ δ, δ|e| − ½δ² beyond (e = f − y).

    Convex for δ > 0 and continuously differentiable (gradient clip(e, −δ, δ) / p_L,
    Lipschitz; the second derivative jumps at |e| = δ).
    """

    delta: float = 1.0
    reduction: str = "sum_over_batch_size"
    name = "huber"

    def per_example(self, outputs, targets):
        error = outputs - np.reshape(targets, outputs.shape)
        magnitude = np.abs(error)
        pieces = np.where(magnitude <= self.delta, 0.5 * error**2, self.delta * magnitude - 0.5 * self.delta**2)
        return np.mean(pieces, axis=-1)

    def per_example_gradient(self, outputs, targets):
        error = outputs - np.reshape(targets, outputs.shape)
        return np.clip(error, -self.delta, self.delta) / outputs.shape[-1]

    def per_example_hessian_product(self, outputs, targets, directions):
        error = outputs - np.reshape(targets, outputs.shape)
        return (np.abs(error) <= self.delta) * directions / outputs.shape[-1]

    def check_targets(self, outputs_shape, targets):
        return _targets_like_outputs("huber", outputs_shape, targets)


@dataclasses.dataclass(frozen=True)
class LogCosh(ConvexLoss):
    """Keras `log_cosh`: the mean over outputs of log cosh(f − y); convex and smooth (gradient tanh(e) / p_L)."""

    reduction: str = "sum_over_batch_size"
    name = "log_cosh"

    def per_example(self, outputs, targets):
        error = outputs - np.reshape(targets, outputs.shape)
        # Keras's overflow-free form: log cosh e = e + softplus(−2e) − log 2. (Keras takes
        # log 2 in floatx, so with float32 floatx its float64 values are up to 2e-9 above
        # these: a constant, which moves no gradient and no optimum.)
        return np.mean(error + np.logaddexp(0.0, -2.0 * error) - np.log(2.0), axis=-1)

    def per_example_gradient(self, outputs, targets):
        error = outputs - np.reshape(targets, outputs.shape)
        return np.tanh(error) / outputs.shape[-1]

    def per_example_hessian_product(self, outputs, targets, directions):
        error = outputs - np.reshape(targets, outputs.shape)
        return (1.0 - np.tanh(error) ** 2) * directions / outputs.shape[-1]

    def check_targets(self, outputs_shape, targets):
        return _targets_like_outputs("log_cosh", outputs_shape, targets)


@dataclasses.dataclass(frozen=True)
class SquaredHinge(ConvexLoss):
    """Keras `squared_hinge`: the mean over outputs of max(1 − y·f, 0)².

    Convex (the square of a nonnegative convex function of f) and continuously
    differentiable, gradient −2y·max(1 − y·f, 0) / p_L. Like Keras, labels that are
    all 0 or 1 are mapped to −1 / +1 first (all of the `targets` given at once: the
    post-hoc analysis passes many rounds together, which agrees with Keras's
    per-batch rule as long as the data uses one convention, {0, 1} or {−1, 1}).
    """

    reduction: str = "sum_over_batch_size"
    name = "squared_hinge"

    @staticmethod
    def _signed(targets, shape):
        targets = np.reshape(targets, shape).astype(np.float64)
        return 2.0 * targets - 1.0 if np.all((targets == 0) | (targets == 1)) else targets

    def per_example(self, outputs, targets):
        margin = np.maximum(1.0 - self._signed(targets, outputs.shape) * outputs, 0.0)
        return np.mean(margin**2, axis=-1)

    def per_example_gradient(self, outputs, targets):
        signed = self._signed(targets, outputs.shape)
        return -2.0 * signed * np.maximum(1.0 - signed * outputs, 0.0) / outputs.shape[-1]

    def per_example_hessian_product(self, outputs, targets, directions):
        signed = self._signed(targets, outputs.shape)
        active = 1.0 - signed * outputs > 0.0
        return 2.0 * signed**2 * active * directions / outputs.shape[-1]

    def check_targets(self, outputs_shape, targets):
        return _targets_like_outputs("squared_hinge", outputs_shape, targets)


CONVEX_LOSSES = {
    loss.name: loss
    for loss in (MeanSquaredError, CategoricalCrossentropyFromLogits, SparseCategoricalCrossentropyFromLogits,
                 BinaryCrossentropyFromLogits, Huber, LogCosh, SquaredHinge)
}
"""Name → class of every `ConvexLoss` the package evaluates in NumPy (the post-hoc analysis's registry)."""


def convex_loss_from_record(record) -> ConvexLoss:
    """Rebuilds the `ConvexLoss` that a run manifest's "loss" record describes.

    Args:
        record: A mapping with "name" (a key of `CONVEX_LOSSES`) and the loss's
            `config()` entries; other entries are ignored.

    Returns:
        The loss.

    Raises:
        KeyError: for a name that is not in `CONVEX_LOSSES` (a loss declared convex by
            the user, which only TensorFlow can evaluate).
    """
    loss_class = CONVEX_LOSSES[record["name"]]
    return loss_class(**{field.name: record[field.name] for field in dataclasses.fields(loss_class)
                         if field.name in record})


class DeclaredConvexLoss(ConvexLoss):
    """A Keras loss the caller has declared convex in the outputs.

    Evaluated with Keras/TensorFlow (so it is not available to TF-free analysis);
    convexity is the caller's responsibility.
    """

    def __init__(self, keras_loss):
        self.keras_loss = keras_loss
        self.name = getattr(self.keras_loss, "name", getattr(self.keras_loss, "__name__", "loss"))
        self.reduction = getattr(self.keras_loss, "reduction", "sum_over_batch_size")

    def __call__(self, outputs, targets):
        return float(self.keras_loss(targets, outputs))

    def gradient(self, outputs, targets):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        outputs = tf.convert_to_tensor(outputs)
        with tf.GradientTape() as tape:
            tape.watch(outputs)
            value = self.keras_loss(targets, outputs)
        return tape.gradient(value, outputs).numpy()

    def check_targets(self, outputs_shape, targets):
        return np.asarray(targets)

    def config(self) -> dict:
        return {"reduction": self.reduction}


@dataclasses.dataclass(frozen=True)
class ResolvedLoss:
    """What `resolve_loss` decided.

    Attributes:
        convex_loss: The loss as a function of the linearization point.
        at_logits: True when a final softmax or sigmoid is split off and the loss is
            evaluated on its logits (a cross-entropy on that activation's output).
        keras_loss: The Keras loss that computes the real training loss on the
            model's own outputs.
    """

    convex_loss: ConvexLoss
    at_logits: bool
    keras_loss: Any


def _wrap_loss_function(fn):
    """A `keras.losses.Loss` around a per-example loss function, as `compile` makes."""
    import keras  # pylint: disable=import-outside-toplevel

    class _FunctionLoss(keras.losses.Loss):
        def __init__(self):
            super().__init__(name=getattr(fn, "__name__", "loss"))
            self.fn = fn

        def call(self, y_true, y_pred):
            return self.fn(y_true, y_pred)

    return _FunctionLoss()


def _keras_loss_description(loss) -> tuple[str, dict]:
    """(function name, arguments and config) of a Keras loss given as string, function or object."""
    import keras  # pylint: disable=import-outside-toplevel

    if isinstance(loss, keras.losses.Loss):
        # A LossFunctionWrapper keeps its function's arguments in `_fn_kwargs`; some
        # (Huber's delta) are missing from its get_config().
        config = {**getattr(loss, "_fn_kwargs", {}), **loss.get_config()}
        fn = getattr(loss, "fn", None)
        return getattr(fn, "__name__", type(loss).__name__), config
    return getattr(loss, "__name__", repr(loss)), {}


# The activation whose output each cross-entropy reads when it reads probabilities.
# Keras caches the logits on the outputs of keras.activations.softmax / sigmoid, and
# its cross-entropies read those logits whenever they are there (warning if
# from_logits=True), so on such an output the loss Keras trains is the from-logits one.
_CROSS_ENTROPY_ACTIVATION = {
    "categorical_crossentropy": "softmax",
    "sparse_categorical_crossentropy": "softmax",
    "binary_crossentropy": "sigmoid",
}
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")
"""The activations that are split off a model's output to linearize a cross-entropy at the logits."""

_NOT_DIFFERENTIABLE = (
    "it is convex in the outputs but not differentiable where {where}. The Taylor gradient is then "
    "only a subgradient, and the post-hoc regret analysis minimizes sums of Taylor losses by Newton's "
    "method from gradients and curvature, which cannot certify a minimum at a kink"
)
_FOCAL = ("the focal factor (1 − p_t)^γ makes it non-convex in the logits for γ > 0 (for a positive label at "
          "γ = 2 its second derivative in the logit is negative near z = −4)")

# Keras losses refused, with the reason. Anything else unknown is refused as not known to be convex.
_REFUSED = {
    "mean_absolute_error": _NOT_DIFFERENTIABLE.format(where="an output equals its target")
    + "; huber is its smooth convex counterpart",
    "mean_absolute_percentage_error": _NOT_DIFFERENTIABLE.format(where="an output equals its target")
    + "; huber is a smooth convex alternative",
    "hinge": _NOT_DIFFERENTIABLE.format(where="y·f = 1") + "; squared_hinge is its smooth convex counterpart",
    "categorical_hinge": _NOT_DIFFERENTIABLE.format(
        where="the margin is exactly 1 or two non-target outputs tie (a maximum of affine functions)"),
    "poisson": (
        "it reads a rate λ and −y·log(λ + ε) is convex only for λ > −ε; linearized, λ is affine in the "
        "weights and leaves that domain, where the Taylor loss is undefined. With a log link (λ = exp(z)) "
        "it would be convex in z, but Keras adds ε inside the log, so a loss linearized at z would not "
        "equal the loss Keras trains"
    ),
    "kl_divergence": (
        "it reads probabilities clipped to [ε, 1] (not the cached logits), and −y·log p of a linearized p "
        "leaves the domain of the log. On a softmax output it is categorical_crossentropy minus the "
        "targets' entropy (a constant): train with categorical_crossentropy, which Keras computes from "
        "the logits"
    ),
    "cosine_similarity": "−⟨y, f⟩/(‖y‖‖f‖) depends only on the direction of f and is not convex in f",
    "mean_squared_logarithmic_error": (
        "(log(1 + f) − log(1 + y))² is not convex in f: its second derivative is negative where "
        "log(1 + f) − log(1 + y) > 1 (and Keras clips f at ε)"
    ),
    "binary_focal_crossentropy": _FOCAL,
    "categorical_focal_crossentropy": _FOCAL,
    "dice": "1 − 2⟨y, f⟩/(Σy + Σf) is a ratio in f, not convex (and with axis=None it mixes the examples)",
    "tversky": "a ratio of linear functions of f, like dice, not convex",
}
_SUPPORTED_DESCRIPTION = (
    "Supported: mean_squared_error, huber, log_cosh, squared_hinge, categorical_crossentropy, "
    "sparse_categorical_crossentropy and binary_crossentropy (from logits, or on a final softmax / sigmoid)"
)


def _cross_entropy(fn_name: str, config: dict, reduction: str, output_activation: str | None):
    """The ConvexLoss and linearization point (at_logits) of a Keras cross-entropy."""
    if config.get("axis", -1) != -1:
        raise NonConvexLossError(f"Loss '{fn_name}' over axis {config['axis']} is not supported.")
    if config.get("ignore_class") is not None:
        raise NonConvexLossError(f"Loss '{fn_name}' with ignore_class is not supported.")
    expected = _CROSS_ENTROPY_ACTIVATION[fn_name]
    if output_activation not in (None, expected):
        raise NonConvexLossError(
            f"Loss '{fn_name}' on a model that ends in a {output_activation}: Keras would read that "
            f"{output_activation}'s logits as {expected} logits. End the model in a {expected}, or in a "
            "linear layer with from_logits=True."
        )
    if output_activation is None and not config.get("from_logits", False):
        raise NonConvexLossError(
            f"Loss '{fn_name}' reads probabilities, but the model does not end in a {expected}: its "
            "Taylor loss (−log of an affine function) is not defined everywhere. Use from_logits=True, "
            f"or end the model in a {expected}."
        )
    label_smoothing = float(config.get("label_smoothing", 0.0) or 0.0)
    if fn_name == "categorical_crossentropy":
        convex_loss = CategoricalCrossentropyFromLogits(label_smoothing, reduction)
    elif fn_name == "binary_crossentropy":
        convex_loss = BinaryCrossentropyFromLogits(label_smoothing, reduction)
    else:
        convex_loss = SparseCategoricalCrossentropyFromLogits(reduction)
    return convex_loss, output_activation == expected


def _smooth_loss(fn_name: str, config: dict, reduction: str) -> ConvexLoss | None:
    """The ConvexLoss of a Keras regression / margin loss that has one, else None."""
    if fn_name == "mean_squared_error":
        return MeanSquaredError(reduction)
    if fn_name == "huber":
        delta = float(config.get("delta", 1.0))
        if delta <= 0:
            raise NonConvexLossError(
                f"Loss 'huber' with delta={delta} is {'zero' if delta == 0 else 'concave'}, not a convex "
                "loss; delta must be positive."
            )
        return Huber(delta, reduction)
    if fn_name == "log_cosh":
        return LogCosh(reduction)
    if fn_name == "squared_hinge":
        return SquaredHinge(reduction)
    return None


def resolve_loss(loss, *, output_activation: str | None = None, convex: bool = False) -> ResolvedLoss:
    """Maps a Keras loss to a `ConvexLoss` and its point of linearization.

    Args:
        loss: A Keras loss: name, function or `keras.losses.Loss`, or a `ConvexLoss`.
        output_activation: The activation split off the model's output ("softmax" or
            "sigmoid", see `OUTPUT_ACTIVATIONS`), or None.
        convex: The caller declares `loss` convex in the outputs; losses without a
            NumPy form here are then accepted as `DeclaredConvexLoss`.

    Returns:
        The `ResolvedLoss`.

    Raises:
        NonConvexLossError: for a loss not known to be convex and differentiable in the
            outputs, naming the reason where it is known.
    """
    import keras  # pylint: disable=import-outside-toplevel

    if output_activation not in (None, *OUTPUT_ACTIVATIONS):
        raise ValueError(
            f"output_activation must be None or one of {OUTPUT_ACTIVATIONS}. Received: {output_activation!r}"
        )
    if loss is None:
        raise ValueError("No loss given and the model is not compiled with one.")
    if isinstance(loss, ConvexLoss):
        return ResolvedLoss(loss, at_logits=False, keras_loss=loss)
    keras_loss = keras.losses.get(loss) if isinstance(loss, str) else loss
    if not isinstance(keras_loss, keras.losses.Loss):
        keras_loss = _wrap_loss_function(keras_loss)
    fn_name, config = _keras_loss_description(keras_loss)
    reduction = config.get("reduction", "sum_over_batch_size")
    if reduction in _MEAN_REDUCTIONS:
        reduction = "sum_over_batch_size"
    elif reduction != "sum":
        raise ValueError(
            f"Loss '{fn_name}' has reduction={reduction!r}; the Taylor loss needs a scalar "
            "per round, so use 'sum_over_batch_size' or 'sum'."
        )
    if fn_name in _CROSS_ENTROPY_ACTIVATION:
        convex_loss, at_logits = _cross_entropy(fn_name, config, reduction, output_activation)
        return ResolvedLoss(convex_loss, at_logits, keras_loss)
    convex_loss = _smooth_loss(fn_name, config, reduction)
    if convex_loss is not None:
        return ResolvedLoss(convex_loss, False, keras_loss)
    if convex:
        return ResolvedLoss(DeclaredConvexLoss(keras_loss), False, keras_loss)
    if fn_name in _REFUSED:
        raise NonConvexLossError(
            f"Loss '{fn_name}' is not supported: {_REFUSED[fn_name]}. {_SUPPORTED_DESCRIPTION}. To "
            "linearize it anyway, evaluated by Keras (not by the post-hoc analysis), pass convex=True."
        )
    raise NonConvexLossError(
        f"Loss '{fn_name}' is not known to be convex in the network outputs, so its Taylor loss need "
        f"not be convex. {_SUPPORTED_DESCRIPTION}. If it is convex in the outputs, pass convex=True."
    )
