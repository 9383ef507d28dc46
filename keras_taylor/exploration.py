"""Exploration metrics of activation configurations (paper, Sec. 3.3; NumPy only).

The activation configuration of round n is the `[D, M]` boolean matrix A^n whose
entry (d, m) says whether rectifier m is on at probe point d. A training run
gives N of them, `[N, D, M]`, recorded packed to bits along M by
`callbacks.ActivationRecorder`. The paper compares how far optimizers explore
this space with three measurements:

- the minimal Hamming distance from A^n to every earlier configuration A^k,
  k < n: how new each configuration is (`min_hamming`);
- for each probe point, how often its units switch between consecutive rounds
  (`switches`);
- for each unit m, the log-volume of the `[N, D]` matrix A[:, :, m] centered in
  time: the sum of the logs of its top k singular values (`log_volume`).

Everything works on the packed bits in chunks of probe points, so memory stays
bounded by the chunk, never by D·M·N: the paper's autoencoder (N=100 rounds,
D=60,000 points, M=180 units; 138 MB packed, 1.1 GB as booleans) is analysed in
seconds.
"""

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np

from keras_taylor import schema, storage

if not hasattr(np, "bitwise_count"):
    raise ImportError(
        f"keras_taylor.exploration needs NumPy >= 2.0 for np.bitwise_count (popcount). Found NumPy {np.__version__}."
    )

STREAM = schema.CONFIGURATIONS_STREAM
ACTIVATIONS_KIND = schema.ACTIVATIONS_KIND
DEFAULT_CHUNK_POINTS = 2048
# Eigenvalues of the exactly centered Gram below this multiple of N·eps·λ_max are
# rounding of the eigensolver (see `centered_singular_values`).
_ZERO_EIGENVALUE_FACTOR = 10.0
# What `centered_singular_values` holds at once, about: units are taken in blocks whose [units, N, N]
# co-activation counts, their centered copies and decompositions, and a chunk's unpacked bits fit.
_SINGULAR_VALUES_MEMORY = 512 * 2**20
# A run's "top" explorers: the paper compares Adam's top ~40 of the autoencoder's 180 hidden units
# with RMSProp's; per layer, the same share of the layer's units (`top_count`).
TOP_NEURONS = 40
TOP_SHARE = 40 / 180


@dataclasses.dataclass(frozen=True, eq=False)
class PackedConfigurations:
    """N activation configurations of D probe points × M units, packed to bits along M.

    Bits are `np.packbits(config, axis=-1)` with NumPy's default big bit order.
    The padding bits of the last byte (when M is not a multiple of 8) are ignored
    by every function of this module, whatever they hold.

    Attributes:
        packed: uint8 `[N, D, B]`, B = ceil(M / 8).
        num_units: M, the number of units.
        steps: int64 `[N]`, the training step of each configuration.
        epochs: int64 `[N]`, the epoch of each configuration.
        layer_slices: The units of each layer as a slice of the M axis, in model
            order, or None when it is not known.

    Raises:
        ValueError: if the arrays do not have these dtypes and shapes.
    """

    packed: np.ndarray
    num_units: int
    steps: np.ndarray
    epochs: np.ndarray
    layer_slices: Mapping[str, slice] | None = None

    def __post_init__(self):
        packed, steps, epochs = self.packed, self.steps, self.epochs
        if not isinstance(packed, np.ndarray) or packed.dtype != np.uint8 or packed.ndim != 3:
            raise ValueError(
                "packed must be a uint8 array [N, D, ceil(M/8)]. Received: "
                f"{type(packed).__name__} of dtype {getattr(packed, 'dtype', None)} "
                f"and shape {getattr(packed, 'shape', None)}"
            )
        if not isinstance(self.num_units, (int, np.integer)) or self.num_units < 1:
            raise ValueError(f"num_units must be a positive integer. Received: num_units={self.num_units!r}")
        rounds, points, num_bytes = packed.shape
        if rounds < 1 or points < 1:
            raise ValueError(f"packed needs at least one round and one probe point. Received: shape={packed.shape}")
        if num_bytes != _num_bytes(self.num_units):
            raise ValueError(
                f"packed has {num_bytes} bytes per point but num_units={self.num_units} needs "
                f"{_num_bytes(self.num_units)}."
            )
        for name, array in (("steps", steps), ("epochs", epochs)):
            if (not isinstance(array, np.ndarray) or array.shape != (rounds,)
                    or not np.issubdtype(array.dtype, np.integer)):
                raise ValueError(
                    f"{name} must be an integer array [N] with N={rounds}. Received: dtype "
                    f"{getattr(array, 'dtype', None)} and shape {getattr(array, 'shape', None)}"
                )
        if self.layer_slices is not None:
            for name, units in self.layer_slices.items():
                if not isinstance(units, slice) or units.step not in (None, 1) or not (
                        0 <= units.start < units.stop <= self.num_units):
                    raise ValueError(
                        f"layer_slices must map names to non-empty slices of range({self.num_units}). "
                        f"Received: {name!r}: {units!r}"
                    )

    @property
    def num_rounds(self) -> int:
        """N, the number of configurations."""
        return self.packed.shape[0]

    @property
    def num_points(self) -> int:
        """D, the number of probe points."""
        return self.packed.shape[1]

    def __len__(self) -> int:
        return self.num_rounds

    @classmethod
    def from_bool(cls, configs: np.ndarray, steps: np.ndarray | None = None, epochs: np.ndarray | None = None,
                  layer_slices: Mapping[str, slice] | None = None) -> "PackedConfigurations":
        """Packs boolean configurations.

        Args:
            configs: bool `[N, D, M]`.
            steps: int `[N]`; defaults to the round index 0..N-1.
            epochs: int `[N]`; defaults to the round index 0..N-1.
            layer_slices: The units of each layer as slices of the M axis, if known.

        Returns:
            The packed configurations.

        Raises:
            ValueError: if `configs` is not a boolean array `[N, D, M]` with N, D, M ≥ 1.
        """
        configs = _check_bool(configs)
        rounds = len(configs)
        return cls(
            packed=np.packbits(configs, axis=2),
            num_units=configs.shape[2],
            steps=np.arange(rounds) if steps is None else np.asarray(steps),
            epochs=np.arange(rounds) if epochs is None else np.asarray(epochs),
            layer_slices=layer_slices,
        )

    @classmethod
    def from_run(cls, run_or_logdir: "storage.Run | str | os.PathLike",
                 layer_order: Sequence[str] | None = None) -> "PackedConfigurations":
        """Reads the configurations an `ActivationRecorder` wrote, chunk by chunk.

        The layers' unit slices need their model order. The manifest's "layers"
        mapping cannot give it: the run storage writes JSON with sorted keys, so
        the names come back in alphabetical order, while the recorder
        concatenates units in model order. With one layer the order is trivial;
        with several, the manifest's "layer_order" (written by the recorder) or the
        `layer_order` argument gives it (else `layer_slices` is None and `layer()`
        says why).

        Args:
            run_or_logdir: A `storage.Run` or its directory.
            layer_order: The recorded layers' names in model order.

        Returns:
            The configurations in recording order, with their steps and epochs.

        Raises:
            storage.CorruptRunError: if the directory, manifest or a chunk cannot be read.
            ValueError: if the run is not an activations run, has no "configurations"
                stream or no rows, its rows disagree in shape or fields, or
                `layer_order` does not name the manifest's layers.
        """
        run = run_or_logdir if isinstance(run_or_logdir, storage.Run) else storage.load_run(run_or_logdir)
        manifest = run.manifest
        if manifest.get("kind") != ACTIVATIONS_KIND:
            raise ValueError(
                f"Run {run.logdir} is not an activations run: its manifest has kind={manifest.get('kind')!r}, "
                f"not {ACTIVATIONS_KIND!r} (written by callbacks.ActivationRecorder)."
            )
        num_units = manifest.get("num_units")
        if not isinstance(num_units, int) or num_units < 1:
            raise ValueError(
                f"Run {run.logdir}: manifest num_units must be a positive integer. Received: {num_units!r}")
        layer_slices = _layer_slices(run, num_units, layer_order)
        if STREAM not in run.streams:
            raise ValueError(f"Run {run.logdir} has no {STREAM!r} stream; it has {run.streams}.")
        packed_parts, step_parts, epoch_parts = [], [], []
        expected_shape = (None, _num_bytes(num_units))
        stream = run.stream(STREAM)
        for path, chunk in zip(stream.chunk_paths, stream.chunks()):
            missing = {"step", "epoch", "packed"} - set(chunk)
            if missing:
                raise ValueError(f"Chunk {path} lacks the fields {sorted(missing)}; it has {sorted(chunk)}.")
            packed = chunk["packed"]
            if packed.dtype != np.uint8 or packed.ndim != 3:
                raise ValueError(
                    f"Chunk {path}: packed must be uint8 [rows, D, B]. Received: dtype {packed.dtype}, "
                    f"shape {packed.shape}."
                )
            if expected_shape[0] is None:
                expected_shape = (packed.shape[1], expected_shape[1])
            if packed.shape[1:] != expected_shape:
                raise ValueError(
                    f"Chunk {path}: rows of shape [D, B]={list(packed.shape[1:])} disagree with "
                    f"[D, B]={list(expected_shape)} (D from the first chunk, B = ceil(num_units/8) "
                    f"with num_units={num_units})."
                )
            for field in ("step", "epoch"):
                if chunk[field].ndim != 1 or not np.issubdtype(chunk[field].dtype, np.integer):
                    raise ValueError(
                        f"Chunk {path}: {field} must be integers [rows]. Received: dtype {chunk[field].dtype}, "
                        f"shape {chunk[field].shape}."
                    )
            packed_parts.append(packed)
            step_parts.append(chunk["step"])
            epoch_parts.append(chunk["epoch"])
        if not packed_parts:
            raise ValueError(f"Run {run.logdir}: the {STREAM!r} stream holds no complete chunk.")
        return cls(
            packed=np.concatenate(packed_parts),
            num_units=num_units,
            steps=np.concatenate(step_parts).astype(np.int64),
            epochs=np.concatenate(epoch_parts).astype(np.int64),
            layer_slices=layer_slices,
        )

    def unpack(self, rounds: int | slice | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The boolean configurations of some rounds.

        Args:
            rounds: An index, slice or index array of rounds; None for all. Beware
                that all N rounds of a large run may not fit in memory as booleans.

        Returns:
            bool `[D, M]` for an integer index, else bool `[n, D, M]`.
        """
        selected = self.packed if rounds is None else self.packed[rounds]
        return np.unpackbits(selected, axis=-1, count=self.num_units).view(bool)

    def first_epochs(self, epochs: int) -> "PackedConfigurations":
        """The configurations recorded during the first `epochs` epochs of training (epoch index
        below `epochs`; a record before training has epoch −1), as a view of these.

        Raises:
            ValueError: if no configuration was recorded that early, or the epochs decrease somewhere.
        """
        if np.any(np.diff(self.epochs) < 0):
            raise ValueError(f"The configurations are not in epoch order: epochs={self.epochs.tolist()}")
        count = int(np.searchsorted(self.epochs, epochs))
        if count == 0:
            raise ValueError(f"No configuration was recorded before epoch {epochs}: epochs={self.epochs.tolist()}")
        return dataclasses.replace(self, packed=self.packed[:count], steps=self.steps[:count],
                                   epochs=self.epochs[:count])

    def layer(self, name: str, chunk_size: int = DEFAULT_CHUNK_POINTS) -> "PackedConfigurations":
        """The configurations of one layer's units only, repacked.

        Args:
            name: The layer's name.
            chunk_size: Probe points unpacked at a time.

        Returns:
            The same rounds with M = that layer's number of units.

        Raises:
            ValueError: if the layers' unit slices are unknown or `name` is not one of them.
        """
        if self.layer_slices is None:
            raise ValueError(
                "The layers' unit slices are unknown: build with layer_slices=, or, for a run with several "
                "layers, pass layer_order=[names in model order] to from_run (the manifest stores its layers "
                "with alphabetically sorted keys, which loses the model order)."
            )
        if name not in self.layer_slices:
            raise ValueError(f"No layer {name!r}; the layers are {list(self.layer_slices)}.")
        selected = np.zeros(self.num_units, bool)
        selected[self.layer_slices[name]] = True
        return self.units(selected, chunk_size)

    def units(self, selected: np.ndarray, chunk_size: int = DEFAULT_CHUNK_POINTS) -> "PackedConfigurations":
        """The configurations of the selected units only, repacked (e.g. the units alive at the end).

        Args:
            selected: bool `[M]`, the units to keep (in their order).
            chunk_size: Probe points unpacked at a time.

        Returns:
            The same rounds with M = the selected count; each layer keeps its selected units
            (a layer with none is dropped from `layer_slices`).

        Raises:
            ValueError: if `selected` is not a bool `[M]` selecting at least one unit.
        """
        selected = np.asarray(selected)
        if selected.dtype != bool or selected.shape != (self.num_units,) or not selected.any():
            raise ValueError(f"selected must be a bool [M={self.num_units}] array selecting at least one unit. "
                             f"Received: dtype {selected.dtype}, shape {selected.shape}, {int(selected.sum())} selected")
        _check_chunk_size(chunk_size)
        width = int(selected.sum())
        packed = np.empty((self.num_rounds, self.num_points, _num_bytes(width)), np.uint8)
        for start in range(0, self.num_points, chunk_size):
            bits = np.unpackbits(self.packed[:, start:start + chunk_size], axis=2, count=self.num_units)
            packed[:, start:start + chunk_size] = np.packbits(bits[:, :, selected], axis=2)
        layer_slices = None
        if self.layer_slices is not None:
            kept_before = np.concatenate([[0], np.cumsum(selected)])  # selected units before each position
            layer_slices = {name: slice(int(kept_before[units.start]), int(kept_before[units.stop]))
                            for name, units in self.layer_slices.items()
                            if kept_before[units.stop] > kept_before[units.start]}
        return PackedConfigurations(packed, width, self.steps, self.epochs, layer_slices)


Configurations = PackedConfigurations | np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class MinHamming:
    """Distance from each configuration to the nearest earlier one.

    Attributes:
        distance: float64 `[N]`, min over k < n of the Hamming distance between
            configurations n and k (number of (point, unit) entries that differ);
            NaN for n = 0, which has no earlier configuration.
        normalized: float64 `[N]`, distance / (D·M), in [0, 1].
        nearest: int64 `[N]`, the earliest k attaining the minimum; -1 for n = 0.
    """

    distance: np.ndarray
    normalized: np.ndarray
    nearest: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class FiniteFloor:
    """Log-volumes made drawable: −inf replaced by a floor below every finite value.

    Attributes:
        num_infinite: How many values were −inf.
        floor: The value that stands for −inf, one tenth of the finite range (at
            least 1) below the smallest finite value; 0.0 if no value is finite.
        values: The values with −inf replaced by `floor` (for plots only: the
            floor is not a log-volume).
    """

    num_infinite: int
    floor: float
    values: np.ndarray


def hamming_distances(configs: Configurations, chunk_size: int = DEFAULT_CHUNK_POINTS) -> np.ndarray:
    """Hamming distances between every pair of configurations.

    Args:
        configs: bool `[N, D, M]` or `PackedConfigurations`.
        chunk_size: Probe points processed at a time (memory ≈ 4·N·chunk_size·ceil(M/8) bytes).

    Returns:
        int64 `[N, N]`, symmetric with a zero diagonal: entry (n, k) counts the
        (point, unit) entries where configurations n and k differ.

    Raises:
        ValueError: for configurations that are neither booleans `[N, D, M]` nor packed,
            or a chunk size below 1.
    """
    configs = _as_packed(configs)
    _check_chunk_size(chunk_size)
    rounds = configs.num_rounds
    distances = np.zeros((rounds, rounds), np.int64)
    for chunk in _masked_chunks(configs, chunk_size):
        # Each round's chunk as one bit string: only the sum over points is needed.
        words = _as_words(chunk.reshape(rounds, -1))
        differences = np.empty_like(words)
        for later in range(1, rounds):
            np.bitwise_xor(words[:later], words[later], out=differences[:later])
            distances[later, :later] += np.bitwise_count(differences[:later]).sum(axis=1, dtype=np.int64)
    return distances + distances.T


def min_hamming(configs: Configurations, chunk_size: int = DEFAULT_CHUNK_POINTS) -> MinHamming:
    """Minimal Hamming distance of each configuration to all earlier ones (paper, Sec. 3.3).

    Args:
        configs: bool `[N, D, M]` or `PackedConfigurations`.
        chunk_size: Probe points processed at a time.

    Returns:
        The distances, normalized by D·M, and the nearest earlier round.

    Raises:
        ValueError: as `hamming_distances`.
    """
    configs = _as_packed(configs)
    distances = hamming_distances(configs, chunk_size)
    rounds = configs.num_rounds
    distance = np.full(rounds, np.nan)
    nearest = np.full(rounds, -1, np.int64)
    for later in range(1, rounds):
        nearest[later] = np.argmin(distances[later, :later])
        distance[later] = distances[later, nearest[later]]
    return MinHamming(distance, distance / (configs.num_points * configs.num_units), nearest)


def switches(configs: Configurations, sort: bool = True, chunk_size: int = DEFAULT_CHUNK_POINTS) -> np.ndarray:
    """Per probe point, the proportion of unit switches between consecutive rounds (paper, Sec. 3.3).

    For point d: Σ_{n=1}^{N-1} Σ_m [A^n_{dm} ≠ A^{n-1}_{dm}] / (M·(N−1)), the
    fraction of the M·(N−1) possible on/off changes that happened.

    Args:
        configs: bool `[N, D, M]` or `PackedConfigurations`, N ≥ 2.
        sort: Sort ascending (the paper's curves); False keeps probe-point order.
        chunk_size: Probe points processed at a time.

    Returns:
        float64 `[D]` in [0, 1], ascending if `sort`, else indexed by probe point.

    Raises:
        ValueError: for fewer than 2 rounds, or as `hamming_distances`.
    """
    configs = _as_packed(configs)
    _check_chunk_size(chunk_size)
    rounds = configs.num_rounds
    if rounds < 2:
        raise ValueError(f"Switches need at least 2 rounds (consecutive pairs). Received: N={rounds}")
    counts = np.concatenate([
        np.bitwise_count(np.bitwise_xor(chunk[1:], chunk[:-1])).sum(axis=(0, 2), dtype=np.int64)
        for chunk in _masked_chunks(configs, chunk_size)
    ])
    proportions = counts / (configs.num_units * (rounds - 1))
    return np.sort(proportions) if sort else proportions


def dead_units(configs: Configurations, chunk_size: int = DEFAULT_CHUNK_POINTS) -> np.ndarray:
    """Which units are off on every probe point, at each round: dead on the probe set, exploring nothing.

    The paper's metrics count a dead unit as not exploring (its column is constant); this says
    which units those are, and when each died.

    Args:
        configs: bool `[N, D, M]` or `PackedConfigurations`.
        chunk_size: Probe points processed at a time.

    Returns:
        bool `[N, M]`: True where unit m is off for all D points at round n.
    """
    configs = _as_packed(configs)
    _check_chunk_size(chunk_size)
    anywhere = np.zeros(configs.packed.shape[::2], np.uint8)  # [N, B]: OR over the points
    for chunk in _masked_chunks(configs, chunk_size):
        anywhere |= np.bitwise_or.reduce(chunk, axis=1)
    return ~np.unpackbits(anywhere, axis=1, count=configs.num_units).view(bool)


def centered_singular_values(configs: Configurations, chunk_size: int = DEFAULT_CHUNK_POINTS) -> np.ndarray:
    """Singular values of each unit's time-centered `[N, D]` activation matrix.

    For unit m, with A_m = A[:, :, m] as 0/1 numbers and C = I − 11ᵀ/N centering
    each column (probe point) over time, the singular values of C·A_m are the
    square roots of the eigenvalues of the N×N Gram C·A_m·A_mᵀ·C. The Gram
    A_m·A_mᵀ counts co-activations and is computed exactly (popcounts of bits
    packed along D), and N²·C·A_m·A_mᵀ·C is centered exactly in integers. The
    only rounding left is the symmetric eigensolver's, at most a modest multiple
    of N·eps·λ_max (measured: ~0.04·N·eps·λ_max on the exact null direction 1);
    so eigenvalues ≤ 10·N·eps·λ_max (λ_max the unit's largest) are set to exactly
    0, and the corresponding singular values are exactly 0. Real eigenvalues sit
    far above: one probe point moving against D − 1 others that move together
    gives one ~λ_max/D. Centering removes the direction 1, so at most
    min(N − 1, D) singular values are nonzero.

    Args:
        configs: bool `[N, D, M]` or `PackedConfigurations`.
        chunk_size: Probe points processed at a time. Units are taken in blocks sized so that
            about 40·N² bytes per unit (counts, their centered copy, the decomposition) and
            13·N·chunk_size bytes per 8 units (a chunk's bits) stay near 512 MB whatever M:
            one block for the autoencoder's 180 units, 31 for 24,288 convnet units at N = 121.

    Returns:
        float64 `[M, min(N, D)]`, each row descending, zeros exact; a row's count of
        nonzeros is the unit's rank.

    Raises:
        ValueError: as `hamming_distances`.
    """
    configs = _as_packed(configs)
    _check_chunk_size(chunk_size)
    rounds, num_bytes = configs.num_rounds, configs.packed.shape[2]
    # Per byte of packed units (8 units): ~5 [N, N] arrays of 8-byte numbers per unit, and a chunk's
    # bits unpacked and repacked (~13·N·chunk bytes; see `_coactivations`).
    per_byte = 8 * 5 * 8 * rounds * rounds + 13 * rounds * min(chunk_size, configs.num_points)
    block = max(1, _SINGULAR_VALUES_MEMORY // per_byte)
    width = min(rounds, configs.num_points)
    singular_values = np.empty((configs.num_units, width))
    for first in range(0, num_bytes, block):
        coactivations = _coactivations(configs, chunk_size, slice(first, min(first + block, num_bytes)))
        singular_values[8 * first:8 * first + len(coactivations)] = _centered_singular_values(
            coactivations, rounds)[:, :width]
    return singular_values


def _centered_singular_values(coactivations: np.ndarray, rounds: int) -> np.ndarray:
    """`[m, N]` descending: the centered singular values of units with co-activations `[m, N, N]`."""
    row_sums = coactivations.sum(axis=2)
    total = row_sums.sum(axis=1)
    scaled_centered = (rounds * rounds * coactivations
                       - rounds * (row_sums[:, :, None] + row_sums[:, None, :])
                       + total[:, None, None])
    eigenvalues = np.linalg.eigvalsh(scaled_centered.astype(np.float64))[:, ::-1]
    threshold = _ZERO_EIGENVALUE_FACTOR * rounds * np.finfo(np.float64).eps * eigenvalues[:, :1]
    eigenvalues = np.where(eigenvalues > threshold, eigenvalues, 0.0)
    return np.sqrt(eigenvalues) / rounds


def log_volume_from_singular_values(singular_values: np.ndarray, k: int = 50, sort: bool = True) -> np.ndarray:
    """Σ of the logs of each row's top k singular values.

    Args:
        singular_values: `[M, R]`, each row descending and nonnegative (as
            `centered_singular_values` returns), so that several k reuse one
            decomposition.
        k: How many singular values, 1 ≤ k ≤ R.
        sort: Sort ascending (−inf first); False keeps unit order.

    Returns:
        float64 `[M]`; −inf for a unit with fewer than k nonzero singular values
        (not clipped: see `finite_floor` for plotting).

    Raises:
        ValueError: if k is outside [1, R] or the array is not `[M, R]`.
    """
    singular_values = np.asarray(singular_values, dtype=np.float64)
    if singular_values.ndim != 2:
        raise ValueError(f"singular_values must be [M, R]. Received: shape={singular_values.shape}")
    available = singular_values.shape[1]
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= available:
        raise ValueError(
            f"k must be an integer in [1, {available}]: a [N, D] matrix has min(N, D) = {available} singular "
            f"values, and centering in time leaves at most N − 1 nonzero. Received: k={k!r}"
        )
    with np.errstate(divide="ignore"):
        volumes = np.log(singular_values[:, :k]).sum(axis=1)
    return np.sort(volumes) if sort else volumes


def log_volume(configs: Configurations, k: int = 50, sort: bool = True,
               chunk_size: int = DEFAULT_CHUNK_POINTS) -> np.ndarray:
    """Per unit, the log-volume explored: Σ_{i<k} log σ_i of its time-centered `[N, D]` matrix (paper, Sec. 3.3).

    A unit whose centered matrix has fewer than k nonzero singular values (it
    never changes: rank 0; or it moves in fewer than k directions; always when
    k ≥ N, as centering leaves rank ≤ N − 1) has volume 0 in k dimensions, and
    its value is −inf. That is returned as is, never clipped; `finite_floor`
    counts them and gives a floor for plots. Singular values below rounding are
    exactly 0; see `centered_singular_values` for the threshold.

    Args:
        configs: bool `[N, D, M]` or `PackedConfigurations`.
        k: How many singular values, 1 ≤ k ≤ min(N, D) (the paper uses 50). To
            compare several k, call `centered_singular_values` once and
            `log_volume_from_singular_values` per k.
        sort: Sort ascending (−inf first); False keeps unit order.
        chunk_size: Probe points processed at a time.

    Returns:
        float64 `[M]`, possibly −inf.

    Raises:
        ValueError: if k is outside [1, min(N, D)], or as `centered_singular_values`.
    """
    configs = _as_packed(configs)
    available = min(configs.num_rounds, configs.num_points)
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= available:
        raise ValueError(
            f"k must be an integer in [1, min(N, D)] = [1, {available}] (and ≤ min(N − 1, D) = "
            f"{min(configs.num_rounds - 1, configs.num_points)} for a finite value). Received: k={k!r}"
        )
    return log_volume_from_singular_values(centered_singular_values(configs, chunk_size), k, sort)


def top_count(units: int) -> int:
    """How many of a layer's units make its "top" (`TOP_SHARE` of them, at least one)."""
    return max(1, round(TOP_SHARE * units))


def finite_floor(values: np.ndarray) -> FiniteFloor:
    """Counts the −inf log-volumes and finds a floor to draw them at.

    Args:
        values: float `[M]` log-volumes, finite or −inf.

    Returns:
        The count of −inf, the floor, and the values with −inf replaced by it.

    Raises:
        ValueError: if a value is NaN or +inf (not a log-volume).
    """
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any() or np.isposinf(values).any():
        raise ValueError("Log-volumes are finite or −inf; these values hold NaN or +inf.")
    infinite = np.isneginf(values)
    finite = values[~infinite]
    if finite.size:
        floor = float(finite.min() - max(1.0, 0.1 * (finite.max() - finite.min())))
    else:
        floor = 0.0
    return FiniteFloor(int(infinite.sum()), floor, np.where(infinite, floor, values))


def _num_bytes(num_units: int) -> int:
    return -(-int(num_units) // 8)


def _padding_mask(num_units: int) -> np.ndarray:
    """uint8 `[B]`: all ones except the unused low bits of the last byte (big bit order)."""
    mask = np.full(_num_bytes(num_units), 0xFF, np.uint8)
    mask[-1] = (0xFF << (8 * len(mask) - num_units)) & 0xFF
    return mask


def _as_words(bits: np.ndarray) -> np.ndarray:
    """uint64 `[..., ceil(L/8)]`: uint8 `[..., L]` zero-padded to whole 64-bit words.

    The zero padding is the same in every row, so it never counts in a XOR or an AND.
    """
    words = np.zeros((*bits.shape[:-1], -(-bits.shape[-1] // 8) * 8), np.uint8)
    words[..., :bits.shape[-1]] = bits
    return words.view(np.uint64)


def _coactivations(configs: PackedConfigurations, chunk_size: int, packed_bytes: slice = slice(None)) -> np.ndarray:
    """int64 `[m, N, N]`: entry (m, n, k) counts the points where unit m is on in rounds n and k, for
    the units packed in `packed_bytes` (a step-1 slice of the bytes; default all M units)."""
    rounds = configs.num_rounds
    first, stop, _ = packed_bytes.indices(configs.packed.shape[2])
    num_bytes = stop - first
    units = np.arange(min(8 * stop, configs.num_units) - 8 * first)  # the block's units, from unit 8·first
    # Unpacking along a new leading axis puts bit j of byte b, unit 8b + j, in row
    # j·B + b of a unit-major array, without transposing the 8× larger unpacked bits.
    # Padding units (zeroed bits) are counted and dropped.
    unit_rows = (units % 8) * num_bytes + units // 8
    counts = np.zeros((8 * num_bytes, rounds, rounds), np.int64)
    for chunk in _masked_chunks(configs, chunk_size, packed_bytes):
        byte_major = np.ascontiguousarray(chunk.transpose(2, 0, 1))[None]
        unit_bits = np.unpackbits(byte_major, axis=0).reshape(8 * num_bytes, rounds, -1)
        # Repacked along the points, one AND and popcount compares 64 points at once
        # (measured 6× faster than float32 matmuls of the 0/1 matrices on this machine).
        words = _as_words(np.packbits(unit_bits, axis=2))
        both_on = np.empty_like(words)
        for later in range(rounds):
            np.bitwise_and(words[:, :later + 1], words[:, later:later + 1], out=both_on[:, :later + 1])
            counts[:, later, :later + 1] += np.bitwise_count(both_on[:, :later + 1]).sum(axis=2, dtype=np.int64)
    lower = np.tril_indices(rounds, -1)
    counts[:, lower[1], lower[0]] = counts[:, lower[0], lower[1]]
    return counts[unit_rows]


def _masked_chunks(configs: PackedConfigurations, chunk_size: int, packed_bytes: slice = slice(None)):
    """Yields uint8 `[N, d, b]` copies of consecutive probe-point chunks of the bytes `packed_bytes`
    (default all), padding bits zeroed."""
    mask = _padding_mask(configs.num_units)[packed_bytes]
    for start in range(0, configs.num_points, chunk_size):
        yield configs.packed[:, start:start + chunk_size, packed_bytes] & mask


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer. Received: chunk_size={chunk_size!r}")


def _check_bool(configs) -> np.ndarray:
    configs = np.asarray(configs)
    if configs.dtype != bool or configs.ndim != 3 or 0 in configs.shape:
        raise ValueError(
            "Configurations must be a boolean array [N, D, M] with N, D, M ≥ 1 (threshold activations "
            f"yourself, e.g. activations > 0). Received: dtype {configs.dtype}, shape {configs.shape}"
        )
    return configs


def _as_packed(configs: Configurations) -> PackedConfigurations:
    if isinstance(configs, PackedConfigurations):
        return configs
    return PackedConfigurations.from_bool(configs)


def _layer_slices(run: storage.Run, num_units: int, layer_order: Sequence[str] | None) -> dict | None:
    layers = run.manifest.get("layers")
    if not isinstance(layers, dict) or not layers:
        if layer_order is not None:
            raise ValueError(f"Run {run.logdir}: layer_order given but the manifest lists no layers.")
        return None
    if layer_order is None:
        layer_order = run.manifest.get("layer_order")  # the recorder writes the model order
    if layer_order is None:
        if len(layers) > 1:
            return None
        layer_order = list(layers)
    if sorted(layer_order) != sorted(layers):
        raise ValueError(
            f"Run {run.logdir}: layer_order must name each recorded layer once. Received: {list(layer_order)}; "
            f"the manifest has {sorted(layers)}."
        )
    slices, start = {}, 0
    for name in layer_order:
        width = len(layers[name].get("units", []))
        slices[name] = slice(start, start + width)
        start += width
    if start != num_units:
        raise ValueError(f"Run {run.logdir}: the layers' units add up to {start}, not num_units={num_units}.")
    return slices
