"""The losses' multi-process path: two gloo processes, each with its share of a global batch (shares of different
sizes, as the unique entities of real batches are), give the loss and gradients of one process on the whole batch."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from knowledge_clip.losses import FeatureGather, e2e_loss, e2r_loss, g2e_loss, kd_loss

WORLD_SIZE = 2
ROWS = [5, 3]  # rows of each process: deliberately unequal


def make_global_batch():
    generator = torch.Generator().manual_seed(0)
    n = sum(ROWS)
    return {
        "tails": torch.randn(n, 8, generator=generator),
        "queries": torch.randn(n, 8, generator=generator),
        "head_ids": torch.tensor([1, 2, 3, 1, 5, 6, 2, 8]),
        "relation_ids": torch.tensor([0, 1, 0, 0, 1, 1, 1, 0]),
        "tail_ids": torch.tensor([10, 11, 10, 12, 13, 14, 11, 15]),  # repeats across processes: masked negatives
        "logits": torch.randn(n, 4, generator=generator),
        "labels": torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]),
        "images": torch.randn(n, 6, generator=generator),
        "texts": torch.randn(n - 2, 6, generator=generator),
        "teacher_images": torch.randn(n, 6, generator=generator),
        "teacher_texts": torch.randn(n - 2, 6, generator=generator),
    }


def all_losses(batch, leaves, gather):
    scale = torch.tensor(2.0)
    return {
        "e2e": e2e_loss(
            leaves["tails"],
            leaves["queries"],
            batch["head_ids"],
            batch["relation_ids"],
            batch["tail_ids"],
            0.1,
            gather,
        ),
        "g2e": g2e_loss(leaves["tails"], leaves["queries"], batch["tail_ids"], 0.1, gather),
        "e2r": e2r_loss(leaves["logits"], batch["labels"], gather),
        "kd": kd_loss(
            leaves["images"], leaves["texts"], batch["teacher_images"], batch["teacher_texts"], scale, 1.5, 2.0, gather
        ),
    }


def shard(batch, rank):
    """This rank's rows: images/tails/... split by ROWS, texts split 4/2 (another uneven share)."""
    start, stop = sum(ROWS[:rank]), sum(ROWS[: rank + 1])
    text_start, text_stop = (0, 4) if rank == 0 else (4, sum(ROWS) - 2)
    return {
        key: value[text_start:text_stop] if key in ("texts", "teacher_texts") else value[start:stop]
        for key, value in batch.items()
    }


GRADIENT_INPUTS = ("tails", "queries", "logits", "images", "texts")


def worker(rank, init_file, result_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    local = shard(make_global_batch(), rank)
    results = {}
    for name, gather in (("gathered", FeatureGather()), ("local", None)):
        leaves = {k: local[k].clone().requires_grad_() for k in GRADIENT_INPUTS}
        losses = all_losses(local, leaves, gather)
        sum(losses.values()).backward()
        results[name] = {
            "losses": {k: v.detach() for k, v in losses.items()},
            "grads": {k: leaves[k].grad for k in GRADIENT_INPUTS},
        }
    torch.save(results, f"{result_file}.{rank}")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gloo")
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path / "result")), nprocs=WORLD_SIZE)
    return [torch.load(tmp_path / f"result.{rank}") for rank in range(WORLD_SIZE)]


@pytest.fixture(scope="module")
def single_process():
    batch = make_global_batch()
    leaves = {k: batch[k].clone().requires_grad_() for k in GRADIENT_INPUTS}
    losses = all_losses(batch, leaves, None)
    sum(losses.values()).backward()
    return losses, leaves


def test_two_processes_equal_one_process_on_the_global_batch(two_processes, single_process):
    losses, leaves = single_process
    results = [r["gathered"] for r in two_processes]
    for name, value in losses.items():
        # DDP averages over processes: the mean of the per-process values is the global loss.
        averaged = sum(r["losses"][name] for r in results) / WORLD_SIZE
        assert torch.allclose(averaged, value.detach(), atol=1e-5), name
    for name in GRADIENT_INPUTS:
        # Each process's rows receive the gradient of the sum of all processes' losses; DDP's averaging of the
        # parameter gradients divides by the world size.
        distributed = torch.cat([r["grads"][name] for r in results]) / WORLD_SIZE
        assert torch.allclose(distributed, leaves[name].grad, atol=1e-5), name


def test_without_gather_the_processes_only_see_local_negatives(two_processes, single_process):
    losses, _ = single_process
    results = [r["local"] for r in two_processes]
    for name in ("e2e", "g2e", "kd"):
        averaged = sum(r["losses"][name] for r in results) / WORLD_SIZE
        assert not torch.allclose(averaged, losses[name].detach(), atol=1e-3), name
