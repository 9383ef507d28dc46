"""keras_taylor.data.load: `load_dataset`'s argument checks and `limit`; each route is tested with its module."""

import pytest

from keras_taylor.data.load import load_dataset

BAD_ARGUMENTS = {
    "unknown_name": (dict(name="imagenet"), "Unknown dataset name 'imagenet'; known names: mnist, fashion_mnist"),
    "unknown_split": (dict(name="mnist", split="validation"), "Unknown split 'validation' for mnist"),
    "zero_limit": (dict(name="embedded_mnist", limit=0), "limit must be a positive integer"),
    "float_limit": (dict(name="embedded_mnist", limit=2.5), "limit must be a positive integer"),
    "limit_too_large": (dict(name="embedded_mnist", limit=10_001), "limit=10001 exceeds the 10000 examples"),
}


@pytest.mark.parametrize("arguments, message", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_load_dataset_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(**arguments)
