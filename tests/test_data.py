"""The embedded dataset."""

import numpy as np

from keras_taylor.data import load_embedded_mnist

# Label counts of the first 10,000 MNIST training images.
FIRST_10K_LABEL_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def test_embedded_mnist_has_documented_shape_and_labels():
    images, labels = load_embedded_mnist()
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,)
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), FIRST_10K_LABEL_COUNTS)
    # Real digits: mostly background, bright strokes, roughly the MNIST mean intensity.
    assert 0.10 < images.mean() / 255 < 0.16
    assert images.max() == 255 and np.median(images) == 0
