# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Neighbour sampling for G2E message passing (paper Eqs. 11-13), on a graph's in-edge CSR index."""

from __future__ import annotations

import numpy as np


def _sample_in_neighbors(
    in_csr: tuple[np.ndarray, np.ndarray],
    heads: np.ndarray,
    entities: np.ndarray,
    num_neighbors: int,
    num_hops: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The sampling of `KnowledgeGraph.sample_in_neighbors`, which documents the arguments and the result.

    Args:
        in_csr (`tuple[np.ndarray, np.ndarray]`): The graph's `in_csr`, ``(order, offsets)``.
        heads (`np.ndarray`): The graph's head column (int64, one per triplet).
    """
    if num_neighbors < 1 or num_hops < 0:
        raise ValueError(f"need num_neighbors >= 1 and num_hops >= 0, got {num_neighbors}, {num_hops}")
    order, offsets = in_csr
    num_entities = len(offsets) - 1
    frontier = np.unique(np.asarray(entities, dtype=np.int64))
    if frontier.size and (frontier[0] < 0 or frontier[-1] >= num_entities):
        raise IndexError(f"entity ids must lie in [0, {num_entities})")
    expanded = frontier
    sampled = []
    for _ in range(num_hops):
        if frontier.size == 0:
            break
        starts = offsets[frontier]
        segments, positions = _sample_positions(offsets[frontier + 1] - starts, num_neighbors, rng)
        triplets = order[starts[segments] + positions]
        sampled.append(triplets)
        frontier = np.setdiff1d(np.unique(heads[triplets]), expanded, assume_unique=True)
        expanded = np.union1d(expanded, frontier)
    return np.concatenate(sampled) if sampled else np.empty(0, dtype=np.int64)


def _sample_positions(degrees: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draws, for each segment i of length degrees[i], min(k, degrees[i]) distinct positions uniformly.

    Returns (segment index, position inside the segment) pairs, grouped by segment in ascending order.
    """
    small = np.flatnonzero(degrees <= k)
    small_degrees = degrees[small]
    small_segments = np.repeat(small, small_degrees)
    segment_starts = np.repeat(np.cumsum(small_degrees) - small_degrees, small_degrees)
    small_positions = np.arange(small_segments.size, dtype=np.int64) - segment_starts

    # Segments longer than k: Floyd's algorithm, vectorised over segments. Step i draws t uniformly in [0, j]
    # with j = degree - k + i and keeps t, or j if t was already drawn: an exactly uniform k-subset in k steps,
    # with work independent of the degree (hub entities can have 10^5 in-edges).
    large = np.flatnonzero(degrees > k)
    large_degrees = degrees[large]
    chosen = np.empty((large.size, k), dtype=np.int64)
    for i in range(k if large.size else 0):
        upper = large_degrees - k + i
        draw = rng.integers(0, upper + 1)
        taken = (chosen[:, :i] == draw[:, None]).any(axis=1)
        chosen[:, i] = np.where(taken, upper, draw)

    segments = np.concatenate([small_segments, np.repeat(large, k)])
    positions = np.concatenate([small_positions, chosen.reshape(-1)])
    order = np.argsort(segments, kind="stable")
    return segments[order], positions[order]
