"""Benchmark: ConceptNet loading throughput and memory, and neighbour-sampling throughput.

Writes a synthetic file in the exact ConceptNet 5.7 assertions shape (realistic mix of languages, ExternalURL
and ``/c/enm/`` rows, JSON with sources and surface texts), then measures:

- rows/s of `load_conceptnet` against ``pandas.read_csv(sep="\\t", quoting=3, header=None)`` on the same plain and
  gzip files (median of `reps` runs), and the first load of the plain file in a fresh process, whose compiled
  loops come from numba's disk cache or, with an empty cache, are compiled first; and a load that reads the parsed
  graph from `load_conceptnet`'s cache, against the parse;
- memory: the `tracemalloc` peaks of the Python allocations while the chunks are parsed (bounded by the chunk size)
  and while the graph is built (grows with it: its slope between a quarter and all of the file is the cost per
  triplet), the peak of Arrow's memory pool, and the projection to the full dump (34M rows, about 3.4M
  English-English triplets) against the 8 GiB target; the peak RSS growth of the load is reported as a check;
- `KnowledgeGraph.sample_in_neighbors` throughput (seed entities/s) on a synthetic graph with `graph_edges` edges.

Usage: ``python benchmarks/bench_conceptnet_load.py --rows 1000000``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from knowledge_clip.data.conceptnet import load_conceptnet
from knowledge_clip.graph import KnowledgeGraph

FULL_DUMP_ROWS = 34_074_917
FULL_DUMP_ENGLISH_TRIPLETS = 3_400_000
MEMORY_TARGET_BYTES = 8 * 1024**3

# Share of rows per (start language, end language); the rest of the mass is ExternalURL and /c/enm/ rows.
_LANGUAGE_PAIRS = [
    (("en", "en"), 0.10),
    (("fr", "fr"), 0.15),
    (("de", "de"), 0.10),
    (("ja", "ja"), 0.08),
    (("es", "es"), 0.07),
    (("it", "it"), 0.07),
    (("fr", "en"), 0.08),
    (("en", "de"), 0.07),
    (("ru", "ru"), 0.08),
    (("zh", "zh"), 0.06),
    (("enm", "en"), 0.01),
    (("en", "enm"), 0.01),
]
_EXTERNAL_URL_SHARE = 1.0 - sum(share for _, share in _LANGUAGE_PAIRS)
_RELATIONS = ["IsA", "RelatedTo", "Synonym", "AtLocation", "UsedFor", "HasA", "PartOf", "dbpedia/genre", "FormOf"]
_POS = ["", "/n", "/v", "/a", "/n/wn/food"]


def write_conceptnet_file(path: Path, rows: int, seed: int = 0) -> None:
    """Writes `rows` lines in the ConceptNet 5.7 assertions format (gzip if `path` ends with ``.gz``)."""
    rng = np.random.default_rng(seed)
    # A Zipf-like vocabulary of about 0.2 concepts per row: ConceptNet's English part has about 1.2M
    # concepts for 3.4M English-English edges.
    vocabulary = [f"word_{i}" if i % 3 else f"multi_word_{i}_term" for i in range(max(100, rows // 5))]
    pairs = [pair for pair, _ in _LANGUAGE_PAIRS] + [None]
    shares = np.array([share for _, share in _LANGUAGE_PAIRS] + [_EXTERNAL_URL_SHARE])
    kinds = rng.choice(len(pairs), size=rows, p=shares / shares.sum())
    starts = np.minimum(rng.zipf(1.3, size=rows), len(vocabulary)) - 1
    ends = rng.integers(0, len(vocabulary), size=rows)
    relation_choice = rng.integers(0, len(_RELATIONS), size=rows)
    pos_choice = rng.integers(0, len(_POS), size=rows)
    weights = np.round(rng.gamma(2.0, 0.8, size=rows), 3)
    surface = rng.random(rows) < 0.1
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="\n") as stream:
        for i in range(rows):
            pair = pairs[kinds[i]]
            start_text, end_text = vocabulary[starts[i]], vocabulary[ends[i]]
            if pair is None:
                relation = "/r/ExternalURL"
                start = f"/c/en/{start_text}"
                end = f"http://en.wiktionary.org/wiki/{start_text}"
            else:
                relation = f"/r/{_RELATIONS[relation_choice[i]]}"
                start = f"/c/{pair[0]}/{start_text}{_POS[pos_choice[i]]}"
                end = f"/c/{pair[1]}/{end_text}"
            metadata = {
                "dataset": f"/d/conceptnet/4/{pair[0] if pair else 'en'}",
                "license": "cc:by/4.0",
                "sources": [
                    {"activity": "/s/activity/omcs/omcs1_possibly_free_text", "contributor": "/s/contributor/omcs/u"}
                ],
                "weight": float(weights[i]),
            }
            if surface[i]:
                metadata["surfaceStart"] = start_text.replace("_", " ")
                metadata["surfaceEnd"] = end_text.replace("_", " ")
                metadata["surfaceText"] = f"[[{metadata['surfaceStart']}]] is related to [[{metadata['surfaceEnd']}]]"
            assertion = f"/a/[{relation}/,{start}/,{end}/]"
            stream.write(f"{assertion}\t{relation}\t{start}\t{end}\t{json.dumps(metadata, sort_keys=True)}\n")


def _median_seconds(function, reps: int) -> float:
    times = []
    for _ in range(reps):
        begin = time.perf_counter()
        function()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def _pandas_read(path: Path) -> None:
    import pandas

    pandas.read_csv(path, sep="\t", quoting=3, header=None)


_MEMORY_PROBE = """
import json, re, sys, tracemalloc
import pyarrow
from knowledge_clip.data import conceptnet

def status(field):
    return int(re.search(field + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

if sys.argv[2] == "rss":
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
    baseline = status("VmRSS")
    graph = conceptnet.load_conceptnet(sys.argv[1], use_cache=False)
    figures = {"peak_rss_growth": status("VmHWM") - baseline}
else:
    # Two phases: parsing the chunks (bounded: a few chunks in flight) and turning the kept rows into the graph
    # (grows with it). Their peaks are taken apart, so the first does not hide the slope of the second.
    figures = {}
    add_triplets = conceptnet._ConceptNetReader._add_triplets

    def measured_add_triplets(reader):
        figures["parse_peak"] = tracemalloc.get_traced_memory()[1]
        figures["arrow_parse_peak"] = pyarrow.default_memory_pool().max_memory()
        tracemalloc.reset_peak()
        add_triplets(reader)

    conceptnet._ConceptNetReader._add_triplets = measured_add_triplets
    tracemalloc.start()
    graph = conceptnet.load_conceptnet(sys.argv[1], use_cache=False)
    figures["build_peak"] = tracemalloc.get_traced_memory()[1]
figures.update(triplets=graph.num_triplets, entities=graph.num_entities)
figures["arrow_pool_peak"] = pyarrow.default_memory_pool().max_memory()
print(json.dumps(figures))
"""


_FIRST_LOAD_PROBE = """
import sys, time
from knowledge_clip.data.conceptnet import load_conceptnet

begin = time.perf_counter()
load_conceptnet(sys.argv[1], use_cache=False)
print(time.perf_counter() - begin)
"""


def _first_load_seconds(path: Path, numba_cache_dir: str | None = None) -> float:
    """Seconds of the first `load_conceptnet` in a fresh process (imports excluded); with `numba_cache_dir` (an
    empty directory) the compiled loops are compiled first instead of coming from the disk cache."""
    env = dict(os.environ, NUMBA_CACHE_DIR=numba_cache_dir) if numba_cache_dir else None
    output = subprocess.run(
        [sys.executable, "-c", _FIRST_LOAD_PROBE, str(path)], check=True, capture_output=True, text=True, env=env
    )
    return float(output.stdout)


def _memory_of_load(path: Path, mode: str) -> dict:
    """Loads `path` in a fresh process and returns its memory figures (`mode`: "rss" or "tracemalloc")."""
    output = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path), mode], check=True, capture_output=True, text=True
    )
    return json.loads(output.stdout)


def _sampling_throughput(num_edges: int, batch_size: int, num_neighbors: int, num_hops: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    num_entities = max(10, num_edges // 10)
    # Half of the edges point at uniformly drawn entities (mean in-degree 5), half at power-law hubs (some with
    # 10^5 in-edges), like ConceptNet's mix of ordinary concepts and hubs such as /c/en/person.
    hub_tails = np.minimum(rng.zipf(1.5, size=num_edges - num_edges // 2), num_entities) - 1
    tails = np.concatenate([rng.integers(0, num_entities, size=num_edges // 2), hub_tails])
    tails = rng.permutation(num_entities)[rng.permutation(tails)]
    heads = rng.integers(0, num_entities, size=num_edges)
    relation_ids = rng.integers(0, 10, size=num_edges)
    graph = KnowledgeGraph.from_arrays(
        "synthetic", [f"e{i}" for i in range(num_entities)], [f"r{i}" for i in range(10)], heads, relation_ids, tails
    )
    begin = time.perf_counter()
    graph.in_csr  # noqa: B018 - build the CSR index outside the timed loop
    csr_seconds = time.perf_counter() - begin
    batches = 50
    seeds = [rng.integers(0, num_entities, size=batch_size) for _ in range(batches)]
    sample_rng = np.random.default_rng(seed)
    sampled = 0
    begin = time.perf_counter()
    for batch in seeds:
        sampled += graph.sample_in_neighbors(batch, num_neighbors, num_hops, sample_rng).size
    seconds = time.perf_counter() - begin
    return {
        "graph_edges": num_edges,
        "graph_entities": num_entities,
        "csr_build_seconds": csr_seconds,
        "batch_size": batch_size,
        "num_neighbors": num_neighbors,
        "num_hops": num_hops,
        "seed_entities_per_second": batches * batch_size / seconds,
        "sampled_triplets_per_second": sampled / seconds,
        "mean_triplets_per_batch": sampled / batches,
    }


def run(
    rows: int = 1_000_000,
    reps: int = 3,
    graph_edges: int = 10_000_000,
    batch_size: int = 256,
    num_neighbors: int = 10,
    num_hops: int = 2,
    seed: int = 0,
) -> dict:
    """Runs the benchmark and returns its figures.

    Args:
        rows (`int`, *optional*, defaults to 1,000,000): Rows of the synthetic ConceptNet file.
        reps (`int`, *optional*, defaults to 3): Repetitions per timing (the median is reported).
        graph_edges (`int`, *optional*, defaults to 10,000,000): Edges of the sampling benchmark graph.
        batch_size (`int`, *optional*, defaults to 256): Seed entities per `sample_in_neighbors` call.
        num_neighbors (`int`, *optional*, defaults to 10): k of `sample_in_neighbors`.
        num_hops (`int`, *optional*, defaults to 2): L of `sample_in_neighbors`.
        seed (`int`, *optional*, defaults to 0): Seed of the synthetic data.

    Returns:
        `dict`: ``loading`` (per file kind: rows/s of both readers and their ratio), ``memory`` and ``sampling``.
    """
    results: dict = {"rows": rows, "reps": reps, "loading": {}}
    directory = Path(tempfile.mkdtemp(prefix="bench_conceptnet_"))
    try:
        plain = directory / "assertions.csv"
        write_conceptnet_file(plain, rows, seed)
        compressed = directory / "assertions.csv.gz"
        with open(plain, "rb") as source, gzip.open(compressed, "wb", compresslevel=6) as target:
            shutil.copyfileobj(source, target)
        for kind, path in (("csv", plain), ("csv.gz", compressed)):
            loader_seconds = _median_seconds(lambda path=path: load_conceptnet(path, use_cache=False), reps)
            pandas_seconds = _median_seconds(lambda path=path: _pandas_read(path), reps)
            # The parsed-graph cache: the first load parses and writes the entry, the later ones read it.
            cache_dir = directory / f"cache-{kind}"
            load_conceptnet(path, cache_dir=cache_dir)
            cached_seconds = _median_seconds(
                lambda path=path, cache_dir=cache_dir: load_conceptnet(path, cache_dir=cache_dir), reps
            )
            results["loading"][kind] = {
                "file_mib": path.stat().st_size / 2**20,
                "load_conceptnet_rows_per_second": rows / loader_seconds,
                "pandas_rows_per_second": rows / pandas_seconds,
                "speedup_vs_pandas": pandas_seconds / loader_seconds,
                "cached_load_seconds": cached_seconds,
                "cached_over_parse": cached_seconds / loader_seconds,
            }
        results["first_load"] = {
            "median_load_seconds": rows / results["loading"]["csv"]["load_conceptnet_rows_per_second"],
            "from_numba_cache_seconds": _first_load_seconds(plain),
            "compiling_seconds": _first_load_seconds(plain, numba_cache_dir=str(directory / "numba_cache")),
        }

        # Fresh processes load a quarter and all of the file. Python memory is measured per phase: the parse
        # phase's peak (the line tables of the chunks in flight) is bounded by the chunk size; the build phase's peak
        # (builder dictionaries, strings, int64 buffers) grows with the graph, and its slope between the two files is
        # the marginal cost per triplet (entities included). Arrow's pool (kept rows' keys, JSON and take buffers)
        # is handled the same way from its overall peak. The projection adds the parse peak to the build phase's
        # (they do not overlap, so the sum is an upper bound) and Arrow's projected peak.
        quarter = directory / "quarter.csv"
        with open(plain, "rb") as source:
            quarter.write_bytes(b"".join(line for _, line in zip(range(rows // 4), source)))
        small = _memory_of_load(quarter, "tracemalloc")
        traced = _memory_of_load(plain, "tracemalloc")
        rss = _memory_of_load(plain, "rss")
        new_triplets = traced["triplets"] - small["triplets"]
        per_triplet = (traced["build_peak"] - small["build_peak"]) / new_triplets
        build_fixed = traced["build_peak"] - per_triplet * traced["triplets"]
        arrow_per_triplet = max(0.0, (traced["arrow_pool_peak"] - small["arrow_pool_peak"]) / new_triplets)
        arrow_fixed = traced["arrow_pool_peak"] - arrow_per_triplet * traced["triplets"]
        projected = (
            traced["parse_peak"]
            + build_fixed
            + per_triplet * FULL_DUMP_ENGLISH_TRIPLETS
            + arrow_fixed
            + arrow_per_triplet * FULL_DUMP_ENGLISH_TRIPLETS
        )
        results["memory"] = {
            "method": "per phase: Python parse peak + build peak (fixed + slope per triplet, 1/4 vs all rows) + "
            "Arrow pool peak (fixed + slope)",
            "triplets_loaded": traced["triplets"],
            "entities": traced["entities"],
            "python_parse_peak_bytes": traced["parse_peak"],
            "python_build_peak_bytes": traced["build_peak"],
            "python_build_fixed_bytes": build_fixed,
            "python_bytes_per_triplet": per_triplet,
            "arrow_pool_peak_bytes": traced["arrow_pool_peak"],
            "arrow_bytes_per_triplet": arrow_per_triplet,
            "peak_rss_growth_bytes": rss["peak_rss_growth"],
            "projected_bytes_full_english_dump": projected,
            "target_bytes": MEMORY_TARGET_BYTES,
            "within_target": projected < MEMORY_TARGET_BYTES,
        }
        graph = load_conceptnet(plain, use_cache=False)
        results["report"] = str(graph.report)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    results["sampling"] = _sampling_throughput(graph_edges, batch_size, num_neighbors, num_hops, seed)
    return results


def _print_table(results: dict) -> None:
    print(f"ConceptNet loading, {results['rows']:,} rows, median of {results['reps']}")
    print(
        f"{'file':<8} {'MiB':>8} {'load_conceptnet rows/s':>24} {'pandas rows/s':>15} {'speedup':>8} "
        f"{'cached load s':>14} {'cached/parse':>13}"
    )
    for kind, figures in results["loading"].items():
        print(
            f"{kind:<8} {figures['file_mib']:>8.1f} {figures['load_conceptnet_rows_per_second']:>24,.0f} "
            f"{figures['pandas_rows_per_second']:>15,.0f} {figures['speedup_vs_pandas']:>7.2f}x "
            f"{figures['cached_load_seconds']:>14.3f} {figures['cached_over_parse']:>13.3f}"
        )
    first = results["first_load"]
    print(
        f"first load of the csv in a fresh process: {first['from_numba_cache_seconds']:.2f} s with numba's cache, "
        f"{first['compiling_seconds']:.2f} s compiling (median load {first['median_load_seconds']:.2f} s)"
    )
    memory = results["memory"]
    print(f"\nMemory ({memory['method']})")
    print(
        f"  {memory['triplets_loaded']:,} triplets, {memory['entities']:,} entities: Python parse peak "
        f"{memory['python_parse_peak_bytes'] / 2**20:.0f} MiB, build peak "
        f"{memory['python_build_peak_bytes'] / 2**20:.0f} MiB = {memory['python_build_fixed_bytes'] / 2**20:.0f} MiB "
        f"fixed + {memory['python_bytes_per_triplet']:.0f} bytes per triplet; Arrow pool peak "
        f"{memory['arrow_pool_peak_bytes'] / 2**20:.0f} MiB ({memory['arrow_bytes_per_triplet']:.0f} bytes per "
        f"triplet); measured peak RSS growth {memory['peak_rss_growth_bytes'] / 2**20:.0f} MiB"
    )
    print(
        f"  projected for {FULL_DUMP_ENGLISH_TRIPLETS:,} English triplets: "
        f"{memory['projected_bytes_full_english_dump'] / 2**30:.2f} GiB (target 8 GiB: "
        f"{'ok' if memory['within_target'] else 'EXCEEDED'})"
    )
    sampling = results["sampling"]
    print(
        f"\nsample_in_neighbors on {sampling['graph_edges']:,} edges / {sampling['graph_entities']:,} entities "
        f"(k={sampling['num_neighbors']}, L={sampling['num_hops']}, batch {sampling['batch_size']}):"
    )
    print(f"  CSR build {sampling['csr_build_seconds']:.2f} s")
    print(
        f"  {sampling['seed_entities_per_second']:,.0f} seed entities/s, "
        f"{sampling['sampled_triplets_per_second']:,.0f} sampled triplets/s "
        f"({sampling['mean_triplets_per_batch']:.0f} triplets per batch)"
    )
    print(f"\n{results['report']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--graph-edges", type=int, default=10_000_000)
    args = parser.parse_args()
    _print_table(run(rows=args.rows, reps=args.reps, graph_edges=args.graph_edges))


if __name__ == "__main__":
    main()
