"""What one pass over a recorded dense chain costs per round, part by part, by rounds per block.

Reads the first `--rounds` rounds of a recorded MNIST-autoencoder run (its `taylor` directory,
e.g. one of `bench_analysis.py`'s recordings) and feeds them, a block of rounds at a time, to
the solvers `ChainRoute` serves from one pass when every layer is asked at layer and neuron
scale: the first layer's CG sums, the hidden layers' explicit packed Grams, 10 neurons per
layer. It times the chain's products (`ChainFactors.products`) and each solver's `add`, no
solves, and prints milliseconds per round for each `--rounds_per_block`, side by side in one
process (the first block size also pays for first touching the first layer's per-input sums).

    python bench/bench_chain_pass.py --run_dir <run>/taylor --rounds 2000 --rounds_per_block 13,6,6
"""

import collections
import os
import platform
import time

import numpy as np
from absl import app
from absl import flags

from keras_taylor.analysis import RunReader
from keras_taylor.analysis.chain_factors import load_chain_factors, round_blocks
from keras_taylor.analysis.chain_pass import PASS_BLOCK_ELEMENTS, NeuronChainSolver
from keras_taylor.analysis.chain_solvers import CGLayerSolver, ExplicitLayerSolver

_RUN_DIR = flags.DEFINE_string("run_dir", None, "The recorded run's taylor directory.", required=True)
_ROUNDS = flags.DEFINE_integer("rounds", 2000, "Rounds of the pass (from the first).")
_BLOCKS = flags.DEFINE_list("rounds_per_block", ["13", "6", "6"], "Rounds per block, one pass each.")
_NEURONS = flags.DEFINE_integer("neurons", 10, "Neurons per layer at neuron scale (the first ones).")


def _solvers(factors, rounds: int, neurons: int) -> list:
    """`(part name, offset, solver)` of every layer at layer and neuron scale, as `ChainRoute` makes them."""
    layers = len(factors.multipliers)
    solvers = [("first layer: CG sums", 0, CGLayerSolver(factors, np.array([rounds]), 1e-4, 1))]
    solvers += [("hidden layers: packed Grams", offset, ExplicitLayerSolver(factors.above(offset), 1))
                for offset in range(1, layers)]
    solvers += [("neuron scales", offset, NeuronChainSolver(factors.above(offset), range(neurons), 1))
                for offset in range(layers)]
    return solvers


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    reader = RunReader(_RUN_DIR.value)
    chain = reader.manifest.chain_layers
    start = time.perf_counter()
    factors = load_chain_factors(reader, chain[0], _ROUNDS.value, upper=True)
    rounds = len(factors.round_counts)
    print(f"CPU: {platform.machine()}, {os.cpu_count()} cores; chain {list(chain)}; {rounds} rounds of "
          f"{factors.batch} examples loaded in {time.perf_counter() - start:.1f} s; the analysis's blocks: "
          f"PASS_BLOCK_ELEMENTS = {PASS_BLOCK_ELEMENTS:,} float64 elements; load average "
          f"{os.getloadavg()[0]:.2f}\n")
    parts = ["chain's products", "first layer: CG sums", "hidden layers: packed Grams", "neuron scales"]
    print("| rounds per block | " + " | ".join(f"{part} (ms/round)" for part in parts) + " | total (ms/round) |")
    print("|---|" + "---|" * (len(parts) + 1))
    for per_block in (int(value) for value in _BLOCKS.value):
        solvers, seconds = _solvers(factors, rounds, _NEURONS.value), collections.Counter()
        for part in round_blocks(0, rounds, per_block):
            tick = time.perf_counter()
            jtj, qs = factors.products(part, range(len(factors.multipliers)))
            seconds["chain's products"] += time.perf_counter() - tick
            for name, offset, solver in solvers:
                tick = time.perf_counter()
                solver.add(part, jtj[offset], qs[offset])
                seconds[name] += time.perf_counter() - tick
        cells = [f"{1000 * seconds[part] / rounds:.2f}" for part in parts]
        print(f"| {per_block} | " + " | ".join(cells) + f" | {1000 * sum(seconds.values()) / rounds:.2f} |",
              flush=True)


if __name__ == "__main__":
    app.run(main)
