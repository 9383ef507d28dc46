"""The paper's two architectures (Sec. 4 and appendix A.5), built from rectifier layers."""

import keras

from keras_taylor.layers import RectifiedConv2D, RectifiedDense

AUTOENCODER_WIDTHS = (50, 30, 20, 30, 50)


def autoencoder(input_dim: int = 784, widths=AUTOENCODER_WIDTHS, seed: int | None = None) -> keras.Model:
    """The MNIST autoencoder 784-50-30-20-30-50-784: ReLU hidden layers, linear output.

    Args:
        input_dim: Size of the flattened input (and of the reconstruction).
        widths: Hidden layer widths.
        seed: Seed for the initializers (None: Keras's global seed state).

    Returns:
        A functional model `[B, input_dim] -> [B, input_dim]`.
    """
    inputs = keras.Input((input_dim,), name="pixels")
    hidden = inputs
    for index, width in enumerate(widths):
        hidden = RectifiedDense(
            width,
            kernel_initializer=keras.initializers.GlorotUniform(None if seed is None else seed + index),
            name=f"relu_{index + 1}",
        )(hidden)
    outputs = keras.layers.Dense(
        input_dim,
        kernel_initializer=keras.initializers.GlorotUniform(None if seed is None else seed + len(widths)),
        name="reconstruction",
    )(hidden)
    return keras.Model(inputs, outputs, name="autoencoder")


def convnet(
    input_shape=(32, 32, 3), num_classes: int = 10, filters: int = 64, seed: int | None = None
) -> keras.Model:
    """The CIFAR-10 convnet: 3 × [Conv2D(64, 5×5, ReLU) + 2×2 max-pool], Dense(192, ReLU), Dense(10).

    Returns logits (train with a from-logits cross-entropy).
    """

    def init(offset):
        return keras.initializers.GlorotUniform(None if seed is None else seed + offset)

    inputs = keras.Input(input_shape, name="images")
    hidden = inputs
    for index in range(3):
        hidden = RectifiedConv2D(
            filters, 5, padding="same", kernel_initializer=init(index), name=f"conv_{index + 1}"
        )(hidden)
        hidden = keras.layers.MaxPooling2D(2, name=f"pool_{index + 1}")(hidden)
    hidden = keras.layers.Flatten(name="flatten")(hidden)
    hidden = RectifiedDense(192, kernel_initializer=init(3), name="relu_fc")(hidden)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=init(4), name="logits")(hidden)
    return keras.Model(inputs, outputs, name="convnet")
