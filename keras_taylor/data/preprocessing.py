"""The float32 arrays that the paper's autoencoder and convnet train on, made from a `Dataset`."""

import dataclasses

import numpy as np

from keras_taylor.data.dataset import Dataset

TASKS = ("autoencoder", "classifier")


@dataclasses.dataclass(frozen=True, eq=False)
class ChannelStats:
    """Per-channel mean and standard deviation of pixels scaled to [0, 1].

    Attributes:
        mean: float32 `[C]`.
        std: float32 `[C]`.
    """

    mean: np.ndarray
    std: np.ndarray


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
