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


def _write_idx(path, array):
    import gzip

    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_loader_reads_what_was_written(tmp_path, rng):
    from keras_taylor.data import load_mnist_idx

    images = rng.integers(0, 256, size=(7, 28, 28))
    labels = rng.integers(0, 10, size=7)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    loaded_images, loaded_labels = load_mnist_idx(tmp_path, "test")
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_idx_loader_names_a_truncated_file(tmp_path, rng):
    import gzip

    import pytest

    from keras_taylor.data import read_idx

    path = tmp_path / "broken.gz"
    _write_idx(path, rng.integers(0, 256, size=(3, 4)))
    with gzip.open(path, "rb") as handle:
        payload = handle.read()
    with gzip.open(path, "wb") as handle:
        handle.write(payload[:-2])
    with pytest.raises(ValueError, match="broken.gz holds 10 bytes"):
        read_idx(path)
