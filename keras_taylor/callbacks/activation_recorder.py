"""ActivationRecorder: the activation configurations of the rectifiers on a fixed probe set."""

import keras
import numpy as np

from keras_taylor import masks as kt_masks
from keras_taylor import schedules, schema, storage
from keras_taylor.callbacks.run_description import optimizer_description, versions


class ActivationRecorder(keras.callbacks.Callback):
    """Records the activation configuration of every rectifier on a fixed probe set.

    Each record is the `[D, M]` boolean matrix (D probe points, M recorded units,
    layers concatenated in model order) packed to bits along M. Layers with more
    than `max_units_per_layer` units are subsampled to a fixed random set of units,
    listed in the manifest (the paper's sampling).

    Args:
        logdir: Run directory.
        probe_x: The probe inputs `[D, ...]` (e.g. a fixed fraction of the training set).
        schedule: `schedules.every_epoch()` (default) or a step schedule.
        max_units_per_layer: Units recorded per layer at most.
        seed: Seed of the unit sampling.
        mode: "new", "resume" or "overwrite".
        batch_size: Probe batch size.
        record_initial: Also record before the first step.
    """

    def __init__(self, logdir, probe_x, schedule: schedules.Schedule | None = None, max_units_per_layer: int = 10000,
                 *, seed: int = 0, mode: str = "new", batch_size: int = 1024, record_initial: bool = True):
        super().__init__()
        if max_units_per_layer < 1:
            raise ValueError(f"max_units_per_layer must be positive. Received: {max_units_per_layer}")
        self.logdir = logdir
        self.probe_x = np.asarray(probe_x)
        self.schedule = schedule or schedules.every_epoch()
        self.max_units_per_layer = max_units_per_layer
        self.seed = seed
        self.mode = mode
        self.batch_size = batch_size
        self.record_initial = record_initial
        self.writer = None
        self._step = 0
        self._epoch = 0

    def attach(self, model) -> None:
        """Set-up for a custom training loop; then call `record(step, epoch)` when you like."""
        self.set_model(model)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        model = self.model
        layers = kt_masks.rectifier_layers(model)
        if not layers:
            raise ValueError(
                f"Model '{model.name}' has no rectifier (ReLU) layer: there is no activation configuration to "
                f"record. Its layers are {[layer.name for layer in model.layers]}."
            )
        self._layers = layers
        self._probe_model = self._build_probe(model, layers)
        sample = self.probe_x[:1]
        shapes = {name: mask.shape[1:] for name, mask in self._masks(sample).items()}
        self._units = {}
        generator = np.random.default_rng(self.seed)
        for layer in layers:
            total = int(np.prod(shapes[layer.name]))
            if total > self.max_units_per_layer:
                self._units[layer.name] = np.sort(generator.choice(total, self.max_units_per_layer, replace=False))
            else:
                self._units[layer.name] = np.arange(total)
        manifest = {
            "kind": schema.ACTIVATIONS_KIND,
            "model": {"name": model.name},
            "probe": {"num_points": len(self.probe_x), "shape": list(self.probe_x.shape[1:])},
            "layers": {layer.name: {"shape": list(shapes[layer.name]), "units": self._units[layer.name].tolist()}
                       for layer in layers},
            "num_units": int(sum(len(units) for units in self._units.values())),
            "layer_order": [layer.name for layer in layers],  # "layers" is stored with sorted keys
            "schedule": self.schedule.to_config(),
            "optimizer": optimizer_description(model),
            "versions": versions(),
        }
        self.writer = storage.RunWriter(self.logdir, manifest, mode=self.mode, chunk_rows=1)
        if self.record_initial and self.mode != "resume":
            self.record(step=-1, epoch=-1)

    @staticmethod
    def _build_probe(model, layers):
        try:
            return keras.Model(model.inputs, [layer.output for layer in layers])
        except (AttributeError, ValueError):
            return None  # subclassed models: fall back to activation_masks

    def _masks(self, x) -> dict:
        if self._probe_model is None:
            return kt_masks.activation_masks(self.model, x)
        outputs = self._probe_model([x], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return {layer.name: np.asarray(output) > 0 for layer, output in zip(self._layers, outputs)}

    def configuration(self) -> np.ndarray:
        """The current `[D, M]` boolean configuration of the recorded units."""
        parts = []
        for start in range(0, len(self.probe_x), self.batch_size):
            batch_masks = self._masks(self.probe_x[start:start + self.batch_size])
            parts.append(np.concatenate(
                [batch_masks[layer.name].reshape(len(batch_masks[layer.name]), -1)[:, self._units[layer.name]]
                 for layer in self._layers], axis=1))
        return np.concatenate(parts)

    def record(self, step: int, epoch: int) -> None:
        """Writes one configuration record."""
        packed = np.packbits(self.configuration(), axis=1)
        self.writer.append(schema.CONFIGURATIONS_STREAM, step=step, epoch=epoch, packed=packed)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.schedule(self._step):
            self.record(self._step, self._epoch)
        self._step += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.schedule.epoch_due(epoch):
            self.record(self._step - 1, epoch)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self) -> None:
        self.on_train_end()
