"""Run records: the analyses a report reads, and the small records results/<task>/runs/ keeps.

`load_analyses` reads analysis.json files and run records alike and groups them by optimizer
and rate. A run record (`run_record`, `write_run_record`) is an analysis without its per-round
losses, which become their mean and 100 block means; `existing_run_record` tells whether a run
need not be redone. The other functions read either form: the `*_from_json` ones rebuild the
analysis's result types. NumPy only.
"""

import dataclasses
import json
import pathlib
import types

import numpy as np

from keras_taylor.experiments import TAYLOR_DIR, trained_epochs, upgrade_analysis
from keras_taylor.storage import atomic_write
from keras_taylor.analysis import GrowthFit, NeuronRegretBand, RegretCurve, SolverDiagnostics, fit_growth


_OPTIMIZER_ORDER = ("sgd", "momentum", "rmsprop", "adam", "signsgd")


def group_name(optimizer: str, learning_rate: float, rates_of_optimizer: int) -> str:
    """How reports name the runs of one optimizer at one rate: the optimizer alone when it ran at one
    rate, else with its rate ("sgd lr=2")."""
    return optimizer if rates_of_optimizer == 1 else f"{optimizer} lr={learning_rate:g}"


def optimizer_of(group: str) -> str:
    """The optimizer of a `group_name`."""
    return group.split(" lr=")[0]


def load_analyses(runs) -> dict:
    """`{group: [analysis dict per seed, by seed]}` of analyzed runs, a group per optimizer and rate
    (`group_name`: the optimizer's name when all its runs share one rate).

    Args:
        runs: A folder of run directories (every `*/analysis.json` in it), or a list of run
            directories and run records (`.json` files written by `write_run_record`), of this
            or any earlier schema (`keras_taylor.experiments.upgrade_analysis`).
    """
    by_optimizer = {}
    if isinstance(runs, (str, pathlib.Path)):
        paths = sorted(pathlib.Path(runs).glob("*/analysis.json"))
    else:
        paths = [pathlib.Path(run) if str(run).endswith(".json") else pathlib.Path(run) / "analysis.json"
                 for run in runs]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path.parent} has not been analyzed (no analysis.json).")
        analysis = upgrade_analysis(json.loads(path.read_text()))
        if path.name == "analysis.json":
            analysis["path"] = str(path.parent)
        config = analysis["run"]["config"]
        by_optimizer.setdefault(config["optimizer"].lower(), {}).setdefault(_learning_rate(config), []).append(analysis)
    if not by_optimizer:
        raise FileNotFoundError(f"{runs} holds no analyzed runs (*/analysis.json).")
    ordered = sorted(by_optimizer, key=lambda name: (_OPTIMIZER_ORDER + (name,)).index(name))
    return {group_name(name, rate, len(by_optimizer[name])): sorted(group, key=lambda a: a["run"]["config"]["seed"])
            for name in ordered for rate, group in sorted(by_optimizer[name].items())}


def loss_blocks(losses: np.ndarray, blocks: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """`(edges [K+1], means [K])`: the per-round losses averaged in `blocks` (or fewer) equal blocks of rounds."""
    losses = np.asarray(losses, np.float64)
    edges = np.linspace(0, len(losses), min(blocks, len(losses)) + 1).astype(int)
    return edges, np.array([losses[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])


@dataclasses.dataclass(frozen=True, eq=False)
class RoundLossSummary:
    """The training losses of a run's recorded rounds, in the three forms a report meets them.

    analysis.json keeps every round's loss (`"rounds": {"steps": [...], "loss": [...]}`); a run
    record keeps their count, mean and 100 block means (`{"count", "mean_loss", "block_edges",
    "block_loss"}`); a prefix of either (`first`) keeps its count and mean (`{"count", "mean_loss"}`).
    Every reader of an analysis's "rounds" goes through this class. (Not the analysis's
    `keras_taylor.analysis.RoundLosses`, which reads them from a recording.)

    Attributes:
        count: How many rounds.
        mean: Their mean loss.
        losses: `[count]` every round's loss (analysis.json only, else None).
        block_edges: `[K+1]` round indices bounding the blocks (None for a prefix).
        block_means: `[K]` the mean loss of each block (None for a prefix).
    """

    count: int
    mean: float
    losses: np.ndarray | None = None
    block_edges: np.ndarray | None = None
    block_means: np.ndarray | None = None

    @classmethod
    def of(cls, analysis: dict) -> "RoundLossSummary":
        """The rounds of an analysis.json, a run record or a prefix of either.

        Raises:
            ValueError: The analysis has no "rounds" (nothing was recorded at Taylor scale).
        """
        if "rounds" not in analysis:
            raise ValueError("The analysis has no per-round losses (its run recorded no Taylor data).")
        rounds = analysis["rounds"]
        if "loss" in rounds:
            losses = np.asarray(rounds["loss"], np.float64)
            edges, means = loss_blocks(losses)
            return cls(len(losses), float(np.mean(losses)), losses, edges, means)
        if "block_loss" in rounds:
            return cls(int(rounds["count"]), float(rounds["mean_loss"]), None,
                       np.asarray(rounds["block_edges"]), np.asarray(rounds["block_loss"]))
        return cls(int(rounds["count"]), float(rounds["mean_loss"]))

    def to_record(self) -> dict:
        """The run record's form (`{"count", "mean_loss"}` and the blocks, where known)."""
        record = {"count": self.count, "mean_loss": self.mean}
        if self.block_means is not None:
            record.update(block_edges=self.block_edges.tolist(), block_loss=self.block_means.tolist())
        return record

    def first(self, count: int) -> "RoundLossSummary":
        """The first `count` rounds: their mean exactly from every round's loss, else the mean of the
        whole blocks within them (the first block's when none is).

        Raises:
            ValueError: `count` is below 1, or this is a prefix (its blocks are not kept).
        """
        if count < 1:
            raise ValueError(f"A prefix needs at least one round. Received: count={count}")
        if self.losses is not None:
            return RoundLossSummary(count, float(np.mean(self.losses[:count])))
        if self.block_means is None:
            raise ValueError("A prefix of the rounds keeps no blocks to cut again.")
        inside = self.block_edges[1:] <= count
        mean = (float(np.average(self.block_means[inside], weights=np.diff(self.block_edges)[inside]))
                if inside.any() else float(self.block_means[0]))
        return RoundLossSummary(count, mean)

    def block_centers(self) -> np.ndarray:
        """`[K]` the middle round of each block."""
        if self.block_edges is None:
            raise ValueError("A prefix of the rounds keeps no blocks.")
        return (self.block_edges[:-1] + self.block_edges[1:]) / 2


def run_record(analysis: dict) -> dict:
    """One run's analysis as results/<task>/runs/ keeps it: everything but the per-round losses, which
    become their mean and 100 block means (all the report reads of them): about 100 KB whatever the
    training length, where a 50-epoch analysis.json holds 47,000 rounds."""
    record = {key: value for key, value in analysis.items() if key not in ("rounds", "path")}
    if "rounds" in analysis:
        record["rounds"] = RoundLossSummary.of(analysis).to_record()
    return record


_UNCOMPARED = ("verbose",)  # settings that do not change a run's numbers


def _settings(record: dict) -> dict:
    return {"train": {key: value for key, value in record["run"]["config"].items() if key not in _UNCOMPARED},
            "analysis": record["analysis_config"]}


def existing_run_record(path, train_config: dict, analysis_config: dict) -> bool:
    """Whether the run record `path` exists for these settings (a finished run need not be redone).

    Raises:
        ValueError: the record exists but was made with other settings (it is not overwritten:
            committed results are kept until deleted by hand).
    """
    path = pathlib.Path(path)
    if not path.exists():
        return False
    stored = _settings(json.loads(path.read_text()))
    wanted = _settings({"run": {"config": train_config}, "analysis_config": analysis_config})
    differing = [f"{part}.{key}: {stored[part].get(key)!r} ≠ {wanted[part].get(key)!r}"
                 for part in ("train", "analysis") for key in sorted(set(stored[part]) | set(wanted[part]))
                 if stored[part].get(key) != wanted[part].get(key)]
    if differing:
        raise ValueError(f"{path} was made with other settings ({'; '.join(differing)}); delete it to redo "
                         "that run, or write to another results directory.")
    return True


def write_run_record(analysis: dict, path) -> pathlib.Path:
    """Writes `run_record(analysis)` to `path` (atomically: a killed process leaves no partial record)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: handle.write(json.dumps(run_record(analysis), indent=1).encode()))
    return path


def _diagnostics(length: int, converged: bool) -> SolverDiagnostics:
    return SolverDiagnostics("from analysis.json", np.full(length, converged), np.zeros(length),
                             np.zeros(length, np.int64), np.full(length, -1), np.full(length, np.nan),
                             np.zeros(length, bool))


def curve_from_json(record: dict, scale: str, layer: str | None) -> RegretCurve:
    """The `RegretCurve` an analysis.json entry describes."""
    rounds = np.asarray(record["rounds"])
    return RegretCurve(scale, layer, None, rounds, np.asarray(record["cumulative_loss"]),
                       np.asarray(record["cumulative_taylor_optimum"]), np.asarray(record["regret"]),
                       _diagnostics(len(rounds), record["solver"]["all_converged"]))


def band_from_json(record: dict, layer: str) -> NeuronRegretBand:
    """The `NeuronRegretBand` an analysis.json entry describes."""
    rounds = np.asarray(record["rounds"])
    optimum, regret = np.asarray(record["cumulative_taylor_optimum"]), np.asarray(record["regret"])
    loss = np.asarray(record["cumulative_loss"])
    curves = tuple(RegretCurve("neuron", layer, neuron, rounds, loss, optimum[i], regret[i],
                               _diagnostics(len(rounds), record["solver_all_converged"]))
                   for i, neuron in enumerate(record["neurons"]))
    return NeuronRegretBand(layer, np.asarray(record["neurons"]), rounds, loss, optimum, regret, curves)


def fit_from_json(record: dict, curve: RegretCurve | None = None) -> GrowthFit:
    """The `GrowthFit` an analysis.json "fit" entry describes.

    An analysis.json written before the coefficient was stored has no "coefficient" in its
    fits. An "ok" fit's coefficient is then recomputed from `curve` by `fit_growth` over
    exactly the rounds the fit used (the same points and least squares, so the same value);
    without `curve` it is NaN, as it is for a fit whose status is not "ok".

    Args:
        record: The entry's "fit" dict.
        curve: The curve that was fitted (`curve_from_json` of the same entry); needed only for
            files without coefficients.

    Returns:
        The fit, its stored exponent, interval and status unchanged.

    Raises:
        ValueError: If the coefficient must be recomputed and `curve` lacks a round the fit used.
    """
    rounds_used = np.asarray(record["rounds_used"])
    coefficient = record.get("coefficient")
    if coefficient is None:
        coefficient = np.nan
        if record["status"] == "ok" and curve is not None:
            on_curve = np.isin(curve.rounds, rounds_used)
            if np.count_nonzero(on_curve) != len(np.unique(rounds_used)):
                raise ValueError("The fit used rounds that are not on the curve's grid: is it the fit of this curve?")
            used = types.SimpleNamespace(rounds=curve.rounds[on_curve], regret=curve.regret[on_curve])
            coefficient = fit_growth(used, fraction=1.0, confidence=record["confidence"]).coefficient
    return GrowthFit(np.nan if record["exponent"] is None else record["exponent"], tuple(record["interval"]),
                     record["confidence"], record["sign"], rounds_used, record["status"], float(coefficient))


def analyzed_layers(analyses: dict) -> list[str]:
    """The analyzed layers, in model order when the run's Taylor manifest is at hand."""
    first = next(iter(analyses.values()))[0]
    names = list(first.get("layers", {}))
    manifest_path = pathlib.Path(first.get("path", "")) / TAYLOR_DIR / "manifest.json"
    if manifest_path.exists():
        layers = json.loads(manifest_path.read_text()).get("model", {}).get("config", {}).get("layers", [])
        order = {(layer.get("name") or layer.get("config", {}).get("name")): i for i, layer in enumerate(layers)}
        names.sort(key=lambda name: (order.get(name, len(order)), name))
    return names


def round_count(analysis: dict) -> int:
    """How many rounds an analysis recorded."""
    return RoundLossSummary.of(analysis).count


def losses_by_epoch(analysis: dict) -> tuple[np.ndarray, np.ndarray]:
    """The per-round training loss averaged in 100 equal blocks of rounds, `(block centers in epochs,
    means)` (the recorded rounds are spread evenly over training: every k-th step)."""
    rounds = RoundLossSummary.of(analysis)
    return rounds.block_centers() * trained_epochs(analysis["run"]) / rounds.count, rounds.block_means


def run_rows(analyses: dict) -> list[dict]:
    """One row per run: the settings that tell runs apart and the final training loss (and accuracy)."""
    rows = []
    for runs in analyses.values():
        for run in runs:
            config, history = run["run"]["config"], run.get("history") or {}
            row = {"task": config["task"], "optimizer": config["optimizer"],
                   "learning_rate": _learning_rate(config), "seed": config["seed"], "epochs": trained_epochs(run["run"]),
                   "examples": run["run"].get("examples"), "probe_size": config.get("probe_size"),
                   "final_loss": run["run"]["final_epoch_loss"]}
            if config["task"] == "convnet":
                accuracy = history.get("accuracy") or [None]
                row["final_accuracy"] = accuracy[-1]
            rows.append(row)
    return rows


def _learning_rate(config: dict) -> float:
    """The rate a run trained at: its own, else its task's default (the run name holds it)."""
    from keras_taylor import experiments  # pylint: disable=import-outside-toplevel

    if config.get("learning_rate") is not None:
        return config["learning_rate"]
    known = {field.name for field in dataclasses.fields(experiments.TrainConfig)}
    return experiments.TrainConfig(**{key: value for key, value in config.items() if key in known}).resolved_learning_rate
