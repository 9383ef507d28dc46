"""The first layer's layer-scale CG: per-example operator against per-input operator, by number of epochs.

Builds chain factors shaped like the MNIST autoencoder's first layer (784-50-30-20-30-50-784,
batch 64, D distinct 785-pixel inputs 80% zeros, every input once per epoch in a fresh
order, the last round of each epoch short) directly as a `ChainFactors`, and times side by side

1. one matvec with H at N = every round: `ExampleGram` (M_e applied along the chain per
   example, as hidden layers still are) and `InputGram` (one pass over the distinct inputs
   with M̄_d = Σκ M_e summed per input by `InputSums`), and what each grid point costs
   besides its matvecs (building the operator and its Kronecker preconditioner);
2. the whole curve, `cg_chain_minima` on a log grid of N, with either operator and the same
   cap on CG iterations per grid point;
3. the parts of one per-input matvec at the largest D, dense against CSR input tables, and
   the batched M̄_d product in float64 against float32; and the whole matvec in one chunk
   against 4,096-input chunks on the cores (as `CGLayerSolver` runs it; run this table without
   OPENBLAS_NUM_THREADS=1, or the one-chunk matvec loses BLAS's own threads);
4. small data (D at most the 689 non-zero columns, `--exact_distinct`): the whole curve with
   CG started at the exact per-input minimizer (`independent_inputs_minimizer`, as the analysis
   runs) against CG from the previous grid point's solution (that start switched off here), both
   to the analysis's default cg_maxiter.

    python bench/bench_layer_cg.py [--distinct 10000,60000] [--epochs 1,5,20] [--curve_distinct 10000]

Each unit's mask is a random pattern per input (on for half of them) with 10% of its entries
flipped per example, and the kernels drift linearly between two random draws: the costs are
those of real factors, the CG iteration counts only roughly those of a real run.
"""

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy
import scipy.sparse
from absl import app
from absl import flags

from keras_taylor import chain_rule
from keras_taylor.analysis import chain_solvers, log_grid
from keras_taylor.analysis.chain_factors import BLOCK_ELEMENTS, ChainFactors, round_blocks
from keras_taylor.analysis.chain_solvers import (MATVEC_CHUNK_INPUTS, ExampleGram, InputGram, InputSums,
                                                 available_cores, cg_chain_minima, example_coefficients)

_DISTINCT = flags.DEFINE_list("distinct", ["10000", "60000"], "Distinct inputs D of the matvec table.")
_EPOCHS = flags.DEFINE_list("epochs", ["1", "5", "20"], "Epochs of rounds, for both tables.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Matvecs timed per operator (the median is printed).")
_CURVE_DISTINCT = flags.DEFINE_integer("curve_distinct", 10000, "Distinct inputs D of the whole-curve table.")
_CURVE_PER_EXAMPLE_EPOCHS = flags.DEFINE_integer(
    "curve_per_example_epochs", 20, "The largest number of epochs whose curve is also solved per example.")
_GRID_POINTS = flags.DEFINE_integer("grid_points", 12, "About this many log-spaced N per curve.")
_CG_RTOL = flags.DEFINE_float("cg_rtol", 1e-4, "CG tolerance of the curves (the analysis default).")
_CG_MAXITER = flags.DEFINE_integer(
    "cg_maxiter", 40, "CG iterations per grid point of the curves (the synthetic problems need hundreds to converge).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic factors.")
_EXACT_DISTINCT = flags.DEFINE_list("exact_distinct", ["96", "448", "689"],
                                     "Distinct inputs D of the small-data table (independent while D ≤ 689).")
_EXACT_MAXITER = flags.DEFINE_integer("exact_maxiter", 3000, "CG iterations per grid point of the small-data table.")
_TABLES = flags.DEFINE_list("tables", ["matvec", "curve", "parts", "exact"],
                            "Which tables to print (each takes minutes).")

HIDDEN = (50, 30, 20, 30, 50)
OUTPUTS = 784
BATCH = 64


def synthetic_factors(distinct: int, epochs: int, seed: int) -> ChainFactors:
    """First-layer factors of `epochs` epochs over `distinct` MNIST-like inputs, in the run's float32 and uint8."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:28, :28]
    # Ink is likelier near the centre and absent at the border: 20% of the pixels are non-zero, in 688 columns.
    ink = 0.8 * np.exp(-(((rows - 13.5) / 8.5) ** 2 + ((columns - 13.5) / 7.5) ** 2)).reshape(-1)
    ink[ink < 0.02] = 0.0
    pixels = np.where(rng.random((distinct, 784), np.float32) < ink, rng.random((distinct, 784), np.float32), 0)
    input_table = np.concatenate([pixels, np.ones((distinct, 1), np.float32)], axis=1)
    per_epoch = -(-distinct // BATCH)
    rounds = per_epoch * epochs
    valid = np.tile(np.arange(per_epoch * BATCH) < distinct, epochs).reshape(rounds, BATCH)
    input_id = np.zeros((rounds, BATCH), np.int64)
    input_id[valid] = np.concatenate([rng.permutation(distinct) for _ in range(epochs)])
    weight = np.where(valid, 1.0 / (valid.sum(axis=1, keepdims=True) * OUTPUTS), 0.0)
    # Training moves the weights slowly and a unit's mask is mostly a function of the input: kernels
    # drift from round to round and each example's masks flip 10% of its input's own pattern.
    drift = np.linspace(0.0, 1.0, rounds, dtype=np.float32)[:, None, None]
    widths = HIDDEN + (OUTPUTS,)
    kernels = []
    for below, above in zip(widths[:-1], widths[1:]):
        first_draw, last_draw = rng.standard_normal((2, below, above), np.float32) / np.sqrt(below)
        kernels.append((1 - 0.3 * drift) * first_draw + 0.3 * drift * last_draw)
    output_kernel = kernels.pop()
    multipliers = []
    for width in HIDDEN:
        pattern = rng.integers(0, 2, (distinct, width), np.uint8)[input_id]
        flips = (rng.random((rounds, BATCH, width), np.float32) < 0.1).astype(np.uint8)
        multipliers.append((pattern ^ flips) * valid[..., None].astype(np.uint8))
    return ChainFactors(
        round_counts=np.arange(1, rounds + 1), valid=valid, weight=weight,
        residual_sq=np.where(valid, rng.uniform(10, 60, valid.shape), 0.0),
        z=rng.standard_normal((rounds, BATCH, HIDDEN[0]), np.float32), multipliers=tuple(multipliers),
        kernels=tuple(kernels),
        output_gram=output_kernel @ np.swapaxes(output_kernel, 1, 2),
        q_top=0.01 * rng.standard_normal((rounds, BATCH, HIDDEN[-1]), np.float32),
        input_table=input_table, input_id=input_id, below=None, use_bias=False,
    )


def _timed(function, *args, **kwargs):
    """`(function(*args, **kwargs), its wall time in seconds)`."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _linear_coefficient(factors: ChainFactors, part: slice, jtj: np.ndarray) -> np.ndarray:
    """ℓ_e = q_e − M_e z_e `[r, B, u]` of the rounds `part` (formed for g whichever operator is used; not timed)."""
    multipliers, kernels = factors.chain(part)
    q = chain_rule.chain_q_all(factors.q_top[part].astype(np.float64), multipliers, kernels)[0]
    return example_coefficients(factors, part, jtj, q)[0]


def _summed(factors: ChainFactors) -> tuple[InputSums, float, float, np.ndarray]:
    """InputSums of every round, the seconds spent forming M_e and in `add`, and (Σκ M)/(Σκ)."""
    rounds = len(factors.valid)
    sums, jtj_seconds, add_seconds, jtj_sum = InputSums(factors, rounds), 0.0, 0.0, 0.0
    per_block = max(1, BLOCK_ELEMENTS // (factors.batch * (factors.size + 2 * factors.units ** 2)))
    for part in round_blocks(0, rounds, per_block):
        start = time.perf_counter()
        jtj = factors.jtj(part)
        jtj_seconds += time.perf_counter() - start
        jtj_sum = jtj_sum + np.einsum("rb,rbkl->kl", factors.weight[part], jtj)
        coefficient = _linear_coefficient(factors, part, jtj)
        start = time.perf_counter()
        sums.add(part, jtj, coefficient)
        add_seconds += time.perf_counter() - start
    return sums, jtj_seconds, add_seconds, jtj_sum / factors.weight.sum()


def matvec_table(distinct_counts, epoch_counts, repeats: int, seed: int) -> None:
    print("\nOne matvec with H at N = every round; each grid point's cost besides its matvecs (setup: the "
          "operator and its Kronecker preconditioner); over all rounds, the pass that forms every M_e (which "
          "both operators need for g and Σκ M) and the per-input sums' `add` on top of it.\n")
    print("| D | epochs | rounds | per example: matvec (s) | per input: matvec (s) | ratio | "
          "per example: setup (s) | per input: setup (s) | pass: form M_e (s) | per input: add (s) | "
          "max rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for distinct in distinct_counts:
        for epochs in epoch_counts:
            factors = synthetic_factors(distinct, epochs, seed)
            rounds = len(factors.valid)
            sums, jtj_seconds, add_seconds, mean_jtj = _summed(factors)
            start = time.perf_counter()
            per_input = InputGram(sums)
            per_input.kronecker_inverse(mean_jtj)
            input_setup = time.perf_counter() - start
            start = time.perf_counter()
            per_example = ExampleGram(factors, rounds)
            per_example.kronecker_inverse(mean_jtj)
            example_setup = time.perf_counter() - start
            vector = np.random.default_rng(seed).standard_normal(per_input.shape[0])
            example_product, input_product = per_example.matvec(vector), per_input.matvec(vector)
            difference = np.linalg.norm(example_product - input_product) / np.linalg.norm(example_product)
            example_seconds = _median_seconds(lambda: per_example.matvec(vector), repeats)
            input_seconds = _median_seconds(lambda: per_input.matvec(vector), repeats)
            print(f"| {distinct} | {epochs} | {rounds} | {example_seconds:.3f} | {input_seconds:.3f} | "
                  f"{example_seconds / input_seconds:.1f}× | {example_setup:.2f} | {input_setup:.2f} | "
                  f"{jtj_seconds:.1f} | {add_seconds:.1f} | {difference:.1e} |", flush=True)
            del factors, sums, per_input, per_example


def curve_table(distinct: int, epoch_counts, per_example_epochs: int, grid_points: int, rtol: float, maxiter: int,
                seed: int) -> None:
    print(f"\nThe whole curve: cg_chain_minima (cg_rtol={rtol:g}, at most {maxiter} CG iterations per grid point, "
          f"so that both operators do about the same work) on about {grid_points} log-spaced N, D = {distinct}; "
          f"per example only up to {per_example_epochs} epochs. The time includes the pass that forms every M_e.\n")
    print("| epochs | rounds | grid points | CG iterations (per example / per input) | per example (s) | "
          "per input (s) | ratio | max rel. diff of minima |")
    print("|---|---|---|---|---|---|---|---|")
    for epochs in epoch_counts:
        factors = synthetic_factors(distinct, epochs, seed)
        ends = log_grid(len(factors.valid), grid_points)
        per_input, input_seconds = _timed(cg_chain_minima, factors, ends, rtol, maxiter)
        example_iterations, example_time, ratio, difference = "—", "—", "—", "—"
        if epochs <= per_example_epochs:
            per_example, example_seconds = _timed(cg_chain_minima, factors, ends, rtol, maxiter, max_input_sums_bytes=0)
            example_iterations = str(int(per_example["iterations"].sum()))
            example_time, ratio = f"{example_seconds:.1f}", f"{example_seconds / input_seconds:.1f}×"
            difference = f"{np.max(np.abs(per_example['minimum'] / per_input['minimum'] - 1)):.1e}"
        print(f"| {epochs} | {len(factors.valid)} | {len(ends)} | {example_iterations} / "
              f"{int(per_input['iterations'].sum())} | {example_time} | {input_seconds:.1f} | {ratio} | "
              f"{difference} |", flush=True)
        del factors


def parts_table(distinct: int, repeats: int, seed: int) -> None:
    factors = synthetic_factors(distinct, 1, seed)
    sums, _, _, _ = _summed(factors)
    gram = InputGram(sums)
    dense_table, sparse_table = gram.table, scipy.sparse.csr_matrix(gram.table)
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((len(gram.columns), factors.units))
    pulled = rng.standard_normal((distinct, factors.units))
    jtj32 = gram.input_jtj.astype(np.float32)
    rows = [
        ("X̃V", lambda: dense_table @ weights, lambda: sparse_table @ weights, "dense", "CSR"),
        ("X̃ᵀY", lambda: dense_table.T @ pulled, lambda: sparse_table.T @ pulled, "dense", "CSR"),
        ("M̄_d y_d (einsum)", lambda: np.einsum("dkl,dl->dk", gram.input_jtj, pulled),
         lambda: np.einsum("dkl,dl->dk", jtj32, pulled.astype(np.float32)), "float64", "float32"),
    ]
    executor = ThreadPoolExecutor(available_cores())
    chunked, vector = InputGram(sums, executor), weights.reshape(-1)
    rows.append(("whole matvec", lambda: gram.matvec(vector), lambda: chunked.matvec(vector), "one chunk",
                 f"chunks of {MATVEC_CHUNK_INPUTS:,} on {available_cores()} threads"))
    print(f"\nParts of one per-input matvec, D = {distinct}, P' = {len(gram.columns)} columns, "
          f"{sparse_table.nnz / np.prod(sparse_table.shape):.1%} of the table non-zero.\n")
    print("| part | first | second | first (s) | second (s) | first / second |\n|---|---|---|---|---|---|")
    for name, first, second, first_name, second_name in rows:
        first_seconds, second_seconds = _median_seconds(first, repeats), _median_seconds(second, repeats)
        print(f"| {name} | {first_name} | {second_name} | {first_seconds:.3f} | {second_seconds:.3f} | "
              f"{first_seconds / second_seconds:.1f}× |", flush=True)


def exact_table(distinct_counts, epoch_counts, grid_points: int, rtol: float, maxiter: int, seed: int) -> None:
    print(f"\nSmall data: cg_chain_minima (cg_rtol={rtol:g}, at most {maxiter} CG iterations per grid point) on "
          f"about {grid_points} log-spaced N, CG started at the exact per-input minimizer where the prefix's inputs "
          "are independent (as the analysis runs) against CG warm-started from the previous grid point only. "
          "The time includes the pass that forms every M_e.\n")
    print("| D | epochs | rounds | grid points | CG iterations (warm start / exact start) | warm start (s) | "
          "exact start (s) | ratio | max rel. diff of minima |")
    print("|---|---|---|---|---|---|---|---|---|")
    exact_start = chain_solvers.independent_inputs_minimizer
    for distinct in distinct_counts:
        for epochs in epoch_counts:
            factors = synthetic_factors(distinct, epochs, seed)
            ends = log_grid(len(factors.valid), grid_points)
            exact, exact_seconds = _timed(cg_chain_minima, factors, ends, rtol, maxiter)
            chain_solvers.independent_inputs_minimizer = lambda *inputs: None
            try:
                warm, warm_seconds = _timed(cg_chain_minima, factors, ends, rtol, maxiter)
            finally:
                chain_solvers.independent_inputs_minimizer = exact_start
            difference = np.max(np.abs(warm["minimum"] / exact["minimum"] - 1))
            print(f"| {distinct} | {epochs} | {len(factors.valid)} | {len(ends)} | {int(warm['iterations'].sum())} / "
                  f"{int(exact['iterations'].sum())} | {warm_seconds:.1f} | {exact_seconds:.1f} | "
                  f"{warm_seconds / exact_seconds:.1f}× | {difference:.1e} |", flush=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    distinct_counts = [int(value) for value in _DISTINCT.value]
    epoch_counts = [int(value) for value in _EPOCHS.value]
    print(f"CPU: {platform.machine()}, {os.cpu_count()} cores; NumPy {np.__version__}, SciPy {scipy.__version__}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    if "matvec" in _TABLES.value:
        matvec_table(distinct_counts, epoch_counts, _REPEATS.value, _SEED.value)
    if "curve" in _TABLES.value:
        curve_table(_CURVE_DISTINCT.value, epoch_counts, _CURVE_PER_EXAMPLE_EPOCHS.value, _GRID_POINTS.value,
                    _CG_RTOL.value, _CG_MAXITER.value, _SEED.value)
    if "parts" in _TABLES.value:
        parts_table(max(distinct_counts), _REPEATS.value, _SEED.value)
    if "exact" in _TABLES.value:
        exact_table([int(value) for value in _EXACT_DISTINCT.value], epoch_counts, _GRID_POINTS.value,
                    _CG_RTOL.value, _EXACT_MAXITER.value, _SEED.value)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    app.run(main)
