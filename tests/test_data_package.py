"""keras_taylor.data itself: the public names it re-exports, and an import that loads no TensorFlow."""


import keras_taylor.data

PUBLIC_NAMES = (
    "DATASET_NAMES",
    "DEFAULT_CACHE_DIR",
    "EMBEDDED_MNIST",
    "EMBEDDED_MNIST_LABEL_COUNTS",
    "SPLITS",
    "TASKS",
    "ChannelStats",
    "Dataset",
    "DatasetUnavailableError",
    "channel_stats",
    "load_dataset",
    "load_embedded_mnist",
    "load_mnist_idx",
    "preprocess",
    "read_idx",
)


def test_every_public_name_is_exported():
    assert sorted(keras_taylor.data.__all__) == sorted(PUBLIC_NAMES)
    for name in PUBLIC_NAMES:
        assert getattr(keras_taylor.data, name) is not None, name
    assert callable(keras_taylor.data.preprocess)  # The function, not a module of that name.
