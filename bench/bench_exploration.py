"""Exploration metrics on the paper's autoencoder scale: seconds per metric, and ratios to naive routes.

Times `keras_taylor.exploration` on N configurations of D probe points × M units
(default: the paper's MNIST autoencoder, 100 epochs × 60,000 points × 180
hidden units, 138 MB packed, 1.1 GB as booleans), reading them back from a run
directory as `ActivationRecorder` writes it. Then, on the first
--baseline_points points, times the same packed routes side by side with the
obvious NumPy routes on the unpacked booleans (pairwise `!=` counts, `diff`
counts, one `np.linalg.svd` per unit), and prints the ratios.

    python bench/bench_exploration.py [--rounds 100] [--points 60000] [--units 180] [--baseline_points 3000]

Configurations are random with a realistic structure: unit m is on with its own
probability p_m ~ U(0.02, 0.98); at each round a fraction of the entries (10% at
first, decaying geometrically to 1%, as training settles) is redrawn from
Bernoulli(p_m).
"""

import argparse
import platform
import shutil
import tempfile
import time

import numpy as np

from keras_taylor import exploration, storage
from keras_taylor.exploration import PackedConfigurations


def _random_packed(rounds: int, points: int, units: int, seed: int) -> np.ndarray:
    """uint8 `[N, D, ceil(M/8)]` configurations drawn round by round (never all N as booleans)."""
    rng = np.random.default_rng(seed)
    on_probability = rng.uniform(0.02, 0.98, size=units).astype(np.float32)
    redraw_rates = np.geomspace(0.10, 0.01, rounds)
    config = rng.random((points, units), dtype=np.float32) < on_probability
    packed = np.empty((rounds, points, -(-units // 8)), np.uint8)
    for n in range(rounds):
        if n:
            redraw = rng.random((points, units), dtype=np.float32) < redraw_rates[n]
            config = np.where(redraw, rng.random((points, units), dtype=np.float32) < on_probability, config)
        packed[n] = np.packbits(config, axis=1)
    return packed


def _seconds(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def _naive_min_hamming(configs: np.ndarray) -> np.ndarray:
    distances = [min(np.count_nonzero(configs[n] != configs[k]) for k in range(n)) for n in range(1, len(configs))]
    return np.array(distances)


def _naive_switches(configs: np.ndarray) -> np.ndarray:
    return np.sort(np.count_nonzero(configs[1:] != configs[:-1], axis=(0, 2)))


def _naive_log_volume(configs: np.ndarray, k: int) -> np.ndarray:
    volumes = []
    for m in range(configs.shape[2]):
        unit = configs[:, :, m].astype(np.float64)
        values = np.linalg.svd(unit - unit.mean(axis=0), compute_uv=False)
        # np.linalg.matrix_rank's tolerance: without it a rarely active unit's rounding
        # singular values (~1e-15) would enter the sum as finite logs.
        values[values <= values.max(initial=0.0) * max(unit.shape) * np.finfo(np.float64).eps] = 0.0
        with np.errstate(divide="ignore"):
            volumes.append(np.log(values[:k]).sum())
    return np.sort(volumes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="N, configurations (epochs).")
    parser.add_argument("--points", type=int, default=60_000, help="D, probe points.")
    parser.add_argument("--units", type=int, default=180, help="M, recorded units.")
    parser.add_argument("--k", type=int, default=50, help="Singular values in the log-volume.")
    parser.add_argument("--chunk_size", type=int, default=exploration.DEFAULT_CHUNK_POINTS)
    parser.add_argument("--baseline_points", type=int, default=3000, help="D for the side-by-side naive routes.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    packed = _random_packed(args.rounds, args.points, args.units, args.seed)
    generation = time.perf_counter() - start
    scratch = tempfile.mkdtemp(prefix="kt_bench_exploration_")
    try:
        writer = storage.RunWriter(f"{scratch}/run", {"kind": "activations", "num_units": args.units}, chunk_rows=1)
        for n, config in enumerate(packed):
            writer.append("configurations", step=n, epoch=n, packed=config)
        writer.close()
        del packed
        start = time.perf_counter()
        configs = PackedConfigurations.from_run(f"{scratch}/run")
        reading = time.perf_counter() - start
    finally:
        shutil.rmtree(scratch)

    chunk = {"chunk_size": args.chunk_size}
    full = {
        "min_hamming": _seconds(exploration.min_hamming, configs, **chunk),
        "switches": _seconds(exploration.switches, configs, **chunk),
        f"log_volume (k={args.k})": _seconds(exploration.log_volume, configs, k=args.k, **chunk),
    }

    subset = PackedConfigurations(configs.packed[:, :args.baseline_points].copy(), configs.num_units,
                                  configs.steps, configs.epochs)
    booleans = subset.unpack()
    side_by_side = {
        "min_hamming": (_seconds(exploration.min_hamming, subset, **chunk), _seconds(_naive_min_hamming, booleans)),
        "switches": (_seconds(exploration.switches, subset, **chunk), _seconds(_naive_switches, booleans)),
        f"log_volume (k={args.k})": (_seconds(exploration.log_volume, subset, k=args.k, **chunk),
                                     _seconds(_naive_log_volume, booleans, args.k)),
    }
    # The fast routes must agree with the naive ones, or the ratios mean nothing.
    np.testing.assert_array_equal(exploration.min_hamming(subset).distance[1:], _naive_min_hamming(booleans))
    np.testing.assert_allclose(exploration.switches(subset) * args.units * (args.rounds - 1),
                               _naive_switches(booleans))
    np.testing.assert_allclose(exploration.log_volume(subset, k=args.k), _naive_log_volume(booleans, args.k),
                               rtol=1e-9)

    print(f"CPU: {platform.machine()}, NumPy {np.__version__}; N={args.rounds} rounds, D={args.points} points, "
          f"M={args.units} units ({configs.packed.nbytes / 2**20:.0f} MiB packed), chunk {args.chunk_size} points; "
          f"generating took {generation:.1f} s, from_run {reading:.1f} s.")
    print()
    print(f"| metric | full size (s) | D={args.baseline_points}: packed route (s) | D={args.baseline_points}: "
          "naive on booleans (s) | naive / packed |")
    print("|---|---|---|---|---|")
    for name, seconds in full.items():
        fast, naive = side_by_side[name]
        print(f"| {name} | {seconds:.2f} | {fast:.3f} | {naive:.3f} | {naive / fast:.1f}× |")


if __name__ == "__main__":
    main()
