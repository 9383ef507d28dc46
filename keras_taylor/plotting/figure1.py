"""Fig. 1: a rectifier net's piecewise-linear output and its shattered gradient."""

from collections.abc import Sequence

import matplotlib.axes
import matplotlib.lines
import numpy as np

from keras_taylor.plotting._shared import finish


def relu_net_1d(
    kernels: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A dense rectifier net with scalar input and output, and its exact derivative.

    The net is f(x) = W_L^T ρ(… ρ(W_1^T x + b_1) …) + b_L with ρ = ReLU on every hidden
    layer and a linear output. Its derivative is the product of the kernels with each
    hidden layer's activation mask in between, df/dx = W_1 D_1(x) W_2 … D_{L−1}(x) W_L
    (the paper's Fig. 1: f is piecewise linear, so df/dx is piecewise constant and
    "shattered"). A unit whose preactivation is exactly 0 counts as off, as in
    TensorFlow's ReLU gradient.

    Args:
        kernels: L arrays `[in_l, out_l]` (Keras's Dense layout, as in
            `model.get_weights()[0::2]`), with in_1 = 1, out_L = 1 and out_l = in_{l+1}.
        biases: L arrays `[out_l]`.
        x: `[K]` inputs.

    Returns:
        `(f, df_dx)`, both `[K]` float64.

    Raises:
        ValueError: If the shapes do not chain into a scalar-to-scalar net, or `x` is not 1-D.
    """
    if len(kernels) != len(biases) or not kernels:
        raise ValueError(
            "Expected as many kernels as biases, at least one. "
            f"Received: {len(kernels)} kernels and {len(biases)} biases"
        )
    inputs = np.asarray(x, dtype=np.float64)
    if inputs.ndim != 1:
        raise ValueError(f"Expected x of shape [K]. Received: x.shape={inputs.shape}")
    kernels = [np.asarray(kernel, dtype=np.float64) for kernel in kernels]
    biases = [np.asarray(bias, dtype=np.float64) for bias in biases]
    width = 1
    for index, (kernel, bias) in enumerate(zip(kernels, biases)):
        if kernel.ndim != 2 or kernel.shape[0] != width or bias.shape != (kernel.shape[1],):
            raise ValueError(
                f"Layer {index}: expected kernel [{width}, out] and bias [out]. "
                f"Received: kernel.shape={kernel.shape}, bias.shape={bias.shape}"
            )
        width = kernel.shape[1]
    if width != 1:
        raise ValueError(f"Expected a scalar output. Received: last kernel.shape={kernels[-1].shape}")

    hidden = inputs[:, None]  # [K, width_l]
    hidden_wrt_input = np.ones_like(hidden)  # [K, width_l], d hidden / dx
    for kernel, bias in zip(kernels[:-1], biases[:-1]):
        preactivation = hidden @ kernel + bias
        mask = preactivation > 0
        hidden = np.where(mask, preactivation, 0.0)
        hidden_wrt_input = (hidden_wrt_input @ kernel) * mask
    output = hidden @ kernels[-1] + biases[-1]
    output_wrt_input = hidden_wrt_input @ kernels[-1]
    return output[:, 0], output_wrt_input[:, 0]


def plot_piecewise_linear(
    ax_function: matplotlib.axes.Axes,
    ax_gradient: matplotlib.axes.Axes,
    x: np.ndarray,
    f: np.ndarray,
    gradient: np.ndarray,
    *,
    color: str = "tab:blue",
    function_title: str | None = None,
    gradient_title: str | None = None,
) -> tuple[matplotlib.lines.Line2D, matplotlib.lines.Line2D]:
    """Fig. 1: a rectifier net's output f(x) and its derivative, on two Axes.

    Args:
        ax_function: Axes for f.
        ax_gradient: Axes for df/dx.
        x: `[K]` increasing inputs.
        f: `[K]` outputs (e.g. from `relu_net_1d`).
        gradient: `[K]` derivatives.
        color: Line color, shared by both panels.
        function_title: Optional title of the function panel.
        gradient_title: Optional title of the gradient panel.

    Returns:
        The function's line and the gradient's line.

    Raises:
        ValueError: If the arrays are not `[K]` of one length, or x is not increasing.
    """
    x, f, gradient = (np.asarray(values, dtype=np.float64) for values in (x, f, gradient))
    if x.ndim != 1 or f.shape != x.shape or gradient.shape != x.shape:
        raise ValueError(
            "Expected x, f and gradient of one shape [K]. "
            f"Received: x.shape={x.shape}, f.shape={f.shape}, gradient.shape={gradient.shape}"
        )
    if np.any(np.diff(x) <= 0):
        raise ValueError("Expected increasing x: a line through unsorted inputs draws spurious segments.")
    (function_line,) = ax_function.plot(x, f, color=color, label="f(x)")
    (gradient_line,) = ax_gradient.plot(x, gradient, color=color, label="df/dx")
    finish(ax_function, "input x", "output f(x)", function_title)
    finish(ax_gradient, "input x", "gradient df/dx", gradient_title)
    return function_line, gradient_line
