"""Section 5: scale of graphs. Runs `bench_conceptnet_load.run` (ConceptNet loading against pandas, memory per
triplet, `sample_in_neighbors` on a large synthetic graph) and relates the sampling rate to the training step."""

from __future__ import annotations

import bench_conceptnet_load


def run(rows: int, graph_edges: int, reps: int, batch_size: int, num_neighbors: int, step_s: float) -> dict:
    """`sampling_headroom`: seed entities sampled per second over seed entities the training step consumes."""
    results = bench_conceptnet_load.run(
        rows=rows, reps=reps, graph_edges=graph_edges, batch_size=batch_size, num_neighbors=num_neighbors, num_hops=1
    )
    consumed = batch_size / step_s
    results["sampling_headroom"] = results["sampling"]["seed_entities_per_second"] / consumed
    return results
