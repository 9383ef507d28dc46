"""The on-disk schema: names that round-trip, the typed manifest, and the format version check."""

import json

import numpy as np
import pytest

from keras_taylor import analysis, schema, storage
from keras_taylor.schema import Route, Scale


def _manifest(version: int, layer_route: str) -> dict:
    return {
        "format_version": version, "kind": schema.TAYLOR_KIND,
        "loss": {"name": "mean_squared_error", "reduction": "sum_over_batch_size", "quadratic": True},
        "layers": {"b": {"neuron": "chain", "layer": layer_route, "neurons": [0, 1], "kind": "dense", "use_bias": True},
                   "a": {"neuron": "gram", "layer": "gram", "neurons": [0], "kind": "dense", "use_bias": False}},
        "layer_order": ["b", "a"], "network": {"route": "skipped", "reason": "not requested"},
        "chain": {"layers": ["b", "a"], "use_bias": {"b": True, "a": False}},
    }


@pytest.mark.parametrize("scale,layer", [(Scale.NETWORK, None), (Scale.LAYER, "dense_1"), (Scale.NEURON, "conv.2")],
                         ids=["network", "layer", "neuron_dotted_name"])
def test_stream_names_round_trip(scale, layer):
    name = schema.gram_stream(scale, layer)
    assert schema.gram_stream_key(name) == schema.sums_key(scale, layer)
    assert schema.gram_stream_key(schema.neuron_stream("x")) is None
    if layer is not None:
        assert schema.inputs_stream_layer(schema.inputs_stream(layer)) == layer
        assert schema.is_inputs_stream(schema.inputs_stream(layer))
        assert schema.inputs_stream_layer(schema.gram_stream(scale, layer)) is None


def test_every_route_has_a_post_hoc_solver_but_skipped():
    from keras_taylor.analysis import routes  # the registry is the analysis's own

    assert set(routes.SOLVERS) == set(Route) - {Route.SKIPPED}


def test_typed_manifest_keeps_the_model_order_and_enums():
    manifest = schema.taylor_manifest(_manifest(schema.FORMAT_VERSION, "chain"), "here")
    assert manifest.layer_order == ("b", "a") and list(manifest.layers) == ["b", "a"]
    assert manifest.layers["b"].layer_route is Route.CHAIN and manifest.layers["a"].neuron_route is Route.GRAM
    assert manifest.network_route is Route.SKIPPED and manifest.chain_layers == ("b", "a")
    assert manifest.layers["b"].route(Scale.NEURON) is Route.CHAIN and manifest.layers["a"].use_bias is False


def test_version_1_names_the_chain_layer_scale_stream():
    manifest = schema.taylor_manifest(_manifest(1, "stream"), "here")
    assert manifest.format_version == 1 and manifest.layers["b"].layer_route is Route.CHAIN
    assert manifest.layers["b"].neuron_route is Route.CHAIN  # the neuron scale's names did not change


@pytest.mark.parametrize("version", [0, 3, None], ids=["older", "newer", "missing"])
def test_an_unknown_format_version_is_refused_by_name(tmp_path, version):
    writer = storage.RunWriter(tmp_path / "run", _manifest(schema.FORMAT_VERSION, "chain"))
    writer.append(schema.ROUNDS_STREAM, step=0, epoch=0, loss=1.0, batch_size=1, finite=True)
    writer.close()
    path = tmp_path / "run" / storage.MANIFEST
    manifest = json.loads(path.read_text())
    if version is None:
        del manifest["format_version"]
    else:
        manifest["format_version"] = version
    path.write_text(json.dumps(manifest))
    if version is None:
        with pytest.raises(storage.CorruptRunError, match="not a keras_taylor manifest"):
            storage.load_run(tmp_path / "run")
        return
    with pytest.raises(schema.UnreadableFormatError, match=f"version {version}"):
        analysis.round_losses(tmp_path / "run")


def test_written_runs_carry_the_current_version(tmp_path):
    writer = storage.RunWriter(tmp_path / "run", _manifest(schema.FORMAT_VERSION, "chain"))
    writer.append(schema.ROUNDS_STREAM, step=0, epoch=0, loss=2.0, batch_size=1, finite=True)
    writer.close()
    assert storage.load_run(tmp_path / "run").manifest["format_version"] == schema.FORMAT_VERSION
    np.testing.assert_array_equal(analysis.round_losses(tmp_path / "run").losses, [2.0])
