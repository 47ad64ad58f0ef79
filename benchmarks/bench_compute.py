"""Section 3: compute efficiency. FLOPs of one training step (forward + backward, counted by
`torch.utils.flop_counter.FlopCounterMode`) divided by its median time, against this machine's large-matmul rate
measured in the same run."""

from __future__ import annotations

import torch
from common import matmul_flops_per_second, median_seconds


def run(setup, reps: int, warmup: int, matmul_size: int, step_s: float | None = None) -> dict:
    """Achieved FLOP/s of the step as a fraction of large-matmul FLOP/s (aim >= 0.35 on CPU)."""
    flops = setup.flops()
    if step_s is None:
        step_s = median_seconds(setup.step, reps, warmup)["median_s"]
    matmul = matmul_flops_per_second(matmul_size, reps, warmup)
    achieved = flops / step_s
    return {
        "step_flops": flops,
        "step_s": step_s,
        "achieved_flops_per_s": achieved,
        "matmul": matmul,
        "fraction_of_matmul": achieved / matmul["flops_per_s"],
        "threads": torch.get_num_threads(),
    }
