"""Datasets for the paper's experiments: MNIST-style digits and CIFAR-10, as uint8 arrays.

`load_dataset` (`load`) returns a `Dataset` (`dataset`) from one of three routes:

* `data_dir` given: local copies in standard layouts. MNIST and Fashion-MNIST are read from a
  directory of IDX files (`idx`); CIFAR-10 from an image folder `DIR/<split>/<class>/*.jpg|png`
  (`image_folder`), or from a `.tar.gz` of that layout, which is unpacked once into a cache
  folder (`archive`). Decoded image folders are cached as `.npz` arrays (`cache`).
* no `data_dir`: `tensorflow-datasets` downloads and caches the set as usual (`tfds`; needs
  network).
* `"embedded_mnist"`: the 10,000 real MNIST digits shipped inside the package (`embedded`; no
  I/O but the package's own file).

`preprocess` (`preprocessing`) turns a `Dataset` into the float32 arrays that the paper's
autoencoder and convnet train on. TensorFlow and tensorflow-datasets are imported only by the
routes that need them, so importing this package is cheap.
"""

from keras_taylor.data.dataset import DATASET_NAMES
from keras_taylor.data.dataset import SPLITS
from keras_taylor.data.dataset import Dataset
from keras_taylor.data.embedded import EMBEDDED_MNIST
from keras_taylor.data.embedded import EMBEDDED_MNIST_LABEL_COUNTS
from keras_taylor.data.embedded import load_embedded_mnist
from keras_taylor.data.idx import load_mnist_idx
from keras_taylor.data.idx import read_idx
from keras_taylor.data.load import DEFAULT_CACHE_DIR
from keras_taylor.data.load import load_dataset
from keras_taylor.data.preprocessing import TASKS
from keras_taylor.data.preprocessing import ChannelStats
from keras_taylor.data.preprocessing import channel_stats
from keras_taylor.data.preprocessing import preprocess
from keras_taylor.data.tfds import DatasetUnavailableError

__all__ = [
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
]
