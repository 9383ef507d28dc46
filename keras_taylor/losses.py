"""Losses that are convex in the network outputs, in NumPy.

The Taylor loss ℓ(T^n(V), y) is convex in V because T^n is affine in V, *provided*
ℓ is convex in its first argument. This module holds the losses for which that
is known, evaluated in NumPy so that post-hoc analysis needs no TensorFlow:

- mean squared error (convex quadratic);
- categorical and sparse categorical cross-entropy *from logits*
  (log-sum-exp minus a linear term).

A model that ends in a softmax and is trained with a probability-space
cross-entropy is linearized at its logits, where the same loss is the
from-logits cross-entropy; linearizing at the probabilities would not give a
convex Taylor loss (−log of an affine function leaves its domain).

`resolve_loss` maps a Keras loss (string, function or object) to one of these
and refuses anything else, unless the caller declares it convex.
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

    def check_targets(self, outputs_shape: tuple, targets: np.ndarray) -> np.ndarray:
        """Returns targets in the form the loss reads, or raises `ShapeMismatchError`."""
        raise NotImplementedError

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return _reduce(self.per_example(outputs, targets), self.reduction)

    def gradient(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Gradient of the reduced loss w.r.t. `outputs`, `[B, p_L]`."""
        scale = reduction_scale(outputs.shape[0], self.reduction)
        return scale * self.per_example_gradient(outputs, targets)


@dataclasses.dataclass(frozen=True)
class MeanSquaredError(ConvexLoss):
    """Keras `mean_squared_error`: mean over output components, then the reduction."""

    reduction: str = "sum_over_batch_size"
    name = "mean_squared_error"

    def per_example(self, outputs, targets):
        return np.mean((outputs - targets) ** 2, axis=-1)

    def per_example_gradient(self, outputs, targets):
        return 2.0 * (outputs - targets) / outputs.shape[-1]

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


class DeclaredConvexLoss(ConvexLoss):
    """A Keras loss the caller has declared convex in the outputs.

    Evaluated with Keras/TensorFlow (so it is not available to TF-free analysis);
    convexity is the caller's responsibility.
    """

    def __init__(self, keras_loss):
        import keras  # pylint: disable=import-outside-toplevel

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


@dataclasses.dataclass(frozen=True)
class ResolvedLoss:
    """What `resolve_loss` decided.

    Attributes:
        convex_loss: The loss as a function of the linearization point.
        at_logits: True when a final softmax is split off and the loss is evaluated
            on the logits (probability-space cross-entropy).
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
    """(function name, config) of a Keras loss given as string, function or object."""
    import keras  # pylint: disable=import-outside-toplevel

    if isinstance(loss, keras.losses.Loss):
        config = loss.get_config()
        fn = getattr(loss, "fn", None)
        return getattr(fn, "__name__", type(loss).__name__), config
    return getattr(loss, "__name__", repr(loss)), {}


def resolve_loss(loss, *, output_is_softmax: bool, convex: bool = False) -> ResolvedLoss:
    """Maps a Keras loss to a `ConvexLoss` and its point of linearization.

    Args:
        loss: A Keras loss: name, function or `keras.losses.Loss`, or a `ConvexLoss`.
        output_is_softmax: Whether the model's output layer is a softmax.
        convex: The caller declares `loss` convex in the outputs; unknown losses are
            then accepted as `DeclaredConvexLoss`.

    Returns:
        The `ResolvedLoss`.

    Raises:
        NonConvexLossError: for a loss not known to be convex in the outputs.
    """
    import keras  # pylint: disable=import-outside-toplevel

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
    from_logits = bool(config.get("from_logits", False))
    if fn_name == "mean_squared_error":
        return ResolvedLoss(MeanSquaredError(reduction), False, keras_loss)
    if fn_name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        if config.get("axis", -1) != -1:
            raise NonConvexLossError(f"Loss '{fn_name}' over axis {config['axis']} is not supported.")
        if config.get("ignore_class") is not None:
            raise NonConvexLossError(f"Loss '{fn_name}' with ignore_class is not supported.")
        if not from_logits and not output_is_softmax:
            raise NonConvexLossError(
                f"Loss '{fn_name}' reads probabilities, but the model does not end in a "
                "softmax: its Taylor loss (−log of an affine function) is not defined "
                "everywhere. Use from_logits=True, or end the model in a softmax."
            )
        if fn_name == "categorical_crossentropy":
            convex_loss = CategoricalCrossentropyFromLogits(
                float(config.get("label_smoothing", 0.0) or 0.0), reduction
            )
        else:
            convex_loss = SparseCategoricalCrossentropyFromLogits(reduction)
        return ResolvedLoss(convex_loss, at_logits=not from_logits, keras_loss=keras_loss)
    if convex:
        return ResolvedLoss(DeclaredConvexLoss(keras_loss), False, keras_loss)
    raise NonConvexLossError(
        f"Loss '{fn_name}' is not known to be convex in the network outputs, so its Taylor "
        "loss need not be convex. Known: mean_squared_error, categorical_crossentropy and "
        "sparse_categorical_crossentropy (from logits, or on a final softmax). If it is "
        "convex in the outputs, pass convex=True."
    )
