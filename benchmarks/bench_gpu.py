"""Section 8: the training step on a GPU, also a script of its own, made to finish within 5 minutes on one H100:

    python benchmarks/bench_gpu.py [--batch-size 256] [--steps 20] [--time-budget 120] [--output PATH]

Knowledge-CLIP with OpenAI's CLIP ViT-B/32 towers and the paper's fusion encoder (4 layers, width 1024), random
weights, one knowledge batch of B triplets with K = 4 sampled in-edges per tail, bf16 autocast and fused AdamW — the
training step of `benchmarks/common.StepSetup`, the one the CPU sections time. Reported: triplets per second, the
step's median time, peak GPU memory (`torch.cuda.max_memory_allocated` over the timed steps) and model FLOPs
utilisation: the FLOPs of one step's forward and backward counted by `torch.utils.flop_counter.FlopCounterMode`
(matmuls, convolutions, attention) over the median step time, as a fraction of two rates, the card's data-sheet
peak dense bf16 rate (`PEAK_BF16_FLOPS`, by device name) and a large bf16 matmul timed in the same run.

Time: building the synthetic graph and collating one batch take seconds on the host; the timed steps stop at
`--steps` or once they have run for `--time-budget` seconds, after `--warmup` untimed ones. Without CUDA the script
prints one line and exits 0. `--device cpu --tiny` runs the same step, FLOP count and report on the CPU with a tiny
model, as tests/test_benchmarks.py does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from common import (
    QUICK,
    VIT_B32,
    StepSetup,
    describe_batch,
    describe_size,
    make_world,
    matmul_flops_per_second,
    median_seconds,
    print_table,
)

# Dense bf16 tensor-core rates from NVIDIA's data sheets (half their "with sparsity" figures), matched in order
# against `torch.cuda.get_device_name()` by the words each row names: the first row whose words all occur wins.
PEAK_BF16_FLOPS = (
    (("H200", "NVL"), 835.5e12),
    (("H200",), 989.5e12),  # H200 SXM
    (("H100", "NVL"), 835.5e12),
    (("H100", "PCIe"), 756.5e12),
    (("H100",), 989.5e12),  # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    (("A100",), 312e12),  # SXM4 and PCIe alike
)
NUM_ENTITIES = 2000
NUM_NEIGHBORS = 4
HERE = Path(__file__).resolve().parent


def peak_bf16_flops(device_name: str) -> float | None:
    """The data-sheet dense bf16 rate of the card called `device_name`; `None` for a card not in the table."""
    name = device_name.lower()
    for words, flops in PEAK_BF16_FLOPS:
        if all(word.lower() in name for word in words):
            return flops
    return None


def run(world, batch_size: int, steps: int, warmup: int, budget_s: float, device: str = "cuda") -> dict:
    """The bf16 training step of `world`'s model size on `device`, timed and counted; see the module's docstring."""
    on_cuda = torch.device(device).type == "cuda"
    setup = StepSetup.create(world, batch_size, device=device, autocast_dtype=torch.bfloat16)
    synchronize = torch.cuda.synchronize if on_cuda else lambda: None

    def step():
        setup.step()
        synchronize()

    flops = setup.flops()
    step()  # the first step allocates AdamW's state: outside the peak-memory window, like every later step's start
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    timing = median_seconds(step, steps, warmup, budget_s)
    peak_memory = torch.cuda.max_memory_allocated() if on_cuda else None
    matmul_size = 8192 if on_cuda else 256
    matmul = matmul_flops_per_second(matmul_size, 10, 2, device=device, dtype=torch.bfloat16)
    achieved = flops / timing["median_s"]
    device_name = torch.cuda.get_device_name() if on_cuda else "cpu"
    peak = peak_bf16_flops(device_name) if on_cuda else None
    return {
        "device": device_name,
        "model": describe_size(world.size, setup.model),
        "batch": describe_batch(setup.batch),
        "autocast": "bfloat16",
        "step_s": timing["median_s"],
        "timed_steps": len(timing["times_s"]),
        "triplets_per_s": batch_size / timing["median_s"],
        "step_flops": flops,
        "achieved_flops_per_s": achieved,
        "peak_bf16_flops_per_s": peak,
        "mfu_vs_peak": achieved / peak if peak else None,
        "matmul": matmul,
        "mfu_vs_matmul": achieved / matmul["flops_per_s"],
        "peak_memory_bytes": peak_memory,
        "times_s": timing["times_s"],
    }


def report(results: dict) -> None:
    peak = results["peak_bf16_flops_per_s"]
    memory = results["peak_memory_bytes"]
    print_table(
        f"8. GPU ({results['device']}, bf16, {results['model']['name']}, B = {results['batch']['triplets']})",
        ("triplets/s", "step s", "TFLOP/s", "MFU vs peak", "peak TFLOP/s", "MFU vs matmul", "matmul TFLOP/s", "GiB"),
        [
            (
                results["triplets_per_s"],
                results["step_s"],
                results["achieved_flops_per_s"] / 1e12,
                results["mfu_vs_peak"] if peak else "-",
                peak / 1e12 if peak else "not in table",
                results["mfu_vs_matmul"],
                results["matmul"]["flops_per_s"] / 1e12,
                memory / 2**30 if memory is not None else "-",
            )
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the knowledge-clip training step on a GPU (bf16, ViT-B/32)")
    parser.add_argument("--batch-size", type=int, default=256, help="triplets per step (K = 4 in-edges per tail)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps at most")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--time-budget", type=float, default=120.0, help="seconds of timed steps at most")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu with --tiny (a check of the logic)")
    parser.add_argument("--tiny", action="store_true", help="the suite's tiny model instead of ViT-B/32")
    parser.add_argument("--output", type=Path, default=HERE / "results-gpu.json")
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here (torch.cuda.is_available() is False); nothing measured.")
        return 0
    size = QUICK if args.tiny else VIT_B32
    with tempfile.TemporaryDirectory(prefix="knowledge_clip_gpu_") as directory:
        world = make_world(Path(directory), size, NUM_ENTITIES, NUM_NEIGHBORS)
        try:
            results = run(world, args.batch_size, args.steps, args.warmup, args.time_budget, args.device)
        except torch.OutOfMemoryError:
            print(f"bench_gpu: out of memory at {args.batch_size} triplets per step; try a smaller --batch-size.")
            return 1
    report(results)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
