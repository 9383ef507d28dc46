"""One pass over a dense chain's streamed rounds that serves every layer and scale asked of it (route CHAIN).

Each block of rounds forms M_k = J_kᵀJ_k and q_k of the asked layers in one pass down the
chain (`ChainFactors.products`: M of a lower layer costs every M above it), and hands
them to one solver per (layer, scale), which adds what it needs; at each grid point every
solver solves its prefix. The rounds are read and the chain is multiplied out once,
however many layers and scales are analyzed.
"""

import numpy as np

from keras_taylor.analysis.chain_factors import ChainFactors, round_blocks
from keras_taylor.analysis.neuron_sums import NeuronSums
from keras_taylor.analysis.route import QUADRATIC_INFO

# Float64 elements of one block's temporaries (64 MiB): blocks of a few rounds keep each solver's GEMM
# over the block's examples large enough to run at BLAS speed (on the MNIST autoencoder 6 and 13
# rounds per block cost the same: bench/bench_chain_pass.py).
PASS_BLOCK_ELEMENTS = 1 << 23


def run_chain_pass(factors: ChainFactors, solvers, ends: np.ndarray) -> None:
    """Feeds the rounds [0, ends[-1]) to `solvers` a block at a time and closes each at every grid point.

    Args:
        factors: The chain factors of the lowest asked layer (with `upper` z if a solver sits above it).
        solvers: `(offset, solver)` pairs: the solver of layer c_{j+offset} (`factors.above(offset)`),
            with `add(part, jtj [r, B, u, u], q [r, B, u])`, `close(position)` and `row_elements()`.
        ends: `[G]` nondecreasing; grid point i is the prefix of rounds [0, ends[i]).
    """
    offsets = sorted({offset for offset, _ in solvers})
    if not offsets:
        return
    widths = [multiplier.shape[2] for multiplier in factors.multipliers[offsets[0]:]]
    per_row = 2 * sum(width * width for width in widths) + max(solver.row_elements() for _, solver in solvers)
    rounds_per_block = max(1, PASS_BLOCK_ELEMENTS // (factors.batch * per_row))
    start = 0
    for position, end in enumerate(ends):
        for part in round_blocks(start, end, rounds_per_block):
            jtj, qs = factors.products(part, offsets)
            for offset, solver in solvers:
                solver.add(part, jtj[offset], qs[offset])
        for _, solver in solvers:
            solver.close(position)
        start = end


class NeuronChainSolver:
    """The neuron scale of one chain layer: per example z, q_α, c = (JᵀJ)_αα and x̃ of the K
    asked neurons, summed as `NeuronSums` (per distinct input for the first layer)."""

    def __init__(self, factors: ChainFactors, members, points: int):
        self.factors = factors
        self.members = np.asarray(members, np.int64)
        table = None if factors.input_table is None else factors.input_table.astype(np.float64)
        self.sums = NeuronSums(table, len(self.members), size=factors.size)
        self.minima = np.full((len(self.members), points), np.nan)
        self.info = {key: np.zeros((len(self.members), points)) for key in QUADRATIC_INFO}

    def row_elements(self) -> int:
        return (self.factors.size + 1) * len(self.members) + self.factors.size

    def add(self, part: slice, jtj: np.ndarray, q: np.ndarray) -> None:
        factors, valid = self.factors, self.factors.valid[part]
        curvature = np.einsum("rbii->rbi", jtj)[valid][:, self.members]
        rows = {"input_id": factors.input_id[part][valid]} if factors.input_table is not None else {
            "features": factors.features(part)[valid]}
        self.sums.add(factors.weight[part][valid], factors.z[part][valid][:, self.members],
                      q[valid][:, self.members], curvature, factors.residual_sq[part][valid], **rows)

    def close(self, position: int) -> None:
        minimum, info = self.sums.close()
        self.minima[:, position] = minimum
        for key in self.info:
            self.info[key][:, position] = info[key]
