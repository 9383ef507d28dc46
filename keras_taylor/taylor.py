"""The neural Taylor approximation of one training round, in NumPy.

At round n with weights W^n and minibatch x^n, the network output is expanded to
first order in the weights (paper, Sec. 2):

    T^n(V) = f_{W^n}(x^n) + Σ_l ⟨G_l, V_l − W_l^n⟩,

where G_l = ∂f/∂W_l is `[B, p_L, *W_l.shape]`. G_l is never formed here: for a
layer with pre-activation z_l = A(x_l; W_l) (A affine in W_l),

    ⟨G_l, Δ⟩ = J_l · A(x_l; Δ)   with J_l = ∂f/∂z_l of shape [B, p_L, *z_l.shape],

so a layer is held as its factors (the layer input x_l and J_l), `LayerFactors`.
The Taylor loss ℓ(T^n(V), y^n) is convex in V whenever ℓ is convex in the outputs.
It equals the real loss at V = W^n and has the same gradient there (T1, T2 in
tests/test_taylor.py). The three scales of the paper are: the network (all
weights), a layer (its kernel and bias) and a neuron (one unit's or filter's
incoming kernel slice and bias).
"""

import dataclasses
from typing import Sequence

import numpy as np

from keras_taylor.errors import ShapeMismatchError
from keras_taylor.losses import ConvexLoss


def _same_padding(size: int, extent: int, stride: int) -> tuple[int, int]:
    out_size = -(-size // stride)
    total = max((out_size - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def conv_patches(
    inputs: np.ndarray,
    kernel_size: Sequence[int],
    strides: Sequence[int] = (1, 1),
    padding: str = "valid",
    dilation_rate: Sequence[int] = (1, 1),
) -> np.ndarray:
    """Strided view of the convolution patches, `[B, H', W', C_in, kh, kw]`.

    Follows TensorFlow's "SAME" / "VALID" conventions, so that
    `einsum("bhwcij,ijco->bhwo", patches, kernel)` equals `tf.nn.convolution`.
    No copy is made.
    """
    extent_h = (kernel_size[0] - 1) * dilation_rate[0] + 1
    extent_w = (kernel_size[1] - 1) * dilation_rate[1] + 1
    if padding.lower() == "same":
        pad_h = _same_padding(inputs.shape[1], extent_h, strides[0])
        pad_w = _same_padding(inputs.shape[2], extent_w, strides[1])
        inputs = np.pad(inputs, ((0, 0), pad_h, pad_w, (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(inputs, (extent_h, extent_w), axis=(1, 2))
    return windows[:, :: strides[0], :: strides[1], :, :: dilation_rate[0], :: dilation_rate[1]]


@dataclasses.dataclass(frozen=True)
class LayerFactors:
    """One layer's factored Taylor data at one round.

    Attributes:
        name: The layer's name.
        kind: "dense" or "conv2d".
        inputs: The layer's input, `[B, d_in]` or `[B, H, W, C_in]`.
        jac_out_wrt_preact: ∂f/∂z, `[B, p_L, p_l]` (dense) or `[B, p_L, H', W', C_out]`.
        kernel: W^n's kernel.
        bias: W^n's bias, or None for a layer without one.
        kernel_size, strides, padding, dilation_rate: convolution geometry.
    """

    name: str
    kind: str
    inputs: np.ndarray
    jac_out_wrt_preact: np.ndarray
    kernel: np.ndarray
    bias: np.ndarray | None
    kernel_size: tuple = (1, 1)
    strides: tuple = (1, 1)
    padding: str = "valid"
    dilation_rate: tuple = (1, 1)

    @property
    def units(self) -> int:
        return self.kernel.shape[-1]

    def weights(self, neuron: int | None = None) -> list[np.ndarray]:
        """W^n at layer scale (`[kernel, bias]`) or neuron scale (`[kernel[..., α], bias[α]]`)."""
        parts = [self.kernel] if self.bias is None else [self.kernel, self.bias]
        if neuron is None:
            return parts
        self._check_neuron(neuron)
        return [part[..., neuron] for part in parts]

    def _check_neuron(self, neuron: int) -> None:
        if not 0 <= neuron < self.units:
            raise ValueError(
                f"Layer '{self.name}' has {self.units} neurons. Received: neuron={neuron}"
            )

    def _patches(self) -> np.ndarray:
        return conv_patches(
            self.inputs, self.kernel_size, self.strides, self.padding, self.dilation_rate
        )

    def preactivation_delta(self, delta: Sequence[np.ndarray], neuron: int | None = None) -> np.ndarray:
        """A(x_l; Δ): the pre-activation change that a weight change Δ causes.

        Args:
            delta: `[d_kernel, d_bias]` at layer or neuron scale.
            neuron: None for the layer scale, else the unit α.

        Returns:
            `[B, *z_l.shape]` for the layer, `[B, *spatial]` for a neuron.
        """
        d_kernel = delta[0]
        if self.kind == "dense":
            change = self.inputs @ d_kernel
        else:
            subscripts = "bhwcij,ijc->bhw" if neuron is not None else "bhwcij,ijco->bhwo"
            change = np.einsum(subscripts, self._patches(), d_kernel, optimize=True)
        if self.bias is not None:
            change = change + delta[1]
        return change

    def output_delta(self, delta: Sequence[np.ndarray], neuron: int | None = None) -> np.ndarray:
        """⟨G_l, Δ⟩ = J_l · A(x_l; Δ), `[B, p_L]`."""
        change = self.preactivation_delta(delta, neuron)
        jacobian = self.jac_out_wrt_preact if neuron is None else self.jac_out_wrt_preact[..., neuron]
        batch, outputs = jacobian.shape[:2]
        return np.einsum(
            "bpk,bk->bp", jacobian.reshape(batch, outputs, -1), change.reshape(batch, -1)
        )

    def weight_gradient(self, output_cotangent: np.ndarray, neuron: int | None = None) -> list[np.ndarray]:
        """G_l^T g: the gradient w.r.t. the layer's (or neuron's) weights of ⟨g, f⟩.

        Args:
            output_cotangent: `[B, p_L]`, e.g. ∂ℓ/∂outputs.
            neuron: None for the layer scale, else the unit α.

        Returns:
            `[d_kernel, d_bias]` shaped like `weights(neuron)`.
        """
        jacobian = self.jac_out_wrt_preact if neuron is None else self.jac_out_wrt_preact[..., neuron]
        preact_cotangent = np.einsum("bp,bp...->b...", output_cotangent, jacobian)
        if self.kind == "dense":
            d_kernel = self.inputs.T @ preact_cotangent
        else:
            subscripts = "bhwcij,bhw->ijc" if neuron is not None else "bhwcij,bhwo->ijco"
            d_kernel = np.einsum(subscripts, self._patches(), preact_cotangent, optimize=True)
        if self.bias is None:
            return [d_kernel]
        spatial_axes = tuple(range(preact_cotangent.ndim - (0 if neuron is not None else 1)))
        return [d_kernel, preact_cotangent.sum(axis=spatial_axes)]

    def weight_jacobian(self, weight: str = "kernel") -> np.ndarray:
        """The full G_l for the kernel `[B, p_L, *kernel.shape]` or the bias `[B, p_L, units]`.

        This materializes p_L × |W_l| numbers per example: use it for checks and
        small layers only.
        """
        if weight == "bias":
            if self.bias is None:
                raise ValueError(f"Layer '{self.name}' has no bias.")
            return self.jac_out_wrt_preact.sum(axis=(2, 3)) if self.kind == "conv2d" else self.jac_out_wrt_preact
        if weight != "kernel":
            raise ValueError(f"weight must be 'kernel' or 'bias'. Received: weight={weight!r}")
        if self.kind == "dense":
            return np.einsum("bpj,bi->bpij", self.jac_out_wrt_preact, self.inputs)
        return np.einsum("bphwo,bhwcij->bpijco", self.jac_out_wrt_preact, self._patches())


def _check_shapes(what: str, expected: Sequence[np.ndarray], received: Sequence) -> list[np.ndarray]:
    if len(received) != len(expected):
        raise ShapeMismatchError(
            f"{what} takes {len(expected)} arrays shaped {[e.shape for e in expected]}. "
            f"Received: {len(received)} arrays"
        )
    arrays = [np.asarray(r, dtype=e.dtype) for r, e in zip(received, expected)]
    for array, reference in zip(arrays, expected):
        if array.shape != reference.shape:
            raise ShapeMismatchError(
                f"{what} takes arrays shaped {[e.shape for e in expected]}. "
                f"Received: shapes {[a.shape for a in arrays]}"
            )
    return arrays


@dataclasses.dataclass(frozen=True)
class TaylorSnapshot:
    """The neural Taylor approximation T^n and Taylor loss at one round.

    Attributes:
        outputs: f_{W^n}(x^n), `[B, p_L]` (the logits when a final softmax or sigmoid
            is split off for a probability-space cross-entropy; see `at_logits`).
        targets: y^n as the loss reads it.
        loss: The real loss at W^n, with the Keras loss's own reduction.
        convex_loss: ℓ as a function of the linearization point.
        factors: Per layer with weights, its `LayerFactors`.
        parameter_slots: `(layer name, part index)` for each entry of
            `model.trainable_weights`: the layout of network-scale `V`.
        masks: Per rectifier layer, its activation mask `[B, *units]`.
        dropout_masks: Per dropout layer used in training mode, the scaled keep mask.
        at_logits: Whether the linearization point is the logits before a softmax or sigmoid.
        training: Whether the snapshot was taken in training mode.
    """

    outputs: np.ndarray
    targets: np.ndarray
    loss: float
    convex_loss: ConvexLoss
    factors: dict
    parameter_slots: tuple
    masks: dict
    dropout_masks: dict
    at_logits: bool
    training: bool

    def _factors(self, layer) -> LayerFactors:
        name = layer if isinstance(layer, str) else getattr(layer, "name", layer)
        if name not in self.factors:
            raise ValueError(
                f"This snapshot has no layer {name!r}; it holds {list(self.factors)}."
            )
        return self.factors[name]

    def _network_check(self) -> None:
        missing = {name for name, _ in self.parameter_slots} - set(self.factors)
        if missing:
            raise ValueError(
                "The network scale needs every trainable layer, but this snapshot was taken "
                f"without {sorted(missing)}."
            )

    def weights(self, layer=None, neuron: int | None = None) -> list[np.ndarray]:
        """W^n at the chosen scale: the point where the Taylor loss equals the loss.

        Args:
            layer: None for the network scale, else a layer name (or layer).
            neuron: With `layer`, the unit or filter α for the neuron scale.

        Returns:
            Network: a list like `model.trainable_weights`. Layer: `[kernel, bias]`.
            Neuron: `[kernel[..., α], bias[α]]`.
        """
        if layer is None:
            if neuron is not None:
                raise ValueError("neuron= needs layer= too.")
            self._network_check()
            return [self.factors[name].weights()[part] for name, part in self.parameter_slots]
        return self._factors(layer).weights(neuron)

    def _network_deltas(self, values) -> dict:
        values = _check_shapes("The network-scale V", self.weights(), values)
        deltas = {}
        for (name, part), value in zip(self.parameter_slots, values):
            reference = self.factors[name].weights()[part]
            deltas.setdefault(name, [None] * len(self.factors[name].weights()))[part] = value - reference
        return deltas

    def approximation(self, values, layer=None, neuron: int | None = None) -> np.ndarray:
        """T^n(V), `[B, p_L]`, at the network, layer or neuron scale.

        Args:
            values: V, laid out as `weights(layer, neuron)` returns W^n.
            layer: None for the network scale, else a layer name (or layer).
            neuron: With `layer`, the unit or filter α.

        Raises:
            ShapeMismatchError: if V is not laid out like W^n at that scale.
        """
        if layer is None:
            self.weights(neuron=neuron)
            change = sum(
                self.factors[name].output_delta(delta) for name, delta in self._network_deltas(values).items()
            )
            return self.outputs + change
        factors = self._factors(layer)
        reference = factors.weights(neuron)
        values = _check_shapes(f"V at layer '{factors.name}'" + (f", neuron {neuron}" if neuron is not None else ""),
                               reference, values)
        delta = [value - ref for value, ref in zip(values, reference)]
        return self.outputs + factors.output_delta(delta, neuron)

    def taylor_loss(self, values, layer=None, neuron: int | None = None) -> float:
        """ℓ(T^n(V), y^n): the Taylor loss, convex in V (same arguments as `approximation`)."""
        return self.convex_loss(self.approximation(values, layer, neuron), self.targets)

    def taylor_loss_gradient(self, values, layer=None, neuron: int | None = None) -> list[np.ndarray]:
        """∇_V ℓ(T^n(V), y^n) = Σ G^T ∂ℓ/∂T, laid out like V."""
        output_gradient = self.convex_loss.gradient(self.approximation(values, layer, neuron), self.targets)
        if layer is None:
            per_layer = {name: self.factors[name].weight_gradient(output_gradient) for name in self.factors}
            return [per_layer[name][part] for name, part in self.parameter_slots]
        return self._factors(layer).weight_gradient(output_gradient, neuron)
