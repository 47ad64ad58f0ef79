"""The benchmark suite runs end to end in its quick mode, its training section computes the same losses as the
literal method, the scale section's memory reading and projection are right, and the GPU script runs its logic on
the CPU and leaves cleanly without CUDA. No timing is asserted: timings on a shared test machine mean nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile, record_function

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmark modules import each other as top-level modules
import bench_gpu  # noqa: E402
import bench_scale  # noqa: E402


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


# ------------------------------------------------------------------------------------------------------------ scale
def test_quick_scale_section_records_memory_time_and_projection(tmp_path):
    output = tmp_path / "results.json"
    _run_quick("scale", output)
    scale = json.loads(output.read_text())["sections"]["scale"]
    assert scale["projected_batches"] == list(bench_scale.PROJECTED_BATCHES)
    (figures,) = scale["models"].values()  # the quick plan measures the tiny model only
    assert {"parameters", "fusion_hidden", "vision_layers"} <= set(figures["model"])
    for config in ("plain", "checkpointing"):
        measured = figures[config]
        assert [p["triplets"] for p in measured["points"]] == [2, 4]
        for point in measured["points"]:
            assert point["resident_bytes"] > 0 and point["forward_backward_peak_bytes"] > 0
            assert point["peak_bytes"] == point["resident_bytes"] + max(
                point["forward_backward_peak_bytes"], point["optimizer_peak_bytes"]
            )
            assert 0 < point["fusion_inputs_peak_bytes"] < point["forward_backward_peak_bytes"]
            assert point["fusion_sequences"] > point["triplets"]
        assert measured["step_s"] > 0 and measured["clip_step_s"] > 0
        assert measured["ratio_vs_clip_step"] == measured["step_s"] / measured["clip_step_s"]
        assert measured["peak_fit"]["slope"] > 0
        assert [p["triplets"] for p in measured["projected"]] == scale["projected_batches"]
        assert measured["largest_batch_within_device_memory"] > scale["projected_batches"][-1]  # a tiny model
    # Checkpointing keeps less alive through the step, at every size (the allocator's counts are exact).
    for plain, checkpointed in zip(figures["plain"]["points"], figures["checkpointing"]["points"]):
        assert checkpointed["forward_backward_peak_bytes"] < plain["forward_backward_peak_bytes"]
    assert figures["checkpointing"]["step_ratio_vs_plain"] > 0


def test_projection_fit_on_synthetic_numbers():
    batches = [1, 2, 4, 8]
    fit = bench_scale.linear_fit(batches, [10.0 + 3.0 * b for b in batches])
    assert fit["intercept"] == pytest.approx(10.0) and fit["slope"] == pytest.approx(3.0)
    assert fit["max_abs_residual"] == pytest.approx(0.0, abs=1e-9)
    noisy = bench_scale.linear_fit([1, 2, 3], [1.0, 3.0, 2.0])  # least squares: y = 1 + 0.5 x, residuals 0.5, 1, 0.5
    assert (noisy["intercept"], noisy["slope"], noisy["max_abs_residual"]) == pytest.approx((1.0, 0.5, 1.0))
    line = {"intercept": 10.0, "slope": 3.0}  # 10 bytes that do not grow with the batch, 3 per triplet
    assert bench_scale.projected_peak(line, 0.0, 30) == 100.0
    assert bench_scale.projected_peak(line, 500.0, 30) == 500.0  # the optimizer's peak wins over a small batch
    assert bench_scale.largest_fitting_batch(line, 0.0, 100.0) == 30
    assert bench_scale.largest_fitting_batch(line, 0.0, 102.9) == 30
    assert bench_scale.largest_fitting_batch(line, 0.0, 9.0) == 0
    assert bench_scale.largest_fitting_batch(line, 200.0, 100.0) == 0
    with pytest.raises(ValueError, match="two or more distinct sizes"):
        bench_scale.linear_fit([4, 4], [1.0, 2.0])
    with pytest.raises(ValueError, match="does not grow"):
        bench_scale.largest_fitting_batch(bench_scale.linear_fit([1, 2], [5.0, 5.0]), 0.0, 100.0)


def test_allocation_trace_reads_the_allocators_peaks_by_range():
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        before = torch.empty(1000, dtype=torch.uint8)
        with record_function("inside"):
            transient = torch.empty(4000, dtype=torch.uint8)
            del transient
            kept = torch.empty(2000, dtype=torch.uint8)
        with record_function("inside"):
            pair = [torch.empty(3000, dtype=torch.uint8) for _ in range(2)]
        del before, kept, pair
    trace = bench_scale.AllocationTrace.from_profile(profiler, ("inside",))
    assert trace.peak_before("inside") == 1000
    assert trace.range_peak("inside") == 6000  # the second range's two blocks, above what was live when it opened
    assert trace.live_bytes[-1] == 0


# -------------------------------------------------------------------------------------------------------------- gpu
def _run_bench_gpu(arguments: list[str], **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env},
    )


def test_gpu_script_without_cuda_exits_cleanly_with_one_line():
    finished = _run_bench_gpu([], CUDA_VISIBLE_DEVICES="")
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip().splitlines() == [
        "bench_gpu: no CUDA device here (torch.cuda.is_available() is False); nothing measured."
    ]
    assert "Traceback" not in finished.stderr


def test_gpu_script_tiny_mode_runs_the_step_and_counts_its_flops_on_cpu(tmp_path):
    output = tmp_path / "gpu.json"
    arguments = ["--device", "cpu", "--tiny", "--batch-size", "4", "--steps", "2", "--warmup", "1"]
    finished = _run_bench_gpu([*arguments, "--output", str(output)], OMP_NUM_THREADS="1")
    assert finished.returncode == 0, finished.stderr
    results = json.loads(output.read_text())
    assert results["device"] == "cpu" and results["autocast"] == "bfloat16"
    assert results["batch"]["triplets"] == 4 and 1 <= results["timed_steps"] <= 2
    assert results["step_flops"] > 0
    assert results["achieved_flops_per_s"] == pytest.approx(results["step_flops"] / results["step_s"])
    assert results["mfu_vs_matmul"] == pytest.approx(
        results["achieved_flops_per_s"] / results["matmul"]["flops_per_s"]
    )
    assert results["triplets_per_s"] == pytest.approx(4 / results["step_s"])
    assert results["peak_bf16_flops_per_s"] is None and results["mfu_vs_peak"] is None  # no data sheet for a CPU


def test_peak_bf16_rates_by_device_name():
    assert bench_gpu.peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989.5e12
    assert bench_gpu.peak_bf16_flops("NVIDIA H100 PCIe") == 756.5e12
    assert bench_gpu.peak_bf16_flops("NVIDIA H100 NVL") == 835.5e12
    assert bench_gpu.peak_bf16_flops("NVIDIA H200") == 989.5e12
    assert bench_gpu.peak_bf16_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert bench_gpu.peak_bf16_flops("NVIDIA A100 80GB PCIe") == 312e12
    assert bench_gpu.peak_bf16_flops("NVIDIA GeForce RTX 4090") is None
