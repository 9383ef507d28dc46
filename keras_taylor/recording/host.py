"""The host side of recording: each round's NumPy values accumulated and written, route by route.

`RoundWriter` receives what `recording.step.round_tensors` computed (as NumPy) and
writes the run directory through the schema's names: the round's loss to
`rounds`; route GRAM's sums (H, g, s) accumulated in memory and written at
checkpoints; route STREAM's per-example neuron factors; route CHAIN's chain factors;
route FACTORS's factored Jacobians. Distinct layer inputs are stored once
(`inputs.<layer>`) and referred to by id.
"""

import hashlib

import numpy as np

from keras_taylor import quadratic_terms, schedules, schema, storage
from keras_taylor.recording.plan import PlannedRecording
from keras_taylor.schema import Route, Scale


class RoundWriter:
    """Accumulates and writes the recorded rounds of one run.

    Args:
        writer: The run directory's `storage.RunWriter`.
        planned: The plan and its loss.
        checkpoints: When route GRAM's running sums are written.
        dtype: Precision of the streamed per-example data.
        multiplier_dtype: Precision of the chain multipliers s ("uint8" when they are masks).
        network_layers: The model's weighted layers in order (the network scale's blocks).
    """

    def __init__(self, writer: storage.RunWriter, planned: PlannedRecording, checkpoints: schedules.Schedule,
                 dtype: str, multiplier_dtype: str, network_layers: list):
        self.writer = writer
        self.plan = planned.plan
        self.num_outputs = planned.num_outputs
        self.reduction = planned.resolved_loss.convex_loss.reduction
        self.checkpoints = checkpoints
        self.dtype = dtype
        self.multiplier_dtype = multiplier_dtype
        self.network_layers = list(network_layers)
        self.rounds = 0
        self._sums = {}
        self._known_inputs = {}
        self._round_ids = {}
        self._last_checkpoint = None

    def restore(self) -> None:
        """Continues a resumed run: the last written running sums and the table of distinct inputs."""
        run = storage.load_run(self.writer.logdir)
        for name in run.streams:
            layer = schema.inputs_stream_layer(name)
            if layer is not None:
                known = self._known_inputs.setdefault(layer, {})
                for chunk in run.stream(name).chunks():
                    for input_id, row in zip(chunk["input_id"], chunk["inputs"]):
                        known[_digest(row)] = int(input_id)
            key = schema.gram_stream_key(name)
            if key is None:
                continue
            sums = run.stream(name)
            last = {field: value[-1] for field, value in sums.chunk(-1).items()} if sums.chunk_paths else None
            if last is not None:
                self._sums[key] = quadratic_terms.QuadraticSums(
                    last["gram"], last["linear"], last["constant"], int(last["rounds"])
                )
                self.rounds = max(self.rounds, int(last["rounds"]))

    def consume(self, values: dict, step: int, epoch: int) -> tuple[float, bool]:
        """Writes one recorded round. Returns `(loss, finite)`."""
        loss = float(values["loss"])
        batch_size = int(values["batch_size"])
        finite = bool(np.isfinite(loss))
        self.writer.append(schema.ROUNDS_STREAM, step=step, epoch=epoch, loss=loss, batch_size=batch_size,
                           finite=finite)
        if self.plan.record_gradients:
            gradients = {key.split("/")[1]: value for key, value in values.items() if key.startswith("gradient/")}
            self.writer.write_chunk(schema.GRADIENTS_STREAM, step=np.array([step]),
                                    **{f"w{k}": v[None] for k, v in gradients.items()})
        if self.plan.quadratic and finite:
            self._accumulate(values, batch_size, step)
        self._write_factors(values, step)
        self.rounds += 1
        if self.plan.quadratic and self.checkpoints(self.rounds - 1):
            self.checkpoint(step)
        return loss, finite

    def checkpoint(self, step: int) -> None:
        """Flushes every stream and writes route GRAM's running sums (once per round count)."""
        if self._last_checkpoint == self.rounds:
            return
        self._last_checkpoint = self.rounds
        # Everything up to this round reaches the disk, distinct inputs before the ids that use them.
        for stream in sorted(self.writer.buffered_streams(), key=lambda name: not schema.is_inputs_stream(name)):
            self.writer.flush(stream)
        for key, sums in self._sums.items():
            self.writer.write_chunk(
                schema.GRAM_PREFIX + key, step=np.array([step]), rounds=np.array([self.rounds]),
                rounds_in_sums=np.array([sums.rounds]),
                gram=sums.gram[None], linear=sums.linear[None], constant=sums.constant[None],
            )
        self.writer.write_manifest(next_step=step + 1, rounds_recorded=self.rounds)

    def finish(self, step: int) -> None:
        """The last checkpoint (if any sums are kept)."""
        if self.plan.quadratic and self._sums:
            self.checkpoint(step)

    # ------------------------------------------------------------------ routes

    def _accumulate(self, values: dict, batch_size: int, step: int) -> None:
        weight = quadratic_terms.reduction_weight(batch_size, self.num_outputs, self.reduction)
        residual_sq = values["residual_sq"].astype(np.float64)
        for plan in self.plan.layers:
            if plan.neuron_route is Route.GRAM:
                self._add(schema.sums_key(Scale.NEURON, plan.name), tuple(
                    weight * values[f"{plan.name}/neuron_{part}"].astype(np.float64)
                    for part in ("gram", "linear", "constant")
                ))
            identity = plan.name == self.plan.identity_layer
            layer_gram = plan.layer_route is Route.GRAM and not identity  # J = I: the sum of its neurons
            if not layer_gram and plan.neuron_route is not Route.STREAM:
                continue
            inputs, z, q = (values[f"{plan.name}/{key}"].astype(np.float64) for key in ("inputs", "z", "q"))
            if plan.neuron_route is Route.STREAM:
                self._stream_neurons(plan, values, inputs, z, q, residual_sq, weight, step)
            if layer_gram:
                jtj = self._jtj(values, plan.name)
                self._add(schema.sums_key(Scale.LAYER, plan.name),
                          quadratic_terms.layer_terms(inputs, z, q, residual_sq, jtj, weight))
        if self.plan.chain_stream:
            self._stream_chain(values, batch_size, weight, residual_sq, step)
        if self.plan.network_route is Route.GRAM:
            names = self.network_layers
            self._add(schema.sums_key(Scale.NETWORK), quadratic_terms.network_terms(
                [values[f"{n}/inputs"].astype(np.float64) for n in names],
                [values[f"{n}/z"].astype(np.float64) for n in names],
                [values[f"{n}/jacobian"].astype(np.float64) for n in names],
                values["residual"].astype(np.float64), weight,
            ))

    def _stream_neurons(self, plan, values, inputs, z, q, residual_sq, weight, step) -> None:
        """Route STREAM: the recorded neurons' per-example factors."""
        curvature = values[f"{plan.name}/curvature"]
        input_ids = self._input_ids(plan.name, inputs.astype(self.dtype), step)
        stream = schema.neuron_stream(plan.name)
        if self.writer.buffered_rows(stream) + len(z) >= self.writer.chunk_rows:
            self.writer.flush(schema.inputs_stream(plan.name))  # every id in a written chunk resolves
        self.writer.extend(
            stream, step=np.full(len(z), step), weight=np.full(len(z), weight),
            input_id=input_ids,
            z=z[:, plan.neurons].astype(self.dtype),
            q=q[:, plan.neurons].astype(self.dtype),
            curvature=curvature[:, plan.neurons].astype(self.dtype), residual_sq=residual_sq,
        )

    def _stream_chain(self, values: dict, batch_size: int, weight: float, residual_sq: np.ndarray, step: int) -> None:
        """Route CHAIN: the round's chain factors (see `recording.chain.chain_factors`), per example to
        `schema.CHAIN_STREAM` and per round to `schema.CHAIN_WEIGHTS_STREAM`."""
        chain = self.plan.chain_stream
        if self.writer.buffered_rows(schema.CHAIN_STREAM) + batch_size >= self.writer.chunk_rows:
            # Every id and every round's weights that a written chunk refers to are on disk first.
            self.writer.flush(schema.inputs_stream(chain[0]))
            self.writer.flush(schema.CHAIN_WEIGHTS_STREAM)
        self.writer.append(schema.CHAIN_WEIGHTS_STREAM, step=step,
                           **{schema.OUTPUT_GRAM_FIELD: values["chain/output_gram"]},
                           **{schema.kernel_field(name): values[f"chain/{name}/kernel"] for name in chain[1:-1]})
        examples = {}
        for name in chain[:-1]:
            examples[schema.preactivation_field(name)] = values[f"chain/{name}/z"].astype(self.dtype)
            examples[schema.multiplier_field(name)] = values[f"chain/{name}/s"].astype(self.multiplier_dtype)
        self.writer.extend(
            schema.CHAIN_STREAM, step=np.full(batch_size, step), weight=np.full(batch_size, weight),
            residual_sq=residual_sq,
            input_id=self._input_ids(chain[0], values["chain/inputs"].astype(self.dtype), step),
            q=values["chain/q"].astype(self.dtype), **examples,
        )

    def _write_factors(self, values: dict, step: int) -> None:
        """Route FACTORS: the stored examples' factored Jacobians, layer inputs and W^n."""
        factored = [plan for plan in self.plan.layers if Route.FACTORS in (plan.neuron_route, plan.layer_route)]
        if not factored:
            return
        examples = slice(0, self.plan.examples_per_round)
        arrays = {"step": np.array([step]), "outputs": values["outputs"][examples][None],
                  "targets": values["targets"][examples][None]}
        for plan in factored:
            for key in ("inputs", "z", "jacobian"):
                arrays[schema.factor_field(plan.name, key)] = values[f"{plan.name}/{key}"][examples][None].astype(
                    self.dtype)
            for field, key in ((schema.kernel_field(plan.name), "kernel"), (schema.bias_field(plan.name), "bias")):
                if f"{plan.name}/{key}" in values:  # W^n, not per example
                    arrays[field] = values[f"{plan.name}/{key}"][None].astype(self.dtype)
        self.writer.write_chunk(schema.FACTORS_STREAM, **arrays)

    # ----------------------------------------------------------------- helpers

    def _input_ids(self, name: str, inputs: np.ndarray, step: int) -> np.ndarray:
        """Ids of the rows of x̃, writing each distinct row once to `schema.inputs_stream(name)`.

        A layer whose input does not depend on the weights (the first layer) sees the
        same training examples every epoch: storing an id per example instead of x̃
        shrinks the stream by the input width, and lets the analysis sum each
        distinct row's weights before forming its Gram.
        """
        cached_step, cached_ids = self._round_ids.get(name, (None, None))
        if cached_step == step:  # the neuron and layer streams of one layer share them
            return cached_ids
        known = self._known_inputs.setdefault(name, {})
        ids = np.empty(len(inputs), np.int64)
        new_rows, new_ids = [], []
        for index, row in enumerate(inputs):
            digest = _digest(row)
            if digest not in known:
                known[digest] = len(known)
                new_rows.append(row)
                new_ids.append(known[digest])
            ids[index] = known[digest]
        if new_rows:
            self.writer.extend(schema.inputs_stream(name), input_id=np.array(new_ids), inputs=np.stack(new_rows))
        self._round_ids[name] = (step, ids)
        return ids

    @staticmethod
    def _jtj(values: dict, name: str):
        if f"{name}/jtj" in values:
            return values[f"{name}/jtj"].astype(np.float64)
        if f"{name}/jacobian" in values:
            jacobian = values[f"{name}/jacobian"].astype(np.float64)
            return np.einsum("bpk,bpl->bkl", jacobian, jacobian)
        return None  # J = I at the output layer

    def _add(self, key: str, terms) -> None:
        gram, linear, constant = terms
        if key not in self._sums:
            self._sums[key] = quadratic_terms.QuadraticSums(
                np.zeros_like(gram), np.zeros_like(linear), np.zeros_like(constant)
            )
        self._sums[key].add(gram, linear, constant)


def _digest(row: np.ndarray) -> bytes:
    return hashlib.blake2b(row.tobytes(), digest_size=16).digest()
