"""One reader per analyzed run: the typed manifest and each stream read once, by schema name."""

import dataclasses
import functools
import warnings

import numpy as np

from keras_taylor import schema, schedules, storage
from keras_taylor.analysis.results import MissingStatisticsError, NonFiniteRoundsWarning
from keras_taylor.schema import Route, Scale


@dataclasses.dataclass(frozen=True)
class RoundLosses:
    """The per-round losses a run recorded, in round order.

    Attributes:
        steps: `[R]` the training step of each recorded round.
        losses: `[R]` ℓ^n(W^n), the loss incurred (NaN/inf where training diverged).
        finite: `[R]` whether the loss is finite (non-finite rounds are kept out of the statistics).
    """

    steps: np.ndarray
    losses: np.ndarray
    finite: np.ndarray

    @property
    def cumulative(self) -> np.ndarray:
        """`[R]` Σ_{n≤N} ℓ^n(W^n) for N = 1..R (NaN from the first non-finite round on)."""
        return np.cumsum(self.losses)

    @property
    def finite_cumulative(self) -> np.ndarray:
        """`[R]` Σ_{n≤N, ℓ^n finite} ℓ^n(W^n): the loss of the rounds the Taylor statistics hold."""
        return np.cumsum(np.where(self.finite, self.losses, 0.0))

    @property
    def finite_counts(self) -> np.ndarray:
        """`[R]` how many of the rounds 1..N had a finite loss."""
        return np.cumsum(self.finite)


class RunReader:
    """A TaylorRecorder run opened for analysis: its typed manifest, and its streams read through the schema.

    Streams that several parts of one computation need (the round losses, a layer's input
    table) are read once and kept.

    Args:
        run: A run directory (path), an opened `storage.Run`, or a `RunReader` (returned as is by `open_reader`).

    Raises:
        MissingStatisticsError: the run is not a TaylorRecorder run.
        schema.UnreadableFormatError: a format version this code cannot read.
    """

    def __init__(self, run):
        self.run = run if isinstance(run, storage.Run) else storage.load_run(run)
        try:
            self.manifest = schema.taylor_manifest(self.run.manifest, self.run.logdir)
        except schema.UnreadableFormatError:
            raise
        except ValueError as error:
            raise MissingStatisticsError(str(error)) from error

    @property
    def logdir(self):
        return self.run.logdir

    def has(self, stream: str) -> bool:
        return stream in self.run.streams

    def require(self, *streams: str) -> None:
        """MissingStatisticsError naming the first of `streams` the run lacks."""
        for name in streams:
            if not self.has(name):
                raise MissingStatisticsError(
                    f"{self.logdir} has no stream {name!r} although its manifest names the route.")

    # ------------------------------------------------------------- the manifest

    def layer(self, name: str) -> schema.LayerRecord:
        """The layer's record, or MissingStatisticsError saying which layers were recorded."""
        if name not in self.manifest.layers:
            raise MissingStatisticsError(
                f"{self.logdir} recorded no layer {name!r}; it recorded {sorted(self.manifest.layers)} "
                f"({self.manifest.describe_routes()})."
            )
        return self.manifest.layers[name]

    def route(self, layer: str | None, neuron: int | None) -> Route:
        """The route that holds the requested scale, or a MissingStatisticsError saying what was recorded."""
        if layer is None:
            if neuron is not None:
                raise ValueError("neuron= needs layer= too.")
            if self.manifest.network_route is not Route.GRAM:
                raise MissingStatisticsError(
                    f"{self.logdir} has no network-scale statistics ({self.manifest.network_reason or 'not recorded'}"
                    f"); it recorded {self.manifest.describe_routes()}."
                )
            return Route.GRAM
        record = self.layer(layer)
        scale = Scale.LAYER if neuron is None else Scale.NEURON
        route = record.route(scale)
        if route is Route.SKIPPED:
            reasons = "; ".join(record.reasons) or "not requested"
            raise MissingStatisticsError(
                f"{self.logdir} did not record the {scale} scale of layer {layer!r} ({reasons}); "
                f"it recorded {self.manifest.describe_routes()}."
            )
        if neuron is not None and neuron not in record.neurons:
            raise MissingStatisticsError(
                f"{self.logdir} recorded neurons {list(record.neurons)} of layer {layer!r}, not neuron {neuron}."
            )
        return route

    # -------------------------------------------------------------- the streams

    @functools.cached_property
    def round_losses(self) -> RoundLosses:
        if not self.has(schema.ROUNDS_STREAM):
            raise MissingStatisticsError(f"{self.logdir} has recorded no rounds yet.")
        rows = self.run.stream(schema.ROUNDS_STREAM).read()
        losses = RoundLosses(rows["step"].astype(np.int64), rows["loss"].astype(np.float64),
                             rows["finite"].astype(bool))
        if not losses.finite.all():
            bad = losses.steps[~losses.finite]
            warnings.warn(
                f"{self.logdir}: {len(bad)} of {len(losses.steps)} recorded rounds have a non-finite loss (training "
                f"steps {bad[:20].tolist()}{' ...' if len(bad) > 20 else ''}). Their Taylor data are left out: "
                "the regret is over the finite rounds (its cumulative loss sums only their losses).",
                NonFiniteRoundsWarning, stacklevel=3,
            )
        return losses

    def checkpoint_rounds(self) -> np.ndarray:
        """`[K]` the round counts N at which the run's running sums were written (its exact grid)."""
        for name in self.run.streams:
            if schema.gram_stream_key(name) is not None:
                return np.unique(self.run.stream(name).read("rounds").astype(np.int64))
        total = len(self.round_losses.steps)
        checkpoints = schedules.Schedule.from_config(self.manifest.raw["checkpoints"])
        return np.unique([index + 1 for index in range(total) if checkpoints(index)] + [total])

    def gram_rows(self, stream: str, grid: np.ndarray):
        """Yields (N, gram, linear, constant) of the checkpoints of `stream` at the rounds in `grid`."""
        self.require(stream)
        wanted = set(grid.tolist())
        sums = self.run.stream(stream)
        for index, counts in enumerate(sums.chunks(("rounds",))):
            rows = [row for row, count in enumerate(counts["rounds"]) if int(count) in wanted]
            if not rows:
                continue  # the Grams of checkpoints off the grid stay on disk
            chunk = sums.chunk(index)
            for row in rows:
                wanted.discard(int(chunk["rounds"][row]))
                yield int(chunk["rounds"][row]), chunk["gram"][row], chunk["linear"][row], chunk["constant"][row]

    def input_table(self, layer: str) -> np.ndarray:
        """`[D, P]` the distinct inputs x̃ of `layer` by id, at the run's dtype (rows never stored stay zero)."""
        return self._input_table(layer)[0]

    def check_input_ids(self, layer: str, input_ids: np.ndarray) -> None:
        """CorruptRunError unless the input table of `layer` holds every one of `input_ids`."""
        inputs, stored = self._input_table(layer)
        if not stored[np.clip(input_ids, 0, len(inputs))].all():
            raise storage.CorruptRunError(
                f"{self.logdir}: stream {schema.CHAIN_STREAM!r} names inputs that "
                f"{schema.inputs_stream(layer)!r} lacks.")

    @functools.cache  # pylint: disable=method-cache-max-size-none  (one reader per analysis)
    def _input_table(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        name = schema.inputs_stream(layer)
        self.require(name)
        table = self.run.stream(name).read()
        inputs = np.zeros((int(table["input_id"].max()) + 1, table["inputs"].shape[1]), table["inputs"].dtype)
        inputs[table["input_id"]] = table["inputs"]
        stored = np.zeros(len(inputs) + 1, bool)
        stored[table["input_id"]] = True
        return inputs, stored

    def round_positions(self, stream: str, steps: np.ndarray) -> np.ndarray:
        """`[n]` the round index (from 0) of each streamed row's step, checked to be a recorded round.

        Rows a killed run streamed after its last written round must be dropped by the caller first.
        """
        losses = self.round_losses
        position = np.searchsorted(losses.steps, steps)
        if np.any(position >= len(losses.steps)) or np.any(
                losses.steps[np.minimum(position, len(losses.steps) - 1)] != steps):
            raise storage.CorruptRunError(f"{self.logdir}: stream {stream!r} holds steps that no round recorded.")
        return position

    @property
    def last_step(self) -> int:
        """The step of the last written round (−1 if none): streamed rows after it are not part of the record."""
        steps = self.round_losses.steps
        return int(steps[-1]) if len(steps) else -1

    def stream(self, name: str) -> storage.Stream:
        self.require(name)
        return self.run.stream(name)


def open_reader(run) -> RunReader:
    """`run` as a `RunReader` (a path, a `storage.Run`, or a reader already)."""
    return run if isinstance(run, RunReader) else RunReader(run)
