"""The tensorflow-datasets route: its own download and cache, when no local copies are given.

tensorflow-datasets is imported only when this route runs.
"""

from keras_taylor.data.dataset import Dataset, DatasetSpec


class DatasetUnavailableError(RuntimeError):
    """tensorflow-datasets could not provide a dataset (typically: no network to download it)."""


def load_tfds_dataset(name: str, split: str, spec: DatasetSpec) -> Dataset:
    """One split of `name` from `tfds.load`, downloaded and cached in `~/tensorflow_datasets`.

    Args:
        name: "mnist", "fashion_mnist" or "cifar10" (tensorflow-datasets' names).
        split: "train" or "test".
        spec: `name`'s entry of `DATASET_SPECS`.

    Returns:
        The split; single-channel images lose tfds' trailing channel axis, to match the IDX route.

    Raises:
        DatasetUnavailableError: if tensorflow-datasets cannot provide the set (offline).
        ValueError: if its images are not of `spec.image_shape`.
    """
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    try:
        images, labels = tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, as_supervised=True))
    except Exception as error:  # tfds raises many types when offline; all end here.
        raise DatasetUnavailableError(
            f"tensorflow-datasets could not load {name!r} split {split!r} "
            f"({type(error).__name__}: {error}). Without network access to the dataset hosts it "
            f"cannot download: pass data_dir= local copies (a directory of IDX files for "
            f"mnist/fashion_mnist, an image folder or its .tar.gz for cifar10), or use 'embedded_mnist'."
        ) from error
    if len(spec.image_shape) == 2 and images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.shape[1:] != spec.image_shape:
        raise ValueError(
            f"tensorflow-datasets returned {name} images of shape {images.shape[1:]}, expected {spec.image_shape}."
        )
    return spec.dataset(name, split, images, labels, f"tensorflow-datasets {name} {split}")
