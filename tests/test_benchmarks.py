"""The benchmark suite runs end to end in its quick mode and its training section computes the same losses as the
literal method. No timing is asserted: timings on a shared test machine mean nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_quick(sections: str, output: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", sections, "--threads", "1"]
        + ["--output", str(output)],
        check=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )


def test_quick_run_writes_results(tmp_path):
    output = tmp_path / "results.json"
    _run_quick("inference,training", output)
    results = json.loads(output.read_text())
    assert results["quick"] is True
    assert set(results["sections"]) == {"inference", "training"}
    assert {"parameters", "fusion_hidden", "vision_layers"} <= set(results["model"])
    assert results["batch"]["triplets"] > 0 and results["batch"]["graph_edges"] > 0

    inference = results["sections"]["inference"]
    for kind in ("image", "text"):
        assert {"knowledge_clip_s", "clip_s", "ratio"} <= set(inference[kind])
        assert inference[kind]["max_abs_diff"] == 0.0  # the same weights give exactly CLIP's features

    training = results["sections"]["training"]
    assert {"step_s", "literal_step_s", "speedup_vs_literal", "clip_step_s", "ratio_vs_clip_step"} <= set(training)
    assert {"step_teacher_cached_s", "ratio_vs_clip_step_teacher_cached"} <= set(training)
    assert set(training["time_split"]) == {"towers", "teacher", "fusion", "graph", "losses", "other", "optimizer"}
    assert abs(sum(training["time_split"].values()) - 1.0) < 1e-6
    # The batched step and the literal method compute the same four objectives with the same gradients.
    assert set(training["losses_batched"]) == {"loss", "e2e_loss", "e2r_loss", "g2e_loss", "kd_loss"}
    assert training["max_abs_loss_diff"] < 1e-4
    assert training["max_abs_grad_diff"] < 1e-3
    for name, value in training["losses_batched"].items():
        assert abs(value - training["losses_literal"][name]) < 1e-4, name
    # The literal method really is literal: more fusion and tower passes than the deduplicated batch.
    counts = training["counts"]
    assert counts["literal_fusion_passes"] > counts["batched_fusion_sequences"]
    assert counts["literal_tower_passes"] > counts["batched_tower_rows"]
    assert set(results["targets"]) == {"inference", "training"}

    # Measuring one section again replaces that section only: the file keeps the others and says what was rerun.
    _run_quick("inference", output)
    merged = json.loads(output.read_text())
    assert merged["sections"]["training"] == training
    assert merged["sections"]["inference"] != inference  # new timings
    assert set(merged["targets"]) == {"inference", "training"} and set(merged["reruns"]) == {"inference"}
