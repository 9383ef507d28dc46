"""recording.plan: the routes a plan picks from the options, and the refusals of bad options."""

import keras
import numpy as np
import pytest

from keras_taylor import schedules
from keras_taylor.recording import RecorderOptions, plan_recording
from keras_taylor.schema import Route, Scale


def _chain_model():
    inputs = keras.Input((8,))
    hidden = inputs
    for index, width in enumerate((6, 4, 6)):
        hidden = keras.layers.Dense(width, activation="relu", name=f"relu_{index + 1}")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(8, name="output")(hidden))
    model.compile("sgd", "mse")
    return model


def _routes(planned):
    return {layer.name: (layer.neuron_route, layer.layer_route) for layer in planned.plan.layers}


def test_a_dense_chain_streams_its_factors_when_grams_cost_more_than_a_step():
    planned = plan_recording(_chain_model(), RecorderOptions(max_gram_cost=0.0), batch_size=16, total_steps=10)
    hidden = {f"relu_{index}": (Route.CHAIN, Route.CHAIN) for index in (1, 2, 3)}
    assert _routes(planned) == {**hidden, "output": (Route.STREAM, Route.GRAM)}  # J = I: the layer Gram is Σx̃x̃ᵀ
    assert planned.plan.chain_stream == ("relu_1", "relu_2", "relu_3", "output")
    assert planned.expected_rounds == 10 and planned.bytes_per_round > 0
    assert planned.plan.identity_layer == "output"


def test_cheap_grams_stay_in_the_step_and_subsets_skip_the_network_scale():
    planned = plan_recording(_chain_model(), RecorderOptions(max_gram_cost=np.inf), batch_size=16)
    assert set(_routes(planned).values()) == {(Route.GRAM, Route.GRAM)}
    assert planned.plan.network_route is Route.GRAM and planned.expected_rounds == 1
    subset = plan_recording(_chain_model(), RecorderOptions(layers=["relu_2"], scales=("neuron",),
                                                            max_gram_cost=np.inf), batch_size=16)
    assert _routes(subset) == {"relu_2": (Route.GRAM, Route.SKIPPED)}
    assert subset.plan.network_route is Route.SKIPPED and "not requested" in subset.network_reason


def test_cross_entropy_records_factors_on_a_sparse_schedule():
    inputs = keras.Input((6, 6, 1))
    hidden = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    outputs = keras.layers.Dense(4, activation="softmax", name="out")(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    planned = plan_recording(model, RecorderOptions(neurons=2, scales=("neuron",)), batch_size=8, total_steps=30)
    assert _routes(planned) == {"conv": (Route.FACTORS, Route.SKIPPED), "out": (Route.FACTORS, Route.SKIPPED)}
    assert planned.resolved_loss.at_logits and planned.schedule == schedules.every_k_steps(10)
    assert planned.expected_rounds == 3
    assert [len(layer.neurons) for layer in planned.plan.layers] == [2, 2]
    dense_only = plan_recording(model, RecorderOptions(neurons=2, scales=("neuron", "layer"),
                                                       layer_scale_layers=["out"]), batch_size=8, total_steps=30)
    assert _routes(dense_only) == {"conv": (Route.FACTORS, Route.SKIPPED), "out": (Route.FACTORS, Route.FACTORS)}
    quadratic = plan_recording(_chain_model(), RecorderOptions(max_gram_cost=np.inf, layer_scale_layers=("relu_2",)),
                               batch_size=16)
    assert {name for name, routes in _routes(quadratic).items() if routes[1] is not Route.SKIPPED} == {"relu_2"}


@pytest.mark.parametrize("options,message", [
    (dict(scales=("network", "pixel")), "scales must be among"),
    (dict(dtype="int8"), "dtype must be"),
    (dict(jtj_route="guess"), "jtj_route must be"),
    (dict(examples_per_round=0), "examples_per_round must be positive"),
    (dict(scales=("neuron",), layer_scale_layers=["relu_1"]), "which scales does not include"),
], ids=["scale", "dtype", "jtj_route", "examples", "layer_scale_without_layer"])
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        RecorderOptions(**options)


def test_unknown_layers_and_neurons_are_named():
    with pytest.raises(ValueError, match="no Dense/Conv2D layers \\['nope'\\]"):
        plan_recording(_chain_model(), RecorderOptions(layers=["nope"]), batch_size=4)
    with pytest.raises(ValueError, match="relu_1' has 6 neurons"):
        plan_recording(_chain_model(), RecorderOptions(neurons={"relu_1": [9]}), batch_size=4)
    assert RecorderOptions(scales=("neuron",)).scales == (Scale.NEURON,)
    with pytest.raises(ValueError, match="layer_scale_layers names layers \\['relu_1'\\] that are not recorded"):
        plan_recording(_chain_model(), RecorderOptions(layers=["relu_2"], layer_scale_layers=["relu_1"]), batch_size=4)
