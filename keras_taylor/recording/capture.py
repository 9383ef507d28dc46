"""The training step's own forward pass, captured on a persistent tape (TensorFlow)."""

import contextlib
import threading

import keras
import tensorflow as tf

from keras_taylor import walker


class ForwardCapture:
    """Runs `model(x)` through the walker on a persistent tape while capturing.

    `install` replaces the model's `call` for the duration of training; the
    replacement defers to the original except inside `capturing()`, which is
    per thread, so that every replica of a `tf.distribute` strategy captures its
    own pass. The walker executes the same ops as Keras, so the captured pass is
    the step's pass.
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self._local = threading.local()
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        original = self.model.call

        def call(inputs, training=None, mask=None, **kwargs):
            if not getattr(self._local, "active", False):
                return original(inputs, training=training, mask=mask, **kwargs)
            with tf.GradientTape(persistent=True) as tape:
                trace = walker.forward(self.model, inputs, training=bool(training))
            self._local.tape, self._local.trace, self._local.inputs = tape, trace, inputs
            return trace.model_outputs

        self.model.call = call
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            del self.model.call
            self._installed = False

    @contextlib.contextmanager
    def capturing(self):
        """Within the block, this thread's model calls are captured (the last one is kept)."""
        self._local.active, self._local.trace, self._local.tape = True, None, None
        try:
            yield self
        finally:
            self._local.active = False

    @property
    def trace(self):
        return getattr(self._local, "trace", None)

    @property
    def tape(self):
        return getattr(self._local, "tape", None)

    def subset(self, count: int):
        """The captured pass redone on its first `count` examples: `(trace, persistent tape)`.

        Same weights W^n (the captured values) and dropout masks, so its values are the
        captured pass's rows; Jacobians of a few examples then cost a few examples'
        backward passes instead of the whole batch's.
        """
        trace = self.trace
        weights = dict(trace.weight_values)
        masks = {name: mask[:count] for name, mask in trace.dropout_masks.items()}
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([value for pair in weights.values() for value in pair if value is not None])
            subset = walker.forward(self.model, self._local.inputs[:count], training=True, dropout_masks=masks,
                                     weights=weights)
        return subset, tape


def input_features(model, trace: walker.ForwardTrace, name: str):
    """x̃ `[B, P]`: the layer input flattened, with a trailing 1 for the bias."""
    inputs = trace.layer_inputs[name]
    inputs = tf.reshape(inputs, [tf.shape(inputs)[0], -1])
    if model.get_layer(name).bias is None:
        return inputs
    return tf.concat([inputs, tf.ones_like(inputs[:, :1])], axis=1)
