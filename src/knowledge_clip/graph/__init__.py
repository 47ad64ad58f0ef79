# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Knowledge graphs for Knowledge-CLIP: entities with text/image/region views, text relations, (h, r, t) triplets.

A `KnowledgeGraph` stores triplets as three int64 arrays and entities as an Arrow table (key, source, views), so a
graph with millions of triplets costs tens of bytes per triplet and saves to / memory-maps from disk through
`datasets`. Adjacency is a CSR index (triplets sorted by tail or head plus offsets), built lazily on first use; the
G2E objective (paper Eqs. 11-13) samples its message-passing subgraph from it with `sample_in_neighbors`.

Graphs are made with a `KnowledgeGraphBuilder`, which every loader in `knowledge_clip.data` uses: it looks entity
keys up as they are added (an entity's id is what its triplets are added with), appends views and triplets to flat
columns, and deduplicates them once, when it builds the graph, counting (never silently dropping) duplicate
triplets and self-loops in the graph's `LoadReport`.

The modules: `entities` (`EntityView`, `ViewKind`), `builder` (`KnowledgeGraphBuilder`), `graph` (`KnowledgeGraph`,
`LoadReport`), `sampling` (neighbour sampling for G2E) and `storage` (the Arrow tables and the saved folder).
"""

from .builder import KnowledgeGraphBuilder
from .entities import EntityView, ViewKind
from .graph import KnowledgeGraph, LoadReport

__all__ = ["EntityView", "KnowledgeGraph", "KnowledgeGraphBuilder", "LoadReport", "ViewKind"]
