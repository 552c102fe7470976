"""The run-time check: a real CPU run prints the planner's estimate at start and logs the measured peak."""

from __future__ import annotations

import ftdist
from ftdist.training.tracking import read_metrics


def test_run_logs_predicted_and_measured_peak(tiny_config: dict, capsys) -> None:
    tiny_config["train"].update(max_steps=3, eval_every=0)
    tiny_config["checkpoint"]["every"] = 0
    result = ftdist.train(tiny_config)
    said = capsys.readouterr()
    text = said.out + said.err
    assert "memory: planner predicts a peak of" in text and "memory: measured peak" in text
    final = [event for event in read_metrics(result.run_dir) if "predicted_peak_bytes" in event][-1]
    assert final["step"] == 3
    assert final["predicted_peak_bytes"] > 0 and final["peak_rss_rise_bytes"] >= 0
    assert final["peak_rss_bytes"] > final["peak_rss_rise_bytes"]
