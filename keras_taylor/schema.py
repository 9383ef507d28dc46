"""What a recorded run holds on disk: routes, scales, stream and field names, the manifest.

The recorders write and the analysis reads through this module only, so the two
cannot disagree on a name. A run directory (see `keras_taylor.storage`) is a JSON
manifest and named streams of array chunks:

| stream | rows | fields |
|---|---|---|
| `rounds` | one per recorded round | step, epoch, loss, batch_size, finite |
| `gradients` | one per round (`record_gradients`) | step, w0, w1, ... |
| `gram.network`, `gram.<layer>.<scale>` | one per checkpoint | step, rounds, rounds_in_sums, gram, linear, constant |
| `stream.<layer>` | one per example | step, weight, input_id, z, q, curvature, residual_sq |
| `inputs.<layer>` | one per distinct layer input | input_id, inputs |
| `chain` | one per example | step, weight, residual_sq, input_id, q, `<layer>/z`, `<layer>/s` |
| `chain.weights` | one per round | step, output_gram, `<layer>/kernel` |
| `factors` | one per round | step, outputs, targets, `<layer>/inputs|z|jacobian|kernel|bias` |
| `configurations` | one per record (ActivationRecorder) | step, epoch, packed |

Format versions: 2 names the layer scale rebuilt from chain factors `Route.CHAIN`;
version 1 wrote "stream" for it (the neuron scale's "stream" is the per-layer stream
above in both), and is read as version 2.
"""

import dataclasses
import enum

FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)

TAYLOR_KIND = "taylor"
# The fields of a convolution's manifest entry that rebuild its patches post hoc.
CONV_GEOMETRY = ("kernel_size", "strides", "padding", "dilation_rate")
ACTIVATIONS_KIND = "activations"


class Scale(str, enum.Enum):
    """The scale of a Taylor approximation: all weights, one layer's, or one neuron's."""

    NETWORK = "network"
    LAYER = "layer"
    NEURON = "neuron"

    def __str__(self) -> str:
        return self.value


class Route(str, enum.Enum):
    """How the data of one (layer, scale) travel from the training step to the analysis.

    GRAM: the quadratic's running sums (H, g, s), accumulated during training and written
        at checkpoints (squared error).
    STREAM: per-example neuron factors of one dense layer (z, q = Jᵀr, diag JᵀJ, input id),
        summed post hoc (squared error, neuron scale).
    CHAIN: rebuilt post hoc from the streamed factors of a dense chain with a linear output
        (Observation 2), at neuron or layer scale (squared error).
    FACTORS: factored Jacobians and layer inputs of the stored examples, for a loss that is
        not quadratic (cross-entropy); minimized by the bounded solver.
    SKIPPED: not recorded (the manifest's reasons say why).
    """

    GRAM = "gram"
    STREAM = "stream"
    CHAIN = "chain"
    FACTORS = "factors"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


class UnreadableFormatError(ValueError):
    """A run written in a format this version of keras_taylor cannot read."""


# ------------------------------------------------------------------ stream names

ROUNDS_STREAM = "rounds"
GRADIENTS_STREAM = "gradients"
CHAIN_STREAM = "chain"
CHAIN_WEIGHTS_STREAM = "chain.weights"
FACTORS_STREAM = "factors"
CONFIGURATIONS_STREAM = "configurations"

GRAM_PREFIX = "gram."
_NEURON_STREAM_PREFIX = "stream."
_INPUTS_PREFIX = "inputs."


def sums_key(scale: Scale, layer: str | None = None) -> str:
    """The key of one running sum: "network", or "<layer>.<scale>"."""
    scale = Scale(scale)
    if scale is Scale.NETWORK:
        return Scale.NETWORK.value
    if layer is None:
        raise ValueError(f"The {scale} scale needs a layer.")
    return f"{layer}.{scale.value}"


def gram_stream(scale: Scale, layer: str | None = None) -> str:
    """The checkpointed running sums of one (layer, scale) of route GRAM."""
    return GRAM_PREFIX + sums_key(scale, layer)


def gram_stream_key(stream: str) -> str | None:
    """The sums key of a `gram_stream` name ("network", "<layer>.<scale>"), or None for other streams."""
    return stream[len(GRAM_PREFIX):] if stream.startswith(GRAM_PREFIX) else None


def neuron_stream(layer: str) -> str:
    """The per-example neuron factors of route STREAM."""
    return _NEURON_STREAM_PREFIX + layer


def inputs_stream(layer: str) -> str:
    """The distinct inputs x̃ of a layer, each stored once under an id."""
    return _INPUTS_PREFIX + layer


def inputs_stream_layer(stream: str) -> str | None:
    """The layer of an `inputs_stream` name, or None for other streams."""
    return stream[len(_INPUTS_PREFIX):] if stream.startswith(_INPUTS_PREFIX) else None


def is_inputs_stream(stream: str) -> bool:
    return stream.startswith(_INPUTS_PREFIX)


# ------------------------------------------------------------------ field names

# Fields of the `chain` stream (per example) and `chain.weights` (per round).
OUTPUT_GRAM_FIELD = "output_gram"


def preactivation_field(layer: str) -> str:
    """z of a chain layer, per example."""
    return f"{layer}/z"


def multiplier_field(layer: str) -> str:
    """s = rectifier mask × dropout scale between a chain layer and the next, per example."""
    return f"{layer}/s"


def kernel_field(layer: str) -> str:
    """W^n of a layer, per round."""
    return f"{layer}/kernel"


def bias_field(layer: str) -> str:
    return f"{layer}/bias"


def factor_field(layer: str, part: str) -> str:
    """A per-example part ("inputs", "z", "jacobian") of a layer in the `factors` stream."""
    return f"{layer}/{part}"


# ------------------------------------------------------------------ the manifest


@dataclasses.dataclass(frozen=True)
class LayerRecord:
    """What the manifest says was recorded for one layer.

    Attributes:
        name: The layer.
        kind: "dense" or "conv2d".
        neuron_route: The route of the neuron scale.
        layer_route: The route of the layer scale.
        neurons: The unit indices recorded at neuron scale.
        reasons: Why a scale was skipped or routed as it was.
        jacobian_is_identity: The linear output layer of a squared-error model (J = I).
        use_bias: Whether the layer has a bias (x̃ ends in a 1).
        geometry: A convolution's kernel_size, strides, padding and dilation_rate (empty for dense).
    """

    name: str
    kind: str
    neuron_route: Route
    layer_route: Route
    neurons: tuple
    reasons: tuple
    jacobian_is_identity: bool
    use_bias: bool
    geometry: dict = dataclasses.field(default_factory=dict)

    def route(self, scale: Scale) -> Route:
        return self.neuron_route if Scale(scale) is Scale.NEURON else self.layer_route


@dataclasses.dataclass(frozen=True)
class TaylorManifest:
    """A TaylorRecorder run's manifest, typed.

    Attributes:
        raw: The parsed JSON (every field, including those not typed here).
        format_version: The format the run was written in.
        layer_order: The recorded layers in model order.
        layers: `{name: LayerRecord}`.
        network_route: The route of the network scale.
        network_reason: Why the network scale was skipped ("" if recorded).
        chain_layers: The dense chain whose factors were streamed (empty if none), output last.
        chain_use_bias: `{layer: bool}` for the chain's layers.
        quadratic: Whether the loss is squared error.
    """

    raw: dict
    format_version: int
    layer_order: tuple
    layers: dict
    network_route: Route
    network_reason: str
    chain_layers: tuple
    chain_use_bias: dict
    quadratic: bool

    @property
    def loss(self) -> dict:
        return self.raw["loss"]

    def describe_routes(self) -> str:
        """One line of what was recorded, for error messages."""
        parts = [f"{name}: neuron {record.neuron_route}, layer {record.layer_route}"
                 for name, record in self.layers.items()]
        parts.append(f"network {self.network_route}")
        return "; ".join(parts)


def check_format(manifest: dict, where) -> int:
    """The run's format version, or UnreadableFormatError naming it if this code cannot read it."""
    version = manifest.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        raise UnreadableFormatError(
            f"{where} was written in run format version {version!r}; this keras_taylor reads versions "
            f"{list(READABLE_FORMAT_VERSIONS)}. Record it again, or analyze it with the keras_taylor that wrote it "
            f"(manifest versions: {manifest.get('versions')})."
        )
    return int(version)


def _layer_route(value: str, version: int) -> Route:
    if version == 1 and value == Route.STREAM.value:
        return Route.CHAIN  # version 1 named the chain-factor layer scale "stream"
    return Route(value)


def taylor_manifest(manifest: dict, where) -> TaylorManifest:
    """Parses and checks a TaylorRecorder manifest.

    Args:
        manifest: The parsed JSON.
        where: The run directory, for messages.

    Raises:
        UnreadableFormatError: an unknown format version.
        ValueError: a manifest of another kind of run.
    """
    version = check_format(manifest, where)
    if manifest.get("kind") != TAYLOR_KIND:
        raise ValueError(f"{where} is a {manifest.get('kind')!r} run, not a TaylorRecorder run: it holds no Taylor data.")
    entries = manifest.get("layers", {})
    order = manifest.get("layer_order") or sorted(entries)
    layers = {}
    for name in order:
        entry = entries[name]
        layers[name] = LayerRecord(
            name=name, kind=entry.get("kind", "dense"), neuron_route=Route(entry["neuron"]),
            layer_route=_layer_route(entry["layer"], version), neurons=tuple(entry.get("neurons", ())),
            reasons=tuple(entry.get("reasons", ())), jacobian_is_identity=bool(entry.get("jacobian_is_identity")),
            use_bias=bool(entry.get("use_bias", True)),
            geometry={key: entry[key] for key in CONV_GEOMETRY if key in entry},
        )
    network = manifest.get("network", {})
    chain = manifest.get("chain") or {}
    return TaylorManifest(
        raw=manifest, format_version=version, layer_order=tuple(order), layers=layers,
        network_route=Route(network.get("route", Route.SKIPPED.value)), network_reason=network.get("reason", ""),
        chain_layers=tuple(chain.get("layers", ())), chain_use_bias=dict(chain.get("use_bias", {})),
        quadratic=bool(manifest["loss"]["quadratic"]),
    )
