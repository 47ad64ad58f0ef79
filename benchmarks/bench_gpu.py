"""Section 7: the training step on a GPU. A ViT-B/32-sized Knowledge-CLIP (the paper's fusion encoder: 4 layers,
width 1024) in bf16 autocast: triplets per second, model FLOPs utilisation against the large bf16 matmul rate measured
in the same run, and peak GPU memory. Skipped where `torch.cuda.is_available()` is false."""

from __future__ import annotations

import torch
from common import describe_batch, describe_size, matmul_flops_per_second, median_seconds
from torch.utils.flop_counter import FlopCounterMode

from knowledge_clip.training import teacher_embeddings


def run(world, batch_size: int, reps: int, warmup: int) -> dict:
    device = torch.device("cuda")
    batch = {name: tensor.to(device) for name, tensor in world.batch(batch_size).items()}
    model = world.model().to(device).train()
    teacher = model.to_clip().eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

    def forward_backward():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch, return_loss=True, **teacher_embeddings(teacher, batch)).loss
        loss.backward()

    def step():
        optimizer.zero_grad(set_to_none=True)
        forward_backward()
        optimizer.step()
        torch.cuda.synchronize()

    with FlopCounterMode(display=False) as counter:
        forward_backward()
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    timing = median_seconds(step, reps, warmup)
    matmul = matmul_flops_per_second(8192, reps, warmup, device="cuda", dtype=torch.bfloat16)
    achieved = counter.get_total_flops() / timing["median_s"]
    return {
        "device": torch.cuda.get_device_name(),
        "model": describe_size(world.size, model),
        "batch": describe_batch(batch),
        "step_s": timing["median_s"],
        "triplets_per_s": batch_size / timing["median_s"],
        "step_flops": counter.get_total_flops(),
        "achieved_flops_per_s": achieved,
        "matmul": matmul,
        "mfu_vs_matmul": achieved / matmul["flops_per_s"],
        "peak_memory_bytes": torch.cuda.max_memory_allocated(),
        "times_s": timing["times_s"],
    }
