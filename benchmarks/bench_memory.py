"""Section 6: memory. Peak memory of a training step on 2 CPU processes (gloo, DDP) as the per-process batch grows:
with and without activation checkpointing, and with local-loss rows (`knowledge_clip.losses`, open_clip's
`local_loss=True`) against every process computing the full global N x N similarity matrix (`local_loss=False`).

Each configuration runs in fresh processes. After setup (imports, graph, model, batch, DDP) and one warm-up step
(which allocates the optimizer state), the kernel's peak-RSS mark is reset (`/proc/self/clear_refs`, Linux >= 4.0)
and one more step runs; its peak memory is `VmHWM - RSS before the step`, the largest over the processes. Where the
mark cannot be reset, `ru_maxrss` is used instead (then any higher peak reached during setup hides the step's).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import resource
import tempfile
from pathlib import Path
from unittest import mock

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from common import ModelSize, make_world, rss_bytes

import knowledge_clip.losses
from knowledge_clip.losses import FeatureGather, KnowledgeCLIPLoss
from knowledge_clip.training import teacher_embeddings

WORLD_SIZE = 2


def full_matrix_info_nce(x, y, match_keys, scale, gather: FeatureGather):
    """
    `info_nce_loss` as open_clip computes it with `local_loss=False`: every process builds the full global N x N
    logits and averages the loss over all N rows (the same value in every process, equal to the local-rows loss
    averaged over processes).
    """
    x_all, _ = gather(F.normalize(x, dim=-1))
    y_all, _ = gather(F.normalize(y, dim=-1))
    n = x_all.shape[0]
    false_negatives = torch.zeros(n, n, dtype=torch.bool)
    for key in match_keys:
        key_all, _ = gather(key)
        equal = key_all.unsqueeze(1) == key_all.unsqueeze(0)
        false_negatives |= equal.all(dim=-1) if equal.dim() == 3 else equal
    false_negatives.fill_diagonal_(False)
    logits = (scale * x_all @ y_all.T).masked_fill(false_negatives, float("-inf"))
    targets = torch.arange(n)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _peak_rss_bytes(reset: bool) -> int:
    if reset:
        with open("/proc/self/status") as stream:
            line = next(line for line in stream if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as stream:
            stream.write("5")
        return True
    except OSError:
        return False


def _worker(rank: int, spec: dict, directory: str) -> None:
    torch.set_num_threads(1)  # two processes share the cores
    dist.init_process_group("gloo", init_method=f"file://{directory}/init", rank=rank, world_size=WORLD_SIZE)
    world = make_world(Path(spec["root"]), ModelSize(**spec["size"]), spec["num_entities"], spec["num_neighbors"])
    batch = world.batch(spec["batch_size"], seed=rank)
    batch.setdefault("graph_edges", batch["triplets"].new_zeros(0, 3))  # every process runs the same collectives
    model = world.model(seed=0).train()
    teacher = model.to_clip().eval().requires_grad_(False)
    if spec["checkpointing"]:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=1e-5)
    loss_fn = KnowledgeCLIPLoss(model.config, gather=FeatureGather())

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        output = ddp(**batch)
        loss = loss_fn(output, model.logit_scale, **batch, **teacher_embeddings(teacher, batch))["loss"]
        loss.backward()
        optimizer.step()
        return loss.item()

    full_matrix = mock.patch.object(knowledge_clip.losses, "info_nce_loss", full_matrix_info_nce)
    with full_matrix if spec["loss"] == "full" else contextlib.nullcontext():
        first_loss = step()  # same weights in every configuration: the variants' losses must agree
        reset = _reset_peak_rss()
        before = rss_bytes()
        step()
        peak = _peak_rss_bytes(reset) - before
    result = {"step_peak_bytes": peak, "rss_before_step_bytes": before, "hwm_reset": reset, "loss": first_loss}
    Path(directory, f"result.{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def measure(spec: dict) -> dict:
    """One configuration in two fresh processes; the larger process peak."""
    with tempfile.TemporaryDirectory() as directory:
        mp.spawn(_worker, args=(spec, directory), nprocs=WORLD_SIZE)
        ranks = [json.loads(Path(directory, f"result.{rank}.json").read_text()) for rank in range(WORLD_SIZE)]
    return {
        "step_peak_bytes": max(r["step_peak_bytes"] for r in ranks),
        "hwm_reset": all(r["hwm_reset"] for r in ranks),
        # The first step's loss averaged over processes, from the same initial weights in every configuration.
        "first_step_loss": sum(r["loss"] for r in ranks) / WORLD_SIZE,
    }


def run(world, batch_sizes: list[int]) -> dict:
    """Every (batch size, checkpointing, loss variant) configuration, plus ratios against the plain configuration."""
    base = {
        "root": str(world.root),
        "size": dataclasses.asdict(world.size),
        "num_entities": world.graph.num_entities,
        "num_neighbors": world.num_neighbors,
    }
    rows = []
    for batch_size, checkpointing, loss in itertools.product(batch_sizes, (False, True), ("local", "full")):
        spec = {**base, "batch_size": batch_size, "checkpointing": checkpointing, "loss": loss}
        rows.append({"batch_size": batch_size, "checkpointing": checkpointing, "loss": loss, **measure(spec)})
        print(f"  batch {batch_size}, checkpointing {checkpointing}, {loss} logits: done", flush=True)
    for batch_size in batch_sizes:
        losses = [row["first_step_loss"] for row in rows if row["batch_size"] == batch_size]
        if max(losses) - min(losses) > 1e-4:  # the variants change memory, never the objective
            raise AssertionError(f"batch {batch_size}: the variants' first-step losses differ: {losses}")
    for row in rows:
        plain = next(
            r for r in rows if r["batch_size"] == row["batch_size"] and not r["checkpointing"] and r["loss"] == "local"
        )
        row["ratio_vs_plain"] = row["step_peak_bytes"] / max(plain["step_peak_bytes"], 1)
    return {"world_size": WORLD_SIZE, "method": __doc__.split("\n\n")[1].replace("\n", " "), "rows": rows}
