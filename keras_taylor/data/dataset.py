"""The datasets the paper uses, by name, and `Dataset`, one split of one held in memory.

Every loading route (`keras_taylor.data.load`) returns a `Dataset` and reads what a named set
looks like from `DATASET_SPECS`.
"""

import dataclasses
import enum

import numpy as np

SPLITS = ("train", "test")


class LocalLayout(enum.Enum):
    """How a dataset's local copies are stored, which selects `load_dataset`'s route."""

    IDX = "idx"  # A directory of IDX files (keras_taylor.data.idx).
    IMAGE_FOLDER = "image_folder"  # DIR/<split>/<class>/*.jpg|png, or an archive of it.
    EMBEDDED = "embedded"  # Shipped inside the package (keras_taylor.data.embedded).


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a named dataset looks like and where its local copies come from.

    Attributes:
        image_shape: one image's shape, `(H, W)` for single-channel sets or `(H, W, C)`.
        class_names: the name of each class index.
        local_layout: how its local copies are stored.
    """

    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    local_layout: LocalLayout

    def dataset(self, name: str, split: str, images: np.ndarray, labels: np.ndarray, source: str) -> "Dataset":
        """One split of this dataset, with its classes."""
        return Dataset(name=name, split=split, images=images, labels=labels, num_classes=len(self.class_names),
                       source=source, class_names=self.class_names)


_DIGITS = tuple(str(digit) for digit in range(10))

DATASET_SPECS = {
    "mnist": DatasetSpec((28, 28), _DIGITS, LocalLayout.IDX),
    "fashion_mnist": DatasetSpec(
        (28, 28),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        LocalLayout.IDX,
    ),
    "cifar10": DatasetSpec(
        (32, 32, 3),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        LocalLayout.IMAGE_FOLDER,
    ),
    "embedded_mnist": DatasetSpec((28, 28), _DIGITS, LocalLayout.EMBEDDED),
}
DATASET_NAMES = tuple(DATASET_SPECS)


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
