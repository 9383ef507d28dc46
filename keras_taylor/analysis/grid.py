"""The grids of round counts N at which regret is computed."""

import numpy as np

from keras_taylor.analysis.results import MissingStatisticsError


def log_grid(total_rounds: int, points: int = 20) -> np.ndarray:
    """`[K]` about `points` log-spaced round counts from 1 to `total_rounds` (every round if fewer)."""
    if total_rounds <= points:
        return np.arange(1, total_rounds + 1)
    return np.unique(np.round(np.geomspace(1, total_rounds, points)).astype(np.int64))


# ------------------------------------------------------------ quadratic minima


def select_checkpoints(available: np.ndarray, rounds) -> np.ndarray:
    """`rounds` (sorted, unique), all of which must be among the checkpoints `available`; default all of them."""
    if rounds is None:
        return available
    rounds = np.unique(np.asarray(rounds, np.int64))
    missing = np.setdiff1d(rounds, available)
    if missing.size:
        raise MissingStatisticsError(
            f"The running sums were written at rounds {available.tolist()}; no sums exist for rounds "
            f"{missing.tolist()} (choose the recorder's `checkpoints` to cover them)."
        )
    return rounds


def select_rounds(total_rounds: int, rounds, where) -> np.ndarray:
    """`[K]` the grid of a route that can stop at any round: `rounds`, or about 20 log-spaced points."""
    grid = log_grid(total_rounds) if rounds is None else np.unique(np.asarray(rounds, np.int64))
    if grid.size and (grid[0] < 1 or grid[-1] > total_rounds):
        raise MissingStatisticsError(f"{where} recorded {total_rounds} rounds; asked for rounds {grid.tolist()}.")
    return grid


def nearest_grid(available: np.ndarray, points: int) -> np.ndarray:
    """About `points` log-spaced N taken from `available` (sorted), always including its last."""
    wanted = log_grid(int(available[-1]), points)
    chosen = available[np.unique(np.searchsorted(available, wanted).clip(0, len(available) - 1))]
    return np.unique(np.append(chosen, available[-1]))
