"""The report's per-layer exploration numbers, claim rows and analysis.json readers, on hand-made analyses."""

import json
import re

import numpy as np
import pytest

from conftest import assert_close
from keras_taylor import analysis, experiments, report


def _exploration(per_layer_values: dict) -> dict:
    """An analysis' exploration record whose layers have the given log-volumes (None = −inf), kept as
    the analysis keeps them (`experiments.log_volume_summary`)."""
    per_layer = {}
    for layer, values in per_layer_values.items():
        volumes = np.sort([-np.inf if v is None else v for v in values])
        per_layer[layer] = {"log_volume": experiments.log_volume_summary(volumes, report.top_count(len(values)))}
    return {"per_layer": per_layer}


def test_top_count_is_the_papers_share_of_a_layer():
    assert report.top_count(180) == 40
    assert report.top_count(50) == 11
    assert report.top_count(2) == 1


def test_per_layer_top_means_over_seeds():
    rng = np.random.default_rng(7)
    seeds = [rng.normal(100, 10, 50) for _ in range(3)]
    per_layer = report.per_layer_exploration([_exploration({"relu_1": list(values)}) for values in seeds])
    record = per_layer["relu_1"]
    assert record["units"] == 50 and record["top_units"] == 11
    tops = [np.sort(values)[-11:].mean() for values in seeds]
    assert record["top_log_volume_mean"]["mean"] == pytest.approx(np.mean(tops))
    assert record["mean_finite_log_volume"]["mean"] == pytest.approx(np.mean([v.mean() for v in seeds]))


def test_a_layer_with_too_few_finite_units_has_no_top_mean():
    values = [None] * 45 + [1.0, 2.0, 3.0, 4.0, 5.0]  # 5 finite < 11 top units
    record = report.per_layer_exploration([_exploration({"relu_1": values})])["relu_1"]
    assert record["top_log_volume_mean"]["n"] == 0 and record["units_with_zero_log_volume"]["mean"] == 45


def test_a_layer_summarized_without_its_top_values_is_left_out():
    """Analyses made before the per-layer top values were kept hold a layer's summary only."""
    exploration = _exploration({"relu_1": [1.0, 2.0, 3.0], "relu_2": [None, 4.0, 5.0, 6.0]})
    del exploration["per_layer"]["relu_2"]["log_volume"]["top_finite"]
    assert list(report.per_layer_exploration([exploration])) == ["relu_1"]


def test_the_top_means_read_from_summaries_are_those_of_every_unit(rng):
    """The network's top-40 and each layer's top-share means, read from the records' summaries, against
    the means of every unit's sorted log-volume (fresh random volumes, some −inf, layers of many sizes)."""
    explorations, layers = [], {"small": 7, "paper": 180, "wide": 2_000}
    for _ in range(3):
        units = {name: np.where(rng.random(size) < 0.2, -np.inf, rng.normal(50, 10, size)) for name, size in layers.items()}
        every = np.sort(np.concatenate(list(units.values())))
        entry = _exploration({name: [None if np.isinf(v) else v for v in values] for name, values in units.items()})
        entry.update(log_volume=experiments.log_volume_summary(every, report.TOP_NEURONS), units=units, every=every)
        explorations.append(entry)
    per_layer = report.per_layer_exploration(explorations)
    for name, size in layers.items():
        finite = [np.sort(e["units"][name][np.isfinite(e["units"][name])]) for e in explorations]
        count = report.top_count(size)
        expected = [values[-count:].mean() for values in finite if values.size >= count]
        assert per_layer[name]["units"] == size and per_layer[name]["top_units"] == count
        assert per_layer[name]["top_log_volume_mean"]["n"] == len(expected)
        assert per_layer[name]["top_log_volume_mean"]["mean"] == pytest.approx(np.mean(expected), rel=1e-12)
    for entry in explorations:
        finite = entry["every"][np.isfinite(entry["every"])]
        assert report.paper_claims._top_mean(entry["log_volume"], report.TOP_NEURONS) == pytest.approx(
            finite[-report.TOP_NEURONS:].mean(), rel=1e-12)
    kept_too_few = experiments.log_volume_summary(explorations[0]["every"], 5)
    with pytest.raises(ValueError, match="keeps the top 5 finite values; 40 are asked for"):
        report.paper_claims._top_mean(kept_too_few, report.TOP_NEURONS)


def _summary(adam_tops: dict, rmsprop_tops: dict) -> dict:
    def entry(tops):
        return {"exploration": {"per_layer": {
            layer: {"top_units": 4, "top_log_volume_mean": {"mean": value, "std": 0.0, "n": 3}}
            for layer, value in tops.items()}}}
    return {"adam": entry(adam_tops), "rmsprop": entry(rmsprop_tops)}


def test_top_per_layer_row_verdicts():
    row = report.top_per_layer_row(_summary({"a": 100.0, "b": 50.0}, {"a": 105.0, "b": 52.0}))
    assert row["verdict"] == "reproduced"
    row = report.top_per_layer_row(_summary({"a": 100.0, "b": 50.0}, {"a": 105.0, "b": 80.0}))
    assert row["verdict"] == "not reproduced (within 10% in 1 of 2 layers)"
    assert "b (top 4): adam 50, rmsprop 80 (38% apart)" in row["measured"]
    row = report.top_per_layer_row({"adam": {}, "rmsprop": {}})
    assert row["verdict"] == "not tested"


def _exponent_summary(layer_means, neuron_means) -> dict:
    return {"regret_exponents": {
        f"layer_{index}": {"layer": {"mean": layer, "std": 0.0, "n": 1}, "neuron": {"mean": neuron, "std": 0.0, "n": 4},
                           "layer_fit_status": [] if layer is None else ["ok"], "layer_fit_sign": [1]}
        for index, (layer, neuron) in enumerate(zip(layer_means, neuron_means))}}


def test_growth_claim_judges_the_layer_scale_else_the_neuron_scale():
    rows = report.claim_rows({"sgd": _exponent_summary([0.5, 0.55], [0.9, 0.1])})
    assert rows[0]["verdict"] == "reproduced (layer-scale means)"
    rows = report.claim_rows({"sgd": _exponent_summary([None, None], [0.5, 0.8])})  # no layer scale recorded
    assert rows[0]["verdict"] == "not reproduced: 1 neuron-scale mean exponents above 0.65, 0 below 0.35"
    assert "neuron means 0.50–0.80" in rows[0]["measured"]


def _analysis_json_curve(rng) -> dict:
    """A layer-scale curve entry of analysis.json whose regret grows like c·N^a (either sign)."""
    rounds = np.unique(np.geomspace(1, int(rng.integers(500, 5000)), 16).astype(np.int64))
    regret = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 5.0) * rounds ** rng.uniform(0.3, 0.9)
    regret = regret * np.exp(rng.normal(0.0, 0.2, rounds.size))
    loss = rounds * rng.uniform(0.5, 1.0, rounds.size)
    return {"rounds": rounds.tolist(), "cumulative_loss": loss.tolist(),
            "cumulative_taylor_optimum": (loss - regret).tolist(), "regret": regret.tolist(),
            "solver": {"all_converged": True}}


def test_fit_from_json_reads_the_coefficient_and_recomputes_it_for_files_without_one(rng):
    for _ in range(3):
        curve = report.curve_from_json(json.loads(json.dumps(_analysis_json_curve(rng))), "layer", "dense")
        fit = analysis.fit_growth(curve)
        record = json.loads(json.dumps(fit.to_json()))
        read = report.fit_from_json(record)
        assert read.coefficient == fit.coefficient and read.exponent == fit.exponent and read.status == "ok"
        np.testing.assert_array_equal(read.rounds_used, fit.rounds_used)

        older = {key: value for key, value in record.items() if key != "coefficient"}
        recomputed = report.fit_from_json(older, curve)
        assert_close(recomputed.coefficient, fit.coefficient, "float64")
        assert recomputed.exponent == fit.exponent and recomputed.interval == fit.interval
        assert np.isnan(report.fit_from_json(older).coefficient)
        with pytest.raises(ValueError, match="grid"):
            report.fit_from_json({**older, "rounds_used": (fit.rounds_used + 1).tolist()}, curve)
    nan = float("nan")
    unfitted = {"exponent": None, "interval": [nan, nan], "confidence": 0.95, "sign": 0, "status": "sign changes",
                "rounds_used": [10, 20, 40]}
    assert np.isnan(report.fit_from_json(unfitted, curve).coefficient)


SCALES = {"first_look": ("autoencoder", 10000, 1, False), "five_epochs": ("autoencoder", 60000, 5, False),
          "paper": ("autoencoder", 60000, 50, True), "convnet_subset": ("convnet", 10000, 60, False)}


@pytest.mark.parametrize("task,examples,epochs,at_scale", SCALES.values(), ids=SCALES.keys())
def test_the_report_says_whether_it_tests_the_paper(task, examples, epochs, at_scale):
    at_paper_scale, sentence = report.scale_statement(task, examples, epochs)
    assert at_paper_scale is at_scale
    assert f"{examples:,} training examples × {epochs} epoch" in sentence
    assert ("do not test the paper's claims" in sentence) is not at_scale


def test_runs_of_different_lengths_are_judged_on_the_shortest():
    at_paper_scale, sentence = report.scale_statement("autoencoder", 60000, 40, longest=60)
    assert not at_paper_scale and "60,000 training examples × 40–60 epochs (the shortest run: 40)" in sentence
    assert report.scale_statement("autoencoder", 60000, 50, longest=60)[0]
    assert report.scale_statement("convnet", 10000, 34, longest=34)[1] == report.scale_statement("convnet", 10000, 34)[1]


@pytest.mark.parametrize("rounds", [60, 4690], ids=["each_round", "blocks"])
def test_fig6_losses_are_placed_by_epoch_alike_from_an_analysis_and_its_run_record(rounds, rng):
    losses = rng.uniform(0.5, 2.0, size=rounds)
    analysis = {"run": {"config": {"epochs": 3, "optimizer": "sgd", "seed": 0}}, "analysis_config": {},
                "rounds": {"steps": list(range(rounds)), "loss": losses.tolist()}}
    epochs, means = report.losses_by_epoch(analysis)
    assert len(means) == min(rounds, 100) and 0 < epochs[0] < epochs[-1] < 3
    edges = np.linspace(0, rounds, len(means) + 1).astype(int)
    np.testing.assert_allclose(means, [losses[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    np.testing.assert_allclose(epochs, (edges[:-1] + edges[1:]) / 2 * 3 / rounds)
    from_record = report.losses_by_epoch(report.run_record(analysis))
    np.testing.assert_allclose(from_record[0], epochs)
    np.testing.assert_allclose(from_record[1], means)


@pytest.mark.parametrize("rounds", [60, 4690], ids=["each_round", "blocks"])
def test_round_losses_read_alike_from_an_analysis_its_run_record_and_their_prefixes(rounds, rng):
    losses = rng.uniform(0.5, 2.0, size=rounds)
    analysis = {"rounds": {"steps": list(range(rounds)), "loss": losses.tolist()}}
    full, record = report.RoundLossSummary.of(analysis), report.RoundLossSummary.of(report.run_record(analysis))
    assert full.count == record.count == rounds and record.losses is None
    assert full.mean == pytest.approx(losses.mean()) and record.mean == pytest.approx(losses.mean())
    np.testing.assert_array_equal(record.block_edges, full.block_edges)
    np.testing.assert_allclose(record.block_means, full.block_means)
    edges = full.block_edges
    for block in (1, len(edges) // 3, len(edges) - 1):  # a prefix ending on a block edge: the same mean
        count = int(edges[block])
        assert full.first(count).mean == pytest.approx(losses[:count].mean())
        assert record.first(count).mean == pytest.approx(losses[:count].mean())
        assert record.first(count).to_record() == {"count": count, "mean_loss": record.first(count).mean}
    inside = int(edges[len(edges) // 2]) + 1  # off an edge (blocks of several rounds): the whole blocks within
    expected = losses[: int(edges[len(edges) // 2])] if rounds > 100 else losses[:inside]
    assert record.first(inside).mean == pytest.approx(expected.mean())
    assert report.RoundLossSummary.of({"rounds": record.first(inside).to_record()}).count == inside
    with pytest.raises(ValueError, match="no blocks"):
        record.first(inside).first(2)
    with pytest.raises(ValueError, match="at least one round"):
        full.first(0)
    with pytest.raises(ValueError, match="per-round losses"):
        report.RoundLossSummary.of({"run": {}})


def _exploration_summary(rng, records: int) -> dict:
    """An analysis.json "exploration" entry with random metrics over `records` activation records."""
    def summary(values):
        return {"mean_finite": float(np.mean(values)), "num_infinite": 0,
                "quantiles": np.quantile(values, np.linspace(0, 1, 101)).tolist()}

    volumes = np.sort(rng.normal(size=12))
    return {"steps": list(range(records)), "min_hamming_normalized": [None] + rng.random(records - 1).tolist(),
            "switches": summary(rng.random(30)), "log_volume": experiments.log_volume_summary(volumes, report.TOP_NEURONS),
            "per_layer": {}, "log_volume_k": 3, "num_units": 12,
            "num_points": 30}


def _run_analysis(rng, optimizer: str, seed: int, epochs: int = 10, rounds_per_epoch: int = 40,
                  learning_rate: float = 0.1) -> dict:
    """A synthetic analysis.json of an `epochs`-epoch run: a layer and a neuron band on a log grid,
    per-round losses, an epoch history and exploration over the whole run and its 1-2-5 prefixes."""
    rounds = rounds_per_epoch * epochs
    # Log-spaced, with the end of the first epoch and of the fifth on the grid (a prefix keeps its last round).
    grid = np.unique(np.concatenate([np.geomspace(1, rounds, 14).astype(np.int64), [rounds_per_epoch, 5 * rounds_per_epoch]]))
    losses = rng.uniform(0.5, 1.0, rounds)
    cumulative = np.cumsum(losses)[grid - 1]
    layer_regret = rng.uniform(1, 2) * grid ** rng.uniform(0.3, 0.8) * np.exp(rng.normal(0, 0.1, grid.size))
    neuron_regret = rng.uniform(0.1, 1, (3, 1)) * grid ** rng.uniform(0.2, 0.9, (3, 1))
    layer = {"rounds": grid.tolist(), "cumulative_loss": cumulative.tolist(),
             "cumulative_taylor_optimum": (cumulative - layer_regret).tolist(), "regret": layer_regret.tolist(),
             "solver": {"all_converged": True}}
    layer["fit"] = analysis.fit_growth(report.curve_from_json(layer, "layer", "dense")).to_json()
    neuron = {"neurons": [0, 2, 5], "rounds": grid.tolist(), "cumulative_loss": cumulative.tolist(),
              "cumulative_taylor_optimum": (cumulative - neuron_regret).tolist(), "regret": neuron_regret.tolist(),
              "solver_all_converged": True}
    band = report.band_from_json(neuron, "dense")
    neuron.update(fits=[analysis.fit_growth(curve).to_json() for curve in band.curves],
                  fit_status_counts={"ok": 3}, negative_final_regret=0)
    history = {"epoch": list(range(epochs)), "loss": np.sort(rng.uniform(0.1, 1, epochs))[::-1].tolist()}
    return {"run": {"config": {"task": "autoencoder", "optimizer": optimizer, "learning_rate": learning_rate, "seed": seed,
                               "epochs": epochs, "probe_size": 30},
                    "final_epoch_loss": history["loss"][-1], "examples": 100, "data": "synthetic"},
            "analysis_config": {"fit_fraction": 0.5}, "history": history, "grid": grid.tolist(),
            "rounds": {"steps": list(range(rounds)), "loss": losses.tolist()},
            "layers": {"dense": {"layer": layer, "neuron": neuron}},
            "exploration": _exploration_summary(rng, epochs + 1),
            "exploration_by_length": {str(length): _exploration_summary(rng, length + 1) for length in (1, 2, 5)}}


def test_a_prefix_is_the_runs_first_epochs_refitted(rng):
    run = _run_analysis(rng, "sgd", 0)
    run["run"]["epochs_trained"] = 10  # as done.json records it since the accuracy plateau stop
    assert report.prefix_analysis(run, 10) is run
    for epochs in (1, 5):
        cut = report.prefix_analysis(run, epochs)
        last = 40 * epochs
        layer, neuron = cut["layers"]["dense"]["layer"], cut["layers"]["dense"]["neuron"]
        kept = np.asarray(run["grid"]) <= last
        np.testing.assert_array_equal(layer["rounds"], np.asarray(run["grid"])[kept])
        np.testing.assert_array_equal(layer["regret"], np.asarray(run["layers"]["dense"]["layer"]["regret"])[kept])
        assert layer["fit"] == analysis.fit_growth(report.curve_from_json(layer, "layer", "dense")).to_json()
        assert max(layer["fit"]["rounds_used"]) <= last
        assert np.asarray(neuron["regret"]).shape == (3, kept.sum())
        assert neuron["fits"] == [analysis.fit_growth(c).to_json() for c in report.band_from_json(neuron, "dense").curves]
        exponents = [fit["exponent"] for fit in neuron["fits"]]
        assert neuron["exponent_mean"] == pytest.approx(np.nanmean(exponents))  # the prefix's, not the run's
        assert neuron["fit_status_counts"] == {"ok": 3}
        assert cut["run"]["final_epoch_loss"] == run["history"]["loss"][epochs - 1]
        assert cut["run"]["config"]["epochs"] == epochs and cut["run"]["epochs_trained"] == epochs
        assert cut["exploration"] is run["exploration_by_length"][str(epochs)]
        assert cut["rounds"]["mean_loss"] == pytest.approx(np.mean(run["rounds"]["loss"][:last]))
        # A run record keeps 100 block means: at a block boundary its prefix mean is the same.
        from_record = report.prefix_analysis(report.run_record(run), epochs)
        assert from_record["rounds"]["mean_loss"] == pytest.approx(cut["rounds"]["mean_loss"])
        assert from_record["layers"] == cut["layers"]
    assert report.prefix_analysis(run, 10)["exploration"] is run["exploration"]
    for bad in (0, 11):
        with pytest.raises(ValueError, match="epochs"):
            report.prefix_analysis(run, bad)


def test_verdicts_by_length_judge_each_prefix_and_the_whole_runs(rng, tmp_path):
    analyses = {optimizer: [_run_analysis(rng, optimizer, seed) for seed in range(2)]
                for optimizer in ("sgd", "rmsprop", "adam")}
    assert report.lengths_measured(analyses) == [1, 2, 5, 10]
    by_length = report.verdicts_by_length(analyses)
    assert by_length[10] == report.claim_rows(report.claims(analyses))
    cut = {group: [report.prefix_analysis(run, 2) for run in runs] for group, runs in analyses.items()}
    assert by_length[2] == report.claim_rows(report.claims(cut))
    # A prefix that one run lacks is not judged.
    del analyses["adam"][1]["exploration_by_length"]["5"]
    assert report.lengths_measured(analyses) == [1, 2, 10]
    quantities = report.quantities_by_length(analyses)
    losses = quantities["final-epoch training loss"]["sgd"][0]
    np.testing.assert_array_equal(losses[0], [1, 2, 10])
    np.testing.assert_allclose(losses[1], np.asarray(analyses["sgd"][0]["history"]["loss"])[[0, 1, 9]])

    paths = []
    for runs in analyses.values():
        for run in runs:
            paths.append(tmp_path / f"{run['run']['config']['optimizer']}_{run['run']['config']['seed']}.json")
            paths[-1].write_text(json.dumps(report.run_record(run)))
    report.write_report(paths, tmp_path / "report", "a command")
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert list(summary["verdicts_by_length"]) == ["1", "2", "10"]
    assert [row["final_loss"] for row in summary["runs"]][:2] == [run["run"]["final_epoch_loss"]
                                                                 for run in analyses["sgd"]]
    assert {row["learning_rate"] for row in summary["runs"]} == {0.1}
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "## Verdicts by training length" in readme and "| 1 epoch | 2 epochs | 10 epochs |" in readme
    assert (tmp_path / "report" / "verdicts_by_length.png").exists()


def test_runs_stopped_at_different_epochs_are_reported_together(rng, tmp_path):
    # Runs stopped at an accuracy plateau (a cap of 60 epochs): their curves differ in length.
    paths = []
    for optimizer, seed, epochs in (("sgd", 0, 10), ("sgd", 1, 7), ("adam", 0, 10), ("adam", 1, 8)):
        run = _run_analysis(rng, optimizer, seed, epochs=epochs)
        run["run"]["config"]["epochs"], run["run"]["epochs_trained"] = 60, epochs
        paths.append(tmp_path / f"{optimizer}_{seed}.json")
        paths[-1].write_text(json.dumps(report.run_record(run)))
    report.write_report(paths, tmp_path / "report", "a command")
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert [row["epochs"] for row in summary["runs"]] == [10, 7, 10, 8]
    assert list(summary["verdicts_by_length"]) == ["1", "2", "5"]  # the prefixes every run has
    assert "× 7–10 epochs (the shortest run: 7)" in (tmp_path / "report" / "README.md").read_text()
    for name in ("fig6_training_loss", "fig4_regret_by_optimizer", "fig5_exploration", "verdicts_by_length"):
        assert (tmp_path / "report" / f"{name}.png").exists(), name
    analyses = report.load_analyses(paths)
    assert report.training_loss_title(analyses).endswith("(280–400), mean ± std over the seeds reaching each epoch")
    same = {group: runs[:1] for group, runs in analyses.items()}
    assert report.training_loss_title(same).endswith("(400), mean ± std over seeds")
    # Each optimizer's seeds of one length (SGD's 7 and 10 epochs apart, Adam's both 8): over seeds.
    per_optimizer = {"sgd": [run for run in analyses["sgd"] if run["run"]["epochs_trained"] == 10],
                     "adam": [run for run in analyses["adam"] if run["run"]["epochs_trained"] == 8] * 2}
    assert report.training_loss_title(per_optimizer).endswith("(320–400), mean ± std over seeds")


def test_the_training_accuracy_is_reported_where_the_runs_logged_it(rng, tmp_path):
    analyses = {optimizer: [_run_analysis(rng, optimizer, seed) for seed in range(2)] for optimizer in ("sgd", "adam")}
    for run in analyses["sgd"]:
        run["history"]["accuracy"] = np.sort(rng.uniform(0.1, 1, 10)).tolist()
    summary = report.claims(analyses)
    assert summary["sgd"]["final_training_accuracy"]["mean"] == pytest.approx(
        np.mean([run["history"]["accuracy"][-1] for run in analyses["sgd"]]))
    assert "final_training_accuracy" not in summary["adam"]
    cut = report.claims({group: [report.prefix_analysis(run, 5) for run in runs] for group, runs in analyses.items()})
    assert cut["sgd"]["final_training_accuracy"]["mean"] == pytest.approx(
        np.mean([run["history"]["accuracy"][4] for run in analyses["sgd"]]))
    text = report.markdown(summary, analyses, "a command", [])
    assert "| final-epoch training accuracy |" in text and "| adam |" in text.split("## Training loss")[1]
    without = {"adam": analyses["adam"]}
    assert "training accuracy" not in report.markdown(report.claims(without), without, "a command", [])


def test_sgd_at_several_rates_is_judged_rate_by_rate(rng, tmp_path):
    runs = [_run_analysis(rng, "sgd", seed, learning_rate=rate) for rate in (8.0, 2.0) for seed in range(2)]
    runs += [_run_analysis(rng, optimizer, 0) for optimizer in ("rmsprop", "adam")]
    paths = []
    for index, run in enumerate(runs):
        paths.append(tmp_path / f"{index}.json")
        paths[-1].write_text(json.dumps(report.run_record(run)))
    analyses = report.load_analyses(paths)
    assert list(analyses) == ["sgd lr=2", "sgd lr=8", "rmsprop", "adam"]
    assert [run["run"]["config"]["seed"] for run in analyses["sgd lr=8"]] == [0, 1]
    assert {run["run"]["config"]["learning_rate"] for run in analyses["sgd lr=2"]} == {2.0}
    claims = [row["claim"] for row in report.claim_rows(report.claims(analyses))]
    for rate in ("2", "8"):
        assert f"RMSProp explores more than SGD at lr={rate} on all three metrics" in claims
        assert f"Adaptive optimizers (RMSProp, Adam) reach a lower training loss than SGD at lr={rate}" in claims
    assert not any(claim.endswith("than SGD on all three metrics") for claim in claims)
    single = report.load_analyses(paths[:2] + paths[4:])
    assert list(single) == ["sgd", "rmsprop", "adam"]

    report.write_report(paths, tmp_path / "report", "a command")
    links = re.findall(r"!\[[^]]*\]\(([^)]*)\)", (tmp_path / "report" / "README.md").read_text())
    assert "fig3_regret_sgd_lr8_seed0.png" in links
    for link in links:  # a Markdown image link breaks at a space
        assert re.fullmatch(r"[A-Za-z0-9._+-]+", link) and (tmp_path / "report" / link).exists(), link


def _exploration_means(**means) -> dict:
    """A claims summary holding only the exploration means: optimizer → (min Hamming, switches, log-volume)."""
    keys = ("mean_min_hamming_normalized", "mean_switch_proportion", "mean_finite_log_volume")
    return {optimizer: {"exploration": {key: {"mean": value} for key, value in zip(keys, values)},
                        "regret_exponents": {}}
            for optimizer, values in means.items()}


def test_exploration_claims_count_the_metrics_on_which_the_first_optimizer_is_higher():
    rows = {row["claim"]: row for row in report.claim_rows(_exploration_means(
        sgd=(0.1, 0.2, 30.0), rmsprop=(0.3, 0.1, 40.0), adam=(0.2, 0.05, 50.0)))}
    assert rows["RMSProp explores more than SGD on all three metrics"]["verdict"] == (
        "not reproduced (rmsprop higher on 2 of 3)")
    assert rows["Adam explores less than RMSProp (all three metrics)"]["verdict"] == (
        "not reproduced (rmsprop higher on 2 of 3)")
    assert rows["Adam explores more than SGD (all three metrics)"]["verdict"] == (
        "not reproduced (adam higher on 2 of 3)")
    rows = {row["claim"]: row for row in report.claim_rows(_exploration_means(
        sgd=(0.1, 0.1, 30.0), rmsprop=(0.3, 0.2, 40.0), adam=(0.2, 0.15, 35.0)))}
    assert {rows[claim]["verdict"] for claim in ("RMSProp explores more than SGD on all three metrics",
                                                 "Adam explores less than RMSProp (all three metrics)",
                                                 "Adam explores more than SGD (all three metrics)")} == {"reproduced"}
    assert "min Hamming rmsprop 0.3 vs sgd 0.1" in rows["RMSProp explores more than SGD on all three metrics"][
        "measured"]


def test_the_length_table_has_a_row_per_claim_and_a_verdict_per_length():
    by_length = {1: [{"claim": "a", "verdict": "reproduced"}],
                 5: [{"claim": "a", "verdict": "not reproduced"}, {"claim": "b", "verdict": "reproduced"}]}
    lines = report.length_table(by_length)
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| claim")]
    assert rows == ["| a | reproduced | not reproduced |", "| b | n/a | reproduced |"]
    assert report.length_table({5: by_length[5]}) == []  # one length: no table
