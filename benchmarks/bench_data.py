"""Section 4: data never waits. Batches per second of `KnowledgeTripletDataset` + `KnowledgeCLIPCollator` through a
`DataLoader` with worker processes (JPEG decoding, view choice, neighbour sampling, processing), against the rate at
which the training step consumes batches, measured in the same run."""

from __future__ import annotations

import statistics
import time

import torch


def loader_batches_per_second(world, batch_size: int, num_workers: int, reps: int, batches_per_rep: int) -> dict:
    """Median over `reps` windows of `batches_per_rep` batches, after the workers' first batches (warm-up)."""
    dataset = world.dataset(num_samples=batch_size * (reps + 2) * batches_per_rep, seed=1)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=world.collator, prefetch_factor=2
    )
    iterator = iter(loader)
    for _ in range(max(num_workers, 1)):  # start-up: every worker delivers its first batch
        next(iterator)
    rates = []
    for _ in range(reps):
        begin = time.perf_counter()
        for _ in range(batches_per_rep):
            next(iterator)
        rates.append(batches_per_rep / (time.perf_counter() - begin))
    del iterator
    return {"median_batches_per_s": statistics.median(rates), "batches_per_s": rates}


def run(world, batch_size: int, num_workers: int, reps: int, batches_per_rep: int, step_s: float) -> dict:
    """Headroom = loader batches/s over training steps/s (target >= 4)."""
    loader = loader_batches_per_second(world, batch_size, num_workers, reps, batches_per_rep)
    return {
        "num_workers": num_workers,
        "batches_per_rep": batches_per_rep,
        "loader": loader,
        "step_s": step_s,
        "headroom": loader["median_batches_per_s"] * step_s,
    }
