"""The streamed factors of a dense chain's hidden layer, laid out per round (route CHAIN)."""

import dataclasses

import numpy as np

from keras_taylor import chain_rule, schema, storage
from keras_taylor.analysis.results import MissingStatisticsError

# Float64 elements of the largest temporary of one block of rounds (16 MiB).
BLOCK_ELEMENTS = 1 << 21


@dataclasses.dataclass(frozen=True)
class ChainFactors:
    """The streamed factors of one hidden layer l = c_j of a dense chain c_0, ..., c_m.

    Rows are laid out per round, `[R, B, ·]`: the R rounds that streamed rows, in order,
    each padded to the largest batch B with κ = 0. Factors stay at the run's dtype; each
    product is formed in float64 for a block of rounds at a time (a `slice` of R). Rows of
    one round share W^n and K^n, so the chain runs as batched matmuls per round.

    Attributes:
        round_counts: `[R]` the round count N (from 1) of each row block.
        valid: `[R, B]` which rows hold an example.
        weight: `[R, B]` κ (0 on padding).
        residual_sq: `[R, B]` ‖r‖².
        z: `[R, B, u]` the layer's pre-activation.
        multipliers: s_k `[R, B, u_k]` for k = j, ..., m − 1.
        kernels: W_k `[R, u_{k−1}, u_k]` for k = j + 1, ..., m − 1.
        output_gram: K = W_m W_mᵀ `[R, u_{m−1}, u_{m−1}]`.
        q_top: q of c_{m−1} `[R, B, u_{m−1}]`.
        input_table: `[D, P]` the distinct x̃ of c_0 (with its 1) when j = 0, else None.
        input_id: `[R, B]` each example's row of `input_table` when j = 0, else None.
        below: (z, s) of c_{j−1} `[R, B, u_{j−1}]` when j > 0 (x̃ = s ⊙ z), else None.
        use_bias: Whether x̃ ends in a 1 that `below` lacks.
        upper_z: z of c_{j+1}, ..., c_{m−1} `[R, B, u_k]` when loaded for `above`, else ().
        upper_use_bias: Whether each of c_{j+1}, ..., c_{m−1} has a bias.
    """

    round_counts: np.ndarray
    valid: np.ndarray
    weight: np.ndarray
    residual_sq: np.ndarray
    z: np.ndarray
    multipliers: tuple
    kernels: tuple
    output_gram: np.ndarray
    q_top: np.ndarray
    input_table: np.ndarray | None
    input_id: np.ndarray | None
    below: tuple | None
    use_bias: bool
    upper_z: tuple = ()
    upper_use_bias: tuple = ()

    @property
    def batch(self) -> int:
        return self.valid.shape[1]

    @property
    def units(self) -> int:
        return self.z.shape[2]

    @property
    def size(self) -> int:
        """P, the length of x̃."""
        if self.input_table is not None:
            return self.input_table.shape[1]
        return self.below[0].shape[2] + int(self.use_bias)

    def above(self, offset: int) -> "ChainFactors":
        """The factors of the layer c_{j+offset} (offset 0: these), sharing these arrays.

        Raises:
            ValueError: the z of the layers above were not loaded (`load_chain_factors(..., upper=True)`).
        """
        if offset == 0:
            return self
        if not 0 < offset <= len(self.upper_z):
            raise ValueError(f"These chain factors hold {len(self.upper_z)} layers above their own. Received: offset={offset}")
        below_z = self.z if offset == 1 else self.upper_z[offset - 2]
        return dataclasses.replace(
            self, z=self.upper_z[offset - 1], multipliers=self.multipliers[offset:], kernels=self.kernels[offset:],
            input_table=None, input_id=None, below=(below_z, self.multipliers[offset - 1]),
            use_bias=self.upper_use_bias[offset - 1], upper_z=self.upper_z[offset:],
            upper_use_bias=self.upper_use_bias[offset:])

    def features(self, part: slice) -> np.ndarray:
        """`[r, B, P]` x̃ of the rows of the rounds `part`."""
        if self.input_table is not None:
            return self.input_table[self.input_id[part]].astype(np.float64)
        z, multiplier = self.below
        features = multiplier[part].astype(np.float64) * z[part]
        if self.use_bias:
            features = np.concatenate([features, np.ones(features.shape[:2] + (1,))], axis=2)
        return features

    def chain(self, part: slice) -> tuple[list, list]:
        """The multipliers (at the run's dtype) and float64 kernels of the rounds `part`."""
        # The multipliers stay at the run's dtype: each product with a float64 array is float64,
        # and an explicit cast would copy every example's multipliers on every matvec.
        multipliers = [multiplier[part] for multiplier in self.multipliers]
        kernels = [kernel[part].astype(np.float64) for kernel in self.kernels]
        return multipliers, kernels

    def apply_jtj(self, part: slice, vectors: np.ndarray) -> np.ndarray:
        """`[r, B, u]` M_e y_e = J_eᵀJ_e y_e of `vectors` y `[r, B, u]`, without forming M_e."""
        multipliers, kernels = self.chain(part)
        return chain_rule.apply_chain_jtj(multipliers, kernels, self.output_gram[part].astype(np.float64), vectors)

    def products(self, part: slice, offsets=(0,)) -> tuple[dict, list]:
        """M_k `{offset: [r, B, u_k, u_k]}` of the layers c_{j+offset} and q_k `[r, B, u_k]` of every layer
        from c_j up (bottom first), for the rounds `part`, from one pass down the chain."""
        multipliers, kernels = self.chain(part)
        jtj = chain_rule.chain_jtj_all(multipliers, kernels, self.output_gram[part].astype(np.float64), keep=offsets)
        return jtj, chain_rule.chain_q_all(self.q_top[part].astype(np.float64), multipliers, kernels)

    def jtj(self, part: slice) -> np.ndarray:
        """`[r, B, u, u]` M_e of the rows of the rounds `part`."""
        multipliers, kernels = self.chain(part)
        return chain_rule.chain_jtj(multipliers, kernels, self.output_gram[part].astype(np.float64))


def round_blocks(start: int, stop: int, rounds_per_block: int):
    """Slices of at most `rounds_per_block` rounds covering [start, stop)."""
    for begin in range(start, stop, rounds_per_block):
        yield slice(begin, min(begin + rounds_per_block, stop))


def chain_rows(reader, fields: list, last_round: int):
    """The rows of the chain stream of the rounds 1..`last_round`, laid out `[R, B, ·]` per round.

    Returns:
        `(round_counts [R], valid [R, B], rows)`, rows a dict of the `fields` (zero padded), or
        None if none of those rounds streamed a row.
    """
    stream = reader.stream(schema.CHAIN_STREAM)
    row_steps = [chunk["step"] for chunk in stream.chunks(("step",))]
    row_steps = np.concatenate(row_steps).astype(np.int64) if row_steps else np.zeros(0, np.int64)
    # A killed run can leave streamed rows ahead of its last written round: not part of the record yet.
    row_steps = row_steps[:np.searchsorted(row_steps, reader.last_step, side="right")]
    counts = reader.round_positions(schema.CHAIN_STREAM, row_steps) + 1
    if np.any(np.diff(counts) < 0):
        raise storage.CorruptRunError(
            f"{reader.logdir}: the rows of stream {schema.CHAIN_STREAM!r} are not in step order.")
    used = int(np.searchsorted(counts, last_round, side="right"))
    if used == 0:
        return None
    round_counts, first_row, rows_per_round = np.unique(counts[:used], return_index=True, return_counts=True)
    slot = np.repeat(np.arange(len(round_counts)), rows_per_round)
    offset = np.arange(used) - first_row[slot]
    shape = (len(round_counts), int(rows_per_round.max()))
    rows, start = {}, 0
    for chunk in stream.chunks(fields):
        missing = [field for field in fields if field not in chunk]
        if missing:
            raise MissingStatisticsError(f"{reader.logdir}: stream {schema.CHAIN_STREAM!r} lacks the fields {missing}.")
        stop = min(start + len(chunk[fields[0]]), used)
        for field in fields:
            if field not in rows:
                rows[field] = np.zeros(shape + chunk[field].shape[1:], chunk[field].dtype)
            rows[field][slot[start:stop], offset[start:stop]] = chunk[field][: stop - start]
        start = stop
        if start == used:
            break
    valid = np.zeros(shape, bool)
    valid[slot, offset] = True
    return round_counts, valid, rows


def chain_weights(reader, round_steps: np.ndarray, fields: list) -> dict:
    """The `fields` of the chain weights stream at each of `round_steps` (sorted), `[R, ·]` each."""
    weights, found = {}, np.zeros(len(round_steps), bool)
    for chunk in reader.stream(schema.CHAIN_WEIGHTS_STREAM).chunks(["step"] + fields):
        missing = [field for field in fields if field not in chunk]
        if missing:
            raise MissingStatisticsError(f"{reader.logdir}: stream {schema.CHAIN_WEIGHTS_STREAM!r} lacks the fields {missing}.")
        where = np.minimum(np.searchsorted(round_steps, chunk["step"]), len(round_steps) - 1)
        match = round_steps[where] == chunk["step"]
        for field in fields:
            if field not in weights:
                weights[field] = np.zeros((len(round_steps),) + chunk[field].shape[1:], chunk[field].dtype)
            weights[field][where[match]] = chunk[field][match]
        found[where[match]] = True
    if not found.all():
        raise storage.CorruptRunError(
            f"{reader.logdir}: stream {schema.CHAIN_WEIGHTS_STREAM!r} has no weights for the steps "
            f"{round_steps[~found].tolist()}."
        )
    return weights


def chain_position(reader, layer: str) -> int:
    """The position of `layer` among the hidden layers of the run's dense chain.

    Raises:
        MissingStatisticsError: the manifest names no dense chain holding `layer`.
    """
    names = reader.manifest.chain_layers
    if not names or layer not in names[:-1]:
        raise MissingStatisticsError(
            f"{reader.logdir} streams the chain factors of {layer!r} but its manifest names no dense chain "
            f"holding it (chain: {reader.manifest.raw.get('chain')})."
        )
    return names.index(layer)


def load_chain_factors(reader, layer: str, last_round: int, upper: bool = False) -> ChainFactors | None:
    """The factors of `layer` for the rounds 1..`last_round` (None if none of them streamed rows).

    With `upper`, also the z of every chain layer above it (`ChainFactors.above`), so that one
    pass down the chain serves all of them.
    """
    names = reader.manifest.chain_layers
    position = chain_position(reader, layer)
    hidden = names[:-1]
    reader.require(schema.CHAIN_STREAM, schema.CHAIN_WEIGHTS_STREAM,
                   *([schema.inputs_stream(names[0])] if position == 0 else []))
    below = [] if position == 0 else [schema.preactivation_field(names[position - 1]),
                                      schema.multiplier_field(names[position - 1])]
    fields = (["weight", "residual_sq", "q", schema.preactivation_field(layer)]
              + [schema.multiplier_field(name) for name in hidden[position:]]
              + (["input_id"] if position == 0 else below)
              + ([schema.preactivation_field(name) for name in hidden[position + 1:]] if upper else []))
    layout = chain_rows(reader, fields, last_round)
    if layout is None:
        return None
    round_counts, valid, rows = layout
    kernels = [schema.kernel_field(name) for name in hidden[position + 1:]]
    weights = chain_weights(reader, reader.round_losses.steps[round_counts - 1], kernels + [schema.OUTPUT_GRAM_FIELD])
    if position == 0:
        reader.check_input_ids(names[0], rows["input_id"][valid])
    return ChainFactors(
        round_counts=round_counts, valid=valid, weight=rows["weight"].astype(np.float64),
        residual_sq=rows["residual_sq"].astype(np.float64), z=rows[schema.preactivation_field(layer)],
        multipliers=tuple(rows[schema.multiplier_field(name)] for name in hidden[position:]),
        kernels=tuple(weights[field] for field in kernels), output_gram=weights[schema.OUTPUT_GRAM_FIELD],
        q_top=rows["q"],
        input_table=reader.input_table(names[0]) if position == 0 else None,
        input_id=rows["input_id"] if position == 0 else None,
        below=tuple(rows[field] for field in below) or None,
        use_bias=position > 0 and bool(reader.manifest.chain_use_bias[layer]),
        upper_z=tuple(rows[schema.preactivation_field(name)] for name in hidden[position + 1:]) if upper else (),
        upper_use_bias=tuple(bool(reader.manifest.chain_use_bias[name]) for name in hidden[position + 1:]) if upper else (),
    )
