"""The image-folder route (CIFAR-10): `DIR/<split>/<class>/*.jpg|png`, or an archive of that layout.

tensorflow-datasets' `ImageFolder` lists and labels the images, TensorFlow decodes them (both
imported only when a split is decoded), and the decoded arrays are cached (`cache`).
"""

import contextlib
import hashlib
import os
import pathlib
import tempfile

import numpy as np

from keras_taylor.data import archive, cache
from keras_taylor.data.dataset import SPLITS, Dataset, DatasetSpec

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # What tfds' ImageFolder reads.
# Part of the decoded-array cache's fingerprint: a change of decoder invalidates old caches.
IMAGE_DECODER = "tf.io.decode_jpeg(dct_method=INTEGER_ACCURATE) | tf.io.decode_png"


def _visible_subfolders(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))


def _layout_root(folder: pathlib.Path, split: str) -> pathlib.Path:
    """The folder that holds `<split>/<class>/`: `folder` itself or its single subfolder."""
    if any((folder / name).is_dir() for name in SPLITS):
        root = folder
    else:
        subfolders = _visible_subfolders(folder)
        if len(subfolders) != 1 or not any((subfolders[0] / name).is_dir() for name in SPLITS):
            raise FileNotFoundError(
                f"{folder} holds no image-folder layout: expected {folder}/{split}/<class>/*.jpg|png "
                f"(or a single subfolder holding it)."
            )
        root = subfolders[0]
    if not (root / split).is_dir():
        raise FileNotFoundError(f"{root} has no {split!r} split folder ({root / split}).")
    return root


def _list_image_folder(root: pathlib.Path, split: str) -> tuple[tuple[str, ...], list[tuple[str, int, int]]]:
    """Class names (as tfds' ImageFolder assigns them) and `(path, size, mtime)` of the split's images.

    ImageFolder takes every folder in `root` as a split and numbers the classes by the sorted
    union of all splits' class folders, so that class indices agree across splits.
    """
    class_names = sorted({
        class_folder.name
        for split_folder in root.iterdir() if split_folder.is_dir()
        for class_folder in split_folder.iterdir() if class_folder.is_dir()
    })
    split_folder = root / split
    class_folders = sorted(child for child in split_folder.iterdir() if child.is_dir())
    if not class_folders:
        raise ValueError(f"{split_folder} holds no class folders (expected {split_folder}/<class>/*.jpg|png).")
    image_files = []
    for class_folder in class_folders:
        with os.scandir(class_folder) as entries:
            found = [
                (entry.path, entry.stat().st_size, entry.stat().st_mtime_ns)
                for entry in entries
                if entry.is_file() and entry.name.lower().endswith(_IMAGE_SUFFIXES)
            ]
        if not found:
            raise ValueError(f"Class folder {class_folder} holds no {'/'.join(_IMAGE_SUFFIXES)} images.")
        image_files.extend(sorted(found))
    return tuple(class_names), image_files


@contextlib.contextmanager
def _temporary_files_removed():
    """Points `tempfile` at a private directory, removed with all it holds on exit.

    tfds' `DatasetInfo.initialize_from_bucket` (run when an `ImageFolder` is built) makes a
    `mkdtemp("tfds")` directory and never removes it: one stray directory per load otherwise.
    `tempfile.tempdir` is process-wide: a temporary file another thread makes meanwhile lands in
    the private directory and goes with it (loading happens before training, on one thread).
    """
    saved = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="keras_taylor_tfds_") as private:
        tempfile.tempdir = private
        try:
            yield
        finally:
            tempfile.tempdir = saved


def _decode_image_folder(
    root: pathlib.Path, split: str, image_files: list[tuple[str, int, int]], image_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    with _temporary_files_removed():
        builder = tfds.folder_dataset.ImageFolder(str(root), shape=(None, None, image_shape[-1]))
    # tfds' own image decoding uses TensorFlow's default (fast) JPEG inverse DCT, which on the
    # CIFAR-10 JPEG copy shifts the red and blue channel means by about 0.005; the accurate
    # one decodes exactly as PIL/libjpeg do. So ImageFolder lists and labels, and we decode.
    examples = builder.as_dataset(
        split=split, shuffle_files=False, as_supervised=True, decoders={"image": tfds.decode.SkipDecoding()}
    )
    # Batched here, not with as_dataset(batch_size=...): tfds pads images of differing sizes
    # to a common one with zeros, where `batch` refuses them.
    batches = examples.map(
        lambda encoded, label: (_decode_image(encoded, image_shape[-1]), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).batch(1024)
    try:
        decoded = list(tfds.as_numpy(batches))
    except tf.errors.InvalidArgumentError:
        # A file that does not decode, or images of differing sizes that cannot be batched:
        # the batched pipeline cannot say which file, so look at them one by one.
        _raise_for_bad_image(image_files, image_shape)
        raise
    images = np.concatenate([batch_images for batch_images, _ in decoded])
    labels = np.concatenate([batch_labels for _, batch_labels in decoded])
    if images.shape[1:] != image_shape:
        raise ValueError(f"Images in {root / split} are {images.shape[1:]}; expected {image_shape}.")
    return images, labels, tuple(builder.info.features["label"].names)


def _decode_image(encoded, channels: int):
    """Decodes one JPEG or PNG (a string tensor) into uint8 `[H, W, channels]`, as `IMAGE_DECODER` says."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=channels, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(encoded, channels=channels),
    )


def _raise_for_bad_image(image_files: list[tuple[str, int, int]], image_shape: tuple[int, ...]) -> None:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    for path, _, _ in image_files:
        try:
            image = _decode_image(tf.io.read_file(path), image_shape[-1])
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(f"{path} could not be decoded as an image.") from error
        if tuple(image.shape) != image_shape:
            raise ValueError(f"{path} is an image of shape {tuple(image.shape)}; expected {image_shape}.")


def load_image_folder_dataset(
    name: str, split: str, data_dir: pathlib.Path, cache_root: pathlib.Path, spec: DatasetSpec
) -> Dataset:
    """`load_dataset`'s image-folder route: one split from a folder or an archive of one.

    Args:
        name: the dataset's name ("cifar10").
        split: "train" or "test".
        data_dir: a folder holding `<split>/<class>/*.jpg|png` (or whose single subfolder
            does), or a .tar.gz/.tgz/.tar archive of one.
        cache_root: where archives are unpacked and decoded arrays are cached.
        spec: `name`'s entry of `DATASET_SPECS`; its `image_shape` is what every image must have.

    Returns:
        The split, in ImageFolder's deterministic shuffled order (seeded by the split name);
        class index `i` is the `i`-th class folder name in sorted order.

    Raises:
        FileNotFoundError: naming a missing `data_dir`, layout or split folder.
        ValueError: for a `data_dir` that is neither a folder nor an archive, a split without
            class folders, an empty class folder, or an image that does not decode or is not
            of `spec.image_shape`.
    """
    if not data_dir.exists():
        raise FileNotFoundError(f"data_dir {data_dir} does not exist.")
    data_dir = data_dir.resolve()
    if archive.is_archive(data_dir):
        cache_folder = cache_root / archive.archive_stem(data_dir)
        unpacked = archive.unpack_once(data_dir, cache_folder)
        root = _layout_root(unpacked, split)
        npz_path = unpacked.with_name(f"{unpacked.name}.{split}.npz")
        origin = f"image folder {root} (unpacked from {data_dir})"
    elif data_dir.is_dir():
        root = _layout_root(data_dir, split)
        path_hash = hashlib.sha256(str(root).encode()).hexdigest()[:16]
        npz_path = cache_root / f"{root.name}-{path_hash}" / f"{split}.npz"
        origin = f"image folder {root}"
    else:
        raise ValueError(f"data_dir {data_dir} is neither a folder nor a .tar.gz/.tgz/.tar archive.")
    class_names, image_files = _list_image_folder(root, split)
    files_fingerprint = cache.fingerprint(IMAGE_DECODER, class_names, image_files, root)
    cached = cache.read_cached_arrays(npz_path, files_fingerprint)
    if cached is None:
        images, labels, decoded_class_names = _decode_image_folder(root, split, image_files, spec.image_shape)
        if decoded_class_names != class_names:  # The listing above must agree with ImageFolder's.
            raise ValueError(f"{root}: ImageFolder found classes {decoded_class_names}, expected {class_names}.")
        cache.write_cached_arrays(npz_path, images, labels, files_fingerprint)
    else:
        images, labels = cached
    return Dataset(
        name=name,
        split=split,
        images=images,
        labels=labels,
        num_classes=len(class_names),
        source=f"{origin}, decoded arrays cached in {npz_path}",
        class_names=class_names,
    )
