"""What the bounded solver's layer-scale optimum of a dense layer costs, stacked vs per round.

Synthetic rounds shaped like the CIFAR-10 convnet's `relu_fc` (1,024 inputs + bias, 192 units,
10 logits, 16 stored examples per round; cross-entropy at the logits): one hindsight Taylor
optimum over all `--rounds` rounds by `factored_taylor_optimum`, with the rounds as
`StackedDenseRounds` (one GEMM per evaluation) and as `RoundList` (a loop over rounds), side
by side in one process; prints seconds, Hessian products, the ratio and the minima's difference.

    python bench/bench_factors_layer.py --rounds 40,200,500
"""

import os
import platform
import time

import numpy as np
from absl import app
from absl import flags

from keras_taylor import losses
from keras_taylor.analysis.affine_rounds import LinearRound, RoundList, StackedDenseRounds
from keras_taylor.analysis.bounded import factored_taylor_optimum, trajectory_diameter

_ROUNDS = flags.DEFINE_list("rounds", ["40", "200", "500"], "Round counts to time.")
_EXAMPLES = flags.DEFINE_integer("examples_per_round", 16, "Stored examples per round.")
_INPUTS = flags.DEFINE_integer("inputs", 1024, "Layer inputs (without the bias).")
_UNITS = flags.DEFINE_integer("units", 192, "Layer units.")
_OUTPUTS = flags.DEFINE_integer("outputs", 10, "Network outputs (logits).")


def _rounds(count: int, rng) -> list:
    """Rounds of a slowly moving dense layer: relu inputs, Jacobians of a 10-way linear readout."""
    weights = rng.normal(0, 0.05, (_INPUTS.value + 1) * _UNITS.value)
    readout = rng.normal(0, 0.1, (_OUTPUTS.value, _UNITS.value))
    rounds = []
    for _ in range(count):
        weights = weights + rng.normal(0, 1e-3, weights.shape)
        inputs = np.maximum(rng.normal(size=(_EXAMPLES.value, 1, _INPUTS.value)), 0)
        features = np.concatenate([inputs, np.ones((_EXAMPLES.value, 1, 1))], axis=2)
        mask = rng.random((_EXAMPLES.value, 1, 1, _UNITS.value)) < 0.5
        jacobian = readout[None, :, None, :] * mask
        rounds.append(LinearRound(rng.normal(size=(_EXAMPLES.value, _OUTPUTS.value)),
                                  rng.integers(0, _OUTPUTS.value, _EXAMPLES.value), weights,
                                  features=features, jacobian=jacobian))
    return rounds


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; relu_fc-shaped rounds "
          f"({_INPUTS.value}+1 inputs, {_UNITS.value} units, {_OUTPUTS.value} outputs, "
          f"{_EXAMPLES.value} examples per round)")
    print("| rounds | stacked (s) | per round (s) | ratio | Hessian products | |Δ minimum| |")
    print("|---|---|---|---|---|---|")
    loss = losses.SparseCategoricalCrossentropyFromLogits("sum_over_batch_size")
    for count in map(int, _ROUNDS.value):
        linear_rounds = _rounds(count, np.random.default_rng(0))
        center = linear_rounds[0].weights
        radius = trajectory_diameter(np.stack([r.weights for r in linear_rounds]))
        results = {}
        for name, rounds in (("stacked", StackedDenseRounds.from_rounds(linear_rounds, loss)),
                             ("listed", RoundList(linear_rounds))):
            began = time.perf_counter()
            minimum, _, details = factored_taylor_optimum(rounds, loss, center, radius, center)
            results[name] = (time.perf_counter() - began, minimum, details)
        (stacked, minimum, details), (listed, listed_minimum, _) = results["stacked"], results["listed"]
        print(f"| {count} | {stacked:.2f} | {listed:.2f} | {listed / stacked:.2f}× | "
              f"{details['products']} | {abs(minimum - listed_minimum):.2e} |")


if __name__ == "__main__":
    app.run(main)
