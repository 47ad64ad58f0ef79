"""Section 7: scale. Knowledge-CLIP with the real towers of OpenAI's CLIP ViT-B/32 and ViT-L/14 and the paper's fusion
encoder (4 layers, width 1024), random weights, on this CPU at small batches: the step's time against a plain CLIP
step of the same towers on the same unique entities, the peak memory of the step and of the fusion inputs, with and
without activation checkpointing, and a projection of the peak per device to the batches of large-scale training.

Memory is read from PyTorch's own CPU allocator: `torch.profiler.profile(profile_memory=True)` receives every
allocation and free the allocator makes (c10 reports each one to the profiler), in time order, the temporaries
inside operators, the backward pass and the recomputation of checkpointed layers included; their running sum is the
live tensor memory. `tracemalloc` sees only Python's allocator, never tensor memory, and RSS counts the pages the
process touched, which the C library's reuse of freed blocks blurs; the profiler does not see the BLAS library's own
scratch buffers, which are small. The step runs with its gradient tensors kept allocated (zeroed, not freed), so that
what stays between steps is one fixed amount, *resident* (parameters of the model and of the teacher, gradients,
AdamW's state, the batch), and what the step adds is its activations and temporaries: *forward-backward*, the
largest rise over resident before the optimizer runs, and *optimizer*, the largest rise while it runs.

The projection fits `resident + forward-backward = a + b * B` by least squares to two or more batch sizes B
(triplets per device, K in-edges per tail); each batch holds the triplets of the smaller ones (the dataset's draws
are a pure function of seed and index), so the sizes differ by triplets, not by luck. The projected peak at B is
the larger of the fit and resident + optimizer. Gradients count as resident for the whole step: a trainer that frees
them between steps holds fewer of them at the start of the backward pass, so the projection errs high by at most
their size. A small batch of the synthetic graph repeats few entities, like a batch of a large real graph; repeats
make a real batch cheaper. The figures are float32, as measured: bf16 autocast keeps most activations in half the
bytes (benchmarks/bench_gpu.py measures a GPU step's peak).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import numpy as np
import torch
from common import (
    OPTIMIZER_RANGE,
    StepSetup,
    clip_step,
    describe_batch,
    describe_size,
    fusion_sequence_count,
    interleaved_medians,
    module_ranges,
)
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

# Per-device batches the projection is made for, in triplets with K = 4 sampled in-edges per tail (the default
# `graph_num_neighbors`; one hop, the suite's graph setting): 256 is the ViT-B/32 recipe's
# per_device_train_batch_size (examples/configs/vit-b-32.yaml: 256 x 8 GPUs = a global batch of 2048), 64 the
# ViT-L/14 recipe's (64 x 8 GPUs x 4 accumulation steps = 2048, with activation checkpointing).
PROJECTED_BATCHES = (64, 256)
DEVICE_MEMORY_BYTES = 80 * 10**9
"""An 80 GB card (A100 / H100 80GB), before the CUDA context and the allocator's fragmentation take their share."""
FUSION_INPUTS_RANGE = "fusion_inputs"


# ---------------------------------------------------------------------------------------------------------- memory
@dataclasses.dataclass
class AllocationTrace:
    """The allocator's allocations and frees during a profiled region, in time order, as the live bytes above the
    region's start after each of them, and the time spans of the profiler ranges of interest."""

    times_ns: np.ndarray
    live_bytes: np.ndarray
    ranges_ns: dict[str, list[tuple[int, int]]]

    @classmethod
    def from_profile(cls, profiler: profile, range_names: tuple[str, ...]) -> AllocationTrace:
        # The raw event list: the aggregated `profiler.events()` folds allocations into the ops that made them and
        # loses their order.
        events = profiler.profiler.kineto_results.events()
        memory = sorted(
            (event.start_ns(), event.nbytes())
            for event in events
            if event.name() == "[memory]" and event.device_type() == DeviceType.CPU
        )
        times, deltas = np.array(memory, dtype=np.int64).reshape(-1, 2).T
        ranges = {name: [] for name in range_names}
        for event in events:
            if event.name() in ranges:
                ranges[event.name()].append((event.start_ns(), event.start_ns() + event.duration_ns()))
        return cls(times, np.cumsum(deltas), ranges)

    def _window_peak(self, start_ns: int | None, end_ns: int | None) -> int:
        """The largest rise of live memory in `[start_ns, end_ns)` over the memory live at `start_ns` (the region's
        start when `None`)."""
        first = 0 if start_ns is None else int(np.searchsorted(self.times_ns, start_ns))
        last = self.times_ns.size if end_ns is None else int(np.searchsorted(self.times_ns, end_ns))
        before = self.live_bytes[first - 1] if first > 0 else 0
        return max(int(self.live_bytes[first:last].max(initial=before) - before), 0)

    def peak_before(self, name: str) -> int:
        """The largest rise over the region's start before the first range `name` opens."""
        return self._window_peak(None, min(start for start, _ in self.ranges_ns[name]))

    def range_peak(self, name: str) -> int:
        """The largest rise inside one range `name` over the memory live when it opened."""
        return max(self._window_peak(start, end) for start, end in self.ranges_ns[name])


@contextlib.contextmanager
def recorded_allocations(model) -> Iterator[list[AllocationTrace]]:
    """
    Records the allocations of the enclosed step, with two named ranges: the optimizer's, and every build of the
    fusion encoder's inputs (its `embeddings` module: the position indices, gathers and sums of Eq. 3, one call per
    step over the distinct input rows). The trace is appended to the yielded list on exit.
    """
    traces = []
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        with module_ranges({FUSION_INPUTS_RANGE: [model.fusion_encoder.embeddings]}):
            yield traces
    traces.append(AllocationTrace.from_profile(profiler, (OPTIMIZER_RANGE, FUSION_INPUTS_RANGE)))


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors`."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors if t is not None}
    return sum(storages.values())


def resident_bytes(setup: StepSetup) -> int:
    """What stays allocated between steps: the model's and the teacher's parameters, buffers and gradients, AdamW's
    state and the batch."""
    modules = (setup.model, setup.teacher)
    parameters = [p for module in modules for p in module.parameters()]
    state = [value for entry in setup.optimizer.state.values() for value in entry.values() if torch.is_tensor(value)]
    return tensor_bytes(
        parameters
        + [p.grad for p in parameters]
        + [b for module in modules for b in module.buffers()]
        + state
        + [t for t in setup.batch.values() if torch.is_tensor(t)]
    )


# ------------------------------------------------------------------------------------------------------ projection
def linear_fit(xs, ys) -> dict:
    """Least-squares `y = intercept + slope * x` over two or more distinct x, with its largest residual."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if np.unique(xs).size < 2:
        raise ValueError(f"a linear fit needs two or more distinct sizes, got {xs.tolist()}")
    # The centred normal equations rather than `np.polyfit`, whose least-squares solver (numpy 2.4.6) returns a slope
    # of 1e-15 for a flat line: memory that does not grow must fit a slope of exactly 0.
    x_offsets, y_offsets = xs - xs.mean(), ys - ys.mean()
    slope = (x_offsets * y_offsets).sum() / np.square(x_offsets).sum()
    intercept = ys.mean() - slope * xs.mean()
    residuals = ys - (intercept + slope * xs)
    return {"intercept": float(intercept), "slope": float(slope), "max_abs_residual": float(np.abs(residuals).max())}


def projected_peak(fit: dict, floor: float, batch: float) -> float:
    """The projected peak at `batch`: the fitted line, or `floor` (the optimizer's peak) where that is higher."""
    return max(fit["intercept"] + fit["slope"] * batch, floor)


def largest_fitting_batch(fit: dict, floor: float, budget: float) -> int:
    """The largest whole batch whose projected peak stays within `budget`; 0 when none does."""
    if fit["slope"] <= 0:
        raise ValueError(f"memory does not grow with the batch in this fit ({fit}): nothing to project from")
    if floor > budget:
        return 0
    return max(int(np.floor((budget - fit["intercept"]) / fit["slope"])), 0)


# ------------------------------------------------------------------------------------------------------------ run
def _set_checkpointing(model, enabled: bool) -> None:
    if enabled:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.activation_checkpointing_disable()


def _measure_memory(setup: StepSetup) -> dict:
    """One profiled step of `setup`, whose AdamW state exists from an earlier step."""
    for parameter in setup.model.parameters():
        if parameter.requires_grad and parameter.grad is None:  # the CLIP step frees them; they must be resident
            parameter.grad = torch.zeros_like(parameter)
    with recorded_allocations(setup.model) as traces:
        setup.step(set_to_none=False)
    (trace,) = traces
    resident = resident_bytes(setup)
    forward_backward = trace.peak_before(OPTIMIZER_RANGE)
    optimizer = trace.range_peak(OPTIMIZER_RANGE)
    return {
        "triplets": int(setup.batch["triplets"].shape[0]),
        "batch": describe_batch(setup.batch),
        "fusion_sequences": fusion_sequence_count(setup.batch),
        "resident_bytes": resident,
        "forward_backward_peak_bytes": forward_backward,
        "optimizer_peak_bytes": optimizer,
        "peak_bytes": resident + max(forward_backward, optimizer),
        "fusion_inputs_peak_bytes": trace.range_peak(FUSION_INPUTS_RANGE),
    }


def _measure_config(setup: StepSetup, batches: dict[int, dict], reps: int) -> dict:
    """
    Memory at every batch size, then the time of the Knowledge-CLIP step and of a plain CLIP step at the smallest,
    for the model's current checkpointing setting. The CLIP step runs the model's own towers (they are CLIP's,
    module for module) with its AdamW, which leaves the parameters that get no gradient alone: the same towers, the
    same entities, and no second copy of the model in memory.
    """
    points = []
    for batch_size in sorted(batches, reverse=True):  # the smallest last: its profiled step warms up the timing
        setup.batch = batches[batch_size]
        points.append(_measure_memory(setup))
    points.reverse()
    timings = interleaved_medians(
        {"knowledge_clip": setup.step, "clip": lambda: clip_step(setup.model, setup.batch, setup.optimizer)},
        reps,
        warmup=0,
    )
    sizes = [point["triplets"] for point in points]
    peak_fit = linear_fit(sizes, [p["resident_bytes"] + p["forward_backward_peak_bytes"] for p in points])
    optimizer_floor = max(p["resident_bytes"] + p["optimizer_peak_bytes"] for p in points)
    inputs_fit = linear_fit(sizes, [p["fusion_inputs_peak_bytes"] for p in points])
    return {
        "points": points,
        "timing_triplets": sizes[0],
        "step_s": timings["knowledge_clip"]["median_s"],
        "clip_step_s": timings["clip"]["median_s"],
        "ratio_vs_clip_step": timings["knowledge_clip"]["median_s"] / timings["clip"]["median_s"],
        "peak_fit": peak_fit,
        "optimizer_floor_bytes": optimizer_floor,
        "fusion_inputs_fit": inputs_fit,
        "projected": [
            {
                "triplets": batch,
                "peak_bytes": projected_peak(peak_fit, optimizer_floor, batch),
                "fusion_inputs_peak_bytes": projected_peak(inputs_fit, 0.0, batch),
            }
            for batch in PROJECTED_BATCHES
        ],
        "largest_batch_within_device_memory": largest_fitting_batch(peak_fit, optimizer_floor, DEVICE_MEMORY_BYTES),
        "times_s": {name: figures["times_s"] for name, figures in timings.items()},
    }


def run(worlds: list, batch_sizes: list[tuple[int, ...]], reps: int) -> dict:
    """Every model size (one world each) at its batch sizes, without and with activation checkpointing."""
    models = {}
    for world, sizes in zip(worlds, batch_sizes):
        setup = StepSetup.create(world, min(sizes))
        setup.step()  # allocates AdamW's state, which then stays resident
        # Seed 0 for every size: a batch holds the triplets of every smaller one.
        batches = {size: world.batch(size) for size in sizes}
        configs = {}
        for name, checkpointing in (("plain", False), ("checkpointing", True)):
            _set_checkpointing(setup.model, checkpointing)
            configs[name] = _measure_config(setup, batches, reps)
            print(f"  {world.size.name}, {name}: done", flush=True)
        configs["checkpointing"]["step_ratio_vs_plain"] = (
            configs["checkpointing"]["step_s"] / configs["plain"]["step_s"]
        )
        models[world.size.name] = {"model": describe_size(world.size, setup.model), **configs}
    return {
        "method": " ".join(__doc__.split("\n\n")[1:]).replace("\n", " "),
        "num_neighbors": worlds[0].num_neighbors,
        "device_memory_bytes": DEVICE_MEMORY_BYTES,
        "projected_batches": list(PROJECTED_BATCHES),
        "models": models,
    }
