"""Rectifier layers that can return their activation mask.

`RectifiedDense` and `RectifiedConv2D` are `Dense` / `Conv2D` with the
activation fixed to ReLU. Called with `return_mask=True` they return
`(outputs, mask)`, where `mask = preactivation > 0` is the layer's slice of the
activation configuration (paper, Sec. 3.3), computed from the same
pre-activation as the outputs.
"""

import keras
from keras import ops


def _refuse_activation(class_name: str, kwargs: dict) -> None:
    if "activation" in kwargs:
        raise ValueError(
            f"{class_name} always applies ReLU; do not pass `activation`. "
            f"Received: activation={kwargs['activation']!r}"
        )


class _RectifiedMixin:
    """ReLU on the parent layer's affine output, with the mask on request."""

    def call(self, inputs, training=None, return_mask=False):
        del training
        preactivation = super().call(inputs)
        outputs = ops.relu(preactivation)
        if return_mask:
            return outputs, ops.greater(preactivation, 0)
        return outputs

    def compute_output_spec(self, inputs, training=None, return_mask=False):
        output_spec = super().compute_output_spec(inputs)
        if return_mask:
            return output_spec, keras.KerasTensor(output_spec.shape, dtype="bool")
        return output_spec

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return config


@keras.saving.register_keras_serializable(package="keras_taylor")
class RectifiedDense(_RectifiedMixin, keras.layers.Dense):
    """A densely connected ReLU layer that can expose its activation mask.

    Args:
        units: Positive integer, the number of rectified units.
        **kwargs: Any other `keras.layers.Dense` argument except `activation`.

    Call arguments:
        inputs: `[B, d_in]` tensor.
        return_mask: If True, also return the boolean mask `[B, units]` of the
            units whose pre-activation is positive.
    """

    def __init__(self, units, **kwargs):
        _refuse_activation("RectifiedDense", kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(
                f"RectifiedDense needs a positive integer `units`. Received: units={units!r}"
            )
        super().__init__(units, activation=None, **kwargs)


@keras.saving.register_keras_serializable(package="keras_taylor")
class RectifiedConv2D(_RectifiedMixin, keras.layers.Conv2D):
    """A 2-D convolution with ReLU that can expose its activation mask.

    Args:
        filters: Positive integer, the number of rectified filters.
        kernel_size: Integer or pair of integers.
        **kwargs: Any other `keras.layers.Conv2D` argument except `activation`.

    Call arguments:
        inputs: `[B, H, W, C]` tensor (channels last).
        return_mask: If True, also return the boolean mask `[B, H', W', filters]`.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        _refuse_activation("RectifiedConv2D", kwargs)
        if not isinstance(filters, int) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(
                "RectifiedConv2D needs a positive integer `filters`. "
                f"Received: filters={filters!r}"
            )
        super().__init__(filters, kernel_size, activation=None, **kwargs)
