"""Smoke test of the demo binary on a tiny config."""

import json

import pytest
from absl import flags
from absl.testing import flagsaver

from keras_taylor_bin import demo


def test_demo_main_writes_a_consistent_summary(tmp_path):
    flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(epochs=1, num_examples=256, batch_size=32, output_dir=str(tmp_path)):
        demo.main(["demo"])
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["taylor_loss_at_w_n"] == pytest.approx(summary["loss_at_w_n"], rel=1e-5)
    scales = [row["scale"] for row in summary["next_step"]]
    assert scales[0] == "network" and len(scales) == 7
    for row in summary["next_step"]:
        # One small step: the linearization predicts the new loss closely.
        assert row["taylor_loss_next"] == pytest.approx(row["real_loss_next"], rel=5e-2)


def test_demo_main_rejects_stray_arguments():
    with pytest.raises(Exception, match="Unexpected arguments"):
        demo.main(["demo", "stray"])
