"""keras_taylor.data.preprocessing: the float32 arrays of the paper's two experiments, and channel statistics."""

import numpy as np
import pytest

from keras_taylor.data.preprocessing import ChannelStats, channel_stats, preprocess

from data_fixtures import cifar_like, mnist_like


def test_autoencoder_inputs_are_flat_unit_pixels_and_their_own_targets(rng):
    dataset = mnist_like(rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=5))
    inputs, targets = preprocess(dataset, "autoencoder")
    assert inputs.shape == (5, 784) and inputs.dtype == np.float32
    reference = np.array([[pixel / 255.0 for pixel in image.ravel()] for image in dataset.images])
    np.testing.assert_allclose(inputs, reference, rtol=1e-6)
    np.testing.assert_array_equal(targets, inputs)


def test_classifier_inputs_are_unit_pixels_with_integer_labels(rng):
    dataset = cifar_like(rng)
    inputs, targets = preprocess(dataset, "classifier")
    assert inputs.shape == (6, 32, 32, 3) and inputs.dtype == np.float32
    np.testing.assert_allclose(inputs, dataset.images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(targets, dataset.labels)
    assert targets.dtype == np.int64
    grey = mnist_like(rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8), np.array([3, 4]))
    assert preprocess(grey, "classifier")[0].shape == (2, 28, 28, 1)


def test_channel_stats_match_numpy(rng):
    dataset = cifar_like(rng)
    stats = channel_stats(dataset)
    scaled = dataset.images / 255.0
    np.testing.assert_allclose(stats.mean, scaled.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(stats.std, scaled.std(axis=(0, 1, 2)), rtol=1e-6)


def test_standardize_uses_own_or_given_statistics(rng):
    train, test = cifar_like(rng), cifar_like(rng, count=4)
    inputs, _ = preprocess(train, "classifier", standardize=True)
    np.testing.assert_allclose(inputs.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(inputs.std(axis=(0, 1, 2)), 1.0, rtol=1e-4)
    train_stats = channel_stats(train)
    test_inputs, _ = preprocess(test, "classifier", standardize=True, stats=train_stats)
    reference = (test.images / 255.0 - train_stats.mean) / train_stats.std
    np.testing.assert_allclose(test_inputs, reference, rtol=1e-4, atol=1e-5)


PREPROCESS_ERRORS = {
    "unknown_task": (dict(task="segmentation"), "Unknown task 'segmentation'"),
    "standardized_autoencoder": (dict(task="autoencoder", standardize=True), "standardize applies to 'classifier'"),
    "stats_without_standardize": (
        dict(task="classifier", stats=ChannelStats(np.zeros(3), np.ones(3))),
        "only used with standardize=True",
    ),
    "stats_for_other_channels": (
        dict(task="classifier", standardize=True, stats=ChannelStats(np.zeros(1), np.ones(1))),
        "the images have 3",
    ),
}


@pytest.mark.parametrize("arguments, message", PREPROCESS_ERRORS.values(), ids=PREPROCESS_ERRORS.keys())
def test_preprocess_rejects_bad_options(rng, arguments, message):
    with pytest.raises(ValueError, match=message):
        preprocess(cifar_like(rng), **arguments)
