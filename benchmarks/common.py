"""Shared pieces of the benchmark suite: timing, the synthetic knowledge graph, model sizes, batches, the training
step (and its FLOPs) that several sections time, and tables.

Every benchmark measures a ratio against a baseline computed in the same run on the same inputs, as the median of
several repetitions after warm-up (`median_seconds`, `interleaved_medians`). The inputs are realistic: a synthetic
`KnowledgeGraph` whose image entities are JPEG files on disk and whose text entities mix short concept names and
caption-length phrases, batched by the real `KnowledgeTripletDataset` + `KnowledgeCLIPCollator` (view choice, image
decoding, neighbour sampling, `KnowledgeCLIPProcessor.encode_knowledge`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.profiler import record_function
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTextConfig, CLIPTokenizer

from knowledge_clip import KnowledgeCLIPConfig, KnowledgeCLIPModel, KnowledgeCLIPProcessor
from knowledge_clip.data.collator import KnowledgeCLIPCollator, KnowledgeTripletDataset
from knowledge_clip.graph import EntityView, KnowledgeGraph, KnowledgeGraphBuilder, ViewKind
from knowledge_clip.hub import OPENAI_CLIP_TOWERS
from knowledge_clip.training import TeacherEmbeddingCache, teacher_embeddings

RELATIONS = [
    "is a",
    "has part",
    "part of",
    "left of",
    "right of",
    "above",
    "below",
    "next to",
    "bigger than",
    "has property",
    "used for",
    "at location",
    "related to",
    "image of",
    "caption of",
    "synonym",
]
_WORDS = (
    "a the red orange yellow green blue purple pink brown small large big tiny circle square triangle star cross "
    "shape colour dog cat horse bird car truck bus tree house street table chair person man woman child ball "
    "photo picture of on in with near behind front left right top bottom two three many some old new bright dark "
    "wooden metal glass park beach river road field sky cloud grass water window door wall sitting standing "
    "running holding looking playing"
).split()


# ---------------------------------------------------------------------------------------------------------- timing
def median_seconds(function: Callable[[], object], reps: int, warmup: int, budget_s: float | None = None) -> dict:
    """
    Runs `function` `warmup` times untimed, then `reps` times timed; returns the median and every time. With
    `budget_s`, the timed repetitions stop once they have taken that long (after at least one), so that a run on a
    lent machine ends in its time.
    """
    for _ in range(warmup):
        function()
    times = []
    for _ in range(reps):
        begin = time.perf_counter()
        function()
        times.append(time.perf_counter() - begin)
        if budget_s is not None and sum(times) >= budget_s:
            break
    return {"median_s": statistics.median(times), "times_s": times}


def interleaved_medians(functions: dict[str, Callable[[], object]], reps: int, warmup: int) -> dict[str, dict]:
    """
    Times several functions in alternation (A, B, B, A, A, B, ...) so that a change of machine load during the run
    hits all of them alike and none always runs first; `warmup` untimed rounds first. Returns `median_seconds`-style figures per name.
    """
    for _ in range(warmup):
        for function in functions.values():
            function()
    times = {name: [] for name in functions}
    for rep in range(reps):
        order = list(functions.items())
        for name, function in order if rep % 2 == 0 else reversed(order):  # no one always runs first
            begin = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - begin)
    return {name: {"median_s": statistics.median(values), "times_s": values} for name, values in times.items()}


def matmul_flops_per_second(size: int, reps: int, warmup: int, device: str = "cpu", dtype=torch.float32) -> dict:
    """This machine's large-matmul rate: `2 * size**3` FLOPs per `size x size` product, median of `reps`."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def product():
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()

    timing = median_seconds(product, reps, warmup)
    return {"size": size, "dtype": str(dtype), "flops_per_s": 2 * size**3 / timing["median_s"], **timing}


# ------------------------------------------------------------------------------------------------------- the world
@dataclasses.dataclass
class ModelSize:
    """The sizes of a benchmark model: both towers, the fusion encoder and the image resolution."""

    name: str
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    text_hidden: int
    text_layers: int
    text_heads: int
    image_size: int
    patch_size: int
    projection_dim: int
    fusion_hidden: int
    fusion_layers: int
    fusion_heads: int
    text_max_tokens: int = 32
    vocab_size: int | None = None  # the tokenizer's when None


def clip_model_size(name: str, base_model: str) -> ModelSize:
    """
    The towers of OpenAI's `base_model` (their shapes from `knowledge_clip.hub.OPENAI_CLIP_TOWERS`, vocabulary
    `CLIPTextConfig`'s default, which is OpenAI's 49,408 tokens) with the paper's fusion encoder: 4 layers of width
    1024, and 16 heads as in the recipes of examples/configs.
    """
    towers = OPENAI_CLIP_TOWERS[base_model]
    text, vision = towers["text_config"], towers["vision_config"]
    if any(tower["intermediate_size"] != 4 * tower["hidden_size"] for tower in (text, vision)):
        raise ValueError(f"{base_model}: model_config builds tower MLPs of 4x the width, these are not.")
    return ModelSize(
        name,
        vision["hidden_size"],
        vision["num_hidden_layers"],
        vision["num_attention_heads"],
        text["hidden_size"],
        text["num_hidden_layers"],
        text["num_attention_heads"],
        vision["image_size"],
        vision["patch_size"],
        towers["projection_dim"],
        fusion_hidden=1024,
        fusion_layers=4,
        fusion_heads=16,
        text_max_tokens=text["max_position_embeddings"],
        vocab_size=CLIPTextConfig().vocab_size,
    )


# A CPU-sized model for the timed CPU sections; QUICK for smoke runs; VIT_B32 and VIT_L14 are OpenAI's CLIP towers
# with the paper's fusion encoder, for the scale and GPU sections.
CPU = ModelSize("cpu-small", 256, 4, 4, 256, 4, 4, 64, 16, 128, 256, 2, 4)
QUICK = ModelSize("quick-tiny", 64, 2, 2, 64, 2, 2, 32, 16, 32, 64, 1, 2)
VIT_B32 = clip_model_size("vit-b32", "openai/clip-vit-base-patch32")
VIT_L14 = clip_model_size("vit-l14", "openai/clip-vit-large-patch14")


def model_config(size: ModelSize, tokenizer: CLIPTokenizer, num_neighbors: int) -> KnowledgeCLIPConfig:
    """
    The Knowledge-CLIP configuration of `size`. Dropout and drop-path are 0 so that two computations of the same
    step (batched and literal) give the same loss; one message-passing layer over one hop of `num_neighbors`
    sampled in-edges per tail (the issue's 3B + 2BK fusion sequences).
    """
    return KnowledgeCLIPConfig(
        text_config={
            "vocab_size": size.vocab_size or len(tokenizer),
            "hidden_size": size.text_hidden,
            "intermediate_size": 4 * size.text_hidden,
            "num_hidden_layers": size.text_layers,
            "num_attention_heads": size.text_heads,
            "max_position_embeddings": size.text_max_tokens,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": size.vision_hidden,
            "intermediate_size": 4 * size.vision_hidden,
            "num_hidden_layers": size.vision_layers,
            "num_attention_heads": size.vision_heads,
            "image_size": size.image_size,
            "patch_size": size.patch_size,
        },
        projection_dim=size.projection_dim,
        fusion_encoder_config={
            "hidden_size": size.fusion_hidden,
            "num_hidden_layers": size.fusion_layers,
            "num_attention_heads": size.fusion_heads,
            "intermediate_size": 4 * size.fusion_hidden,
            "drop_path_rate": 0.0,
        },
        relation_vocab=list(RELATIONS),
        graph_num_layers=1,
        graph_num_neighbors=num_neighbors,
    )


def describe_size(size: ModelSize, model: KnowledgeCLIPModel) -> dict:
    """The printed description of a model size, with its parameter counts."""
    fusion = sum(p.numel() for p in model.fusion_encoder.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {**dataclasses.asdict(size), "parameters": total, "fusion_parameters": fusion}


def _text(rng: random.Random) -> str:
    """A concept name (1-3 words) or a caption (8-16 words), in equal shares."""
    length = rng.randint(1, 3) if rng.random() < 0.5 else rng.randint(8, 16)
    return " ".join(rng.choice(_WORDS) for _ in range(length))


def _image(rng: random.Random, size: int) -> Image.Image:
    """A scene of a few coloured boxes and ellipses on a tinted background (compresses and decodes like a photo)."""
    image = Image.new("RGB", (size, size), tuple(rng.randint(180, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 6)):
        x0, y0 = rng.randint(0, size - 20), rng.randint(0, size - 20)
        box = (x0, y0, x0 + rng.randint(10, size // 2), y0 + rng.randint(10, size // 2))
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return image


def tokenizer_for_world(directory: Path, max_tokens: int) -> CLIPTokenizer:
    """
    A CLIP BPE tokenizer trained on the world's words and relations (offline; CLIP's own needs a download), saved in
    `directory` on first use: training is not reproducible across processes, and every process of a world must
    tokenise alike.
    """
    if directory.exists():
        return CLIPTokenizer.from_pretrained(directory)
    tokenizer = CLIPTokenizer().train_new_from_iterator([" ".join(_WORDS)] * 4 + RELATIONS, vocab_size=1000)
    tokenizer.model_max_length = max_tokens
    tokenizer.save_pretrained(directory)
    return tokenizer


def build_graph(
    root: Path, num_entities: int, triplets_per_entity: int, image_pixels: int, seed: int = 0
) -> KnowledgeGraph:
    """
    A synthetic knowledge graph under `root`: half image entities (JPEG files of `image_pixels` squared, written
    once), half text entities; `triplets_per_entity * num_entities` triplets with uniform heads and tails, so that
    in-degrees are about Poisson(`triplets_per_entity`) and almost every tail has K in-edges to sample.
    """
    rng = random.Random(seed)
    builder = KnowledgeGraphBuilder("synthetic", root=root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for entity in range(num_entities):
        if entity % 2:
            path = f"images/{entity}.jpg"
            image = _image(rng, image_pixels)  # drawn even when the file exists, so that the texts are the same
            if not (root / path).exists():
                image.save(root / path, quality=90)
            builder.add_entity(f"image:{entity}", [EntityView(ViewKind.IMAGE, path=path)])
        else:
            builder.add_entity(f"text:{entity}", text=f"{_text(rng)} {entity}")
    for relation in RELATIONS:
        builder.add_relation(relation)
    np_rng = np.random.default_rng(seed)
    count = triplets_per_entity * num_entities
    heads = np_rng.integers(0, num_entities, count)
    tails = np_rng.integers(0, num_entities, count)
    relations = np_rng.integers(0, len(RELATIONS), count)
    for head, relation, tail in zip(heads.tolist(), relations.tolist(), tails.tolist()):
        builder.add_triplet(head, relation, tail)  # duplicates and self-loops are refused and counted
    return builder.build()


def make_processor(tokenizer: CLIPTokenizer, image_size: int) -> KnowledgeCLIPProcessor:
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return KnowledgeCLIPProcessor(image_processor, tokenizer, relation_vocab=list(RELATIONS))


@dataclasses.dataclass
class World:
    """A graph on disk with the tokenizer, processor and collator that batch it for one model size."""

    root: Path
    graph: KnowledgeGraph
    tokenizer: CLIPTokenizer
    processor: KnowledgeCLIPProcessor
    collator: KnowledgeCLIPCollator
    size: ModelSize
    num_neighbors: int

    def dataset(self, num_samples: int, seed: int = 0) -> KnowledgeTripletDataset:
        return KnowledgeTripletDataset(self.graph, num_samples=num_samples, seed=seed)

    def batch(self, batch_size: int, seed: int = 0) -> dict:
        """One collated knowledge batch of `batch_size` triplets with their sampled in-edges."""
        dataset = self.dataset(batch_size, seed)
        return dict(self.collator(dataset.__getitems__(range(batch_size))))

    def model(self, seed: int = 0) -> KnowledgeCLIPModel:
        torch.manual_seed(seed)
        return KnowledgeCLIPModel(model_config(self.size, self.tokenizer, self.num_neighbors))


def make_world(
    root: Path, size: ModelSize, num_entities: int, num_neighbors: int, image_pixels: int = 256, seed: int = 0
) -> World:
    """The synthetic graph under `root` and the pieces that batch it for `size` (one hop of `num_neighbors`)."""
    graph = build_graph(root, num_entities, triplets_per_entity=8, image_pixels=image_pixels, seed=seed)
    tokenizer = tokenizer_for_world(root / f"tokenizer-{size.text_max_tokens}", size.text_max_tokens)
    processor = make_processor(tokenizer, size.image_size)
    collator = KnowledgeCLIPCollator(graph, processor, num_neighbors=num_neighbors, num_hops=1, seed=seed)
    return World(root, graph, tokenizer, processor, collator, size, num_neighbors)


def describe_batch(batch: dict) -> dict:
    """Entity, triplet and edge counts of a knowledge batch."""
    return {
        "triplets": int(batch["triplets"].shape[0]),
        "graph_edges": int(batch["graph_edges"].shape[0]) if "graph_edges" in batch else 0,
        "text_entities": int(batch["entity_input_ids"].shape[0]) if "entity_input_ids" in batch else 0,
        "image_entities": int(batch["entity_pixel_values"].shape[0]) if "entity_pixel_values" in batch else 0,
        "relations": int(batch["relation_input_ids"].shape[0]),
    }


# ----------------------------------------------------------------------------------------------------------- steps
LOSS_NAMES = ("loss", "e2e_loss", "e2r_loss", "g2e_loss", "kd_loss")
OPTIMIZER_RANGE = "optimizer"
"""The profiler range `training_step` opens around `optimizer.step()`."""


def knowledge_losses(
    model: KnowledgeCLIPModel, teacher: CLIPModel, batch: dict, teacher_cache: TeacherEmbeddingCache | None = None
) -> dict[str, torch.Tensor]:
    """The model's own computation: `forward(return_loss=True)` on the deduplicated batch, the teacher's embeddings
    computed for every entity, or read from `teacher_cache` where it holds them."""
    output = model(**batch, return_loss=True, **teacher_embeddings(teacher, batch, teacher_cache))
    return {name: output[name] for name in LOSS_NAMES}


def autocast(batch: dict, dtype: torch.dtype | None) -> torch.autocast:
    """`torch.autocast` to `dtype` on the batch's device; a no-op context when `dtype` is `None`."""
    return torch.autocast(batch["triplets"].device.type, dtype=dtype, enabled=dtype is not None)


def training_step(
    losses_fn, model, teacher, batch, optimizer, autocast_dtype=None, set_to_none: bool = True
) -> dict[str, torch.Tensor]:
    """
    zero_grad, the objectives by `losses_fn` (under `torch.autocast(autocast_dtype)` when given), backward, optimizer
    step. `set_to_none=False` keeps the gradient tensors allocated from step to step (zeroed), so that a step's
    memory rise is its activations and temporaries alone (bench_scale).
    """
    optimizer.zero_grad(set_to_none=set_to_none)
    with autocast(batch, autocast_dtype):
        losses = losses_fn(model, teacher, batch)
    losses["loss"].backward()
    with record_function(OPTIMIZER_RANGE):
        optimizer.step()
    return losses


def clip_step(clip: CLIPModel, batch: dict, optimizer) -> None:
    """A plain CLIP step on the batch's unique entities: both towers over all of them, CLIP's loss on the first
    min(texts, images) image-text pairs."""
    optimizer.zero_grad(set_to_none=True)
    text = clip.get_text_features(
        input_ids=batch["entity_input_ids"], attention_mask=batch["entity_attention_mask"]
    ).pooler_output
    image = clip.get_image_features(pixel_values=batch["entity_pixel_values"]).pooler_output
    pairs = min(text.shape[0], image.shape[0])
    text = torch.nn.functional.normalize(text[:pairs], dim=-1)
    image = torch.nn.functional.normalize(image[:pairs], dim=-1)
    logits = clip.logit_scale.exp() * image @ text.T
    targets = torch.arange(pairs, device=logits.device)
    loss = torch.nn.functional.cross_entropy(logits, targets) + torch.nn.functional.cross_entropy(logits.T, targets)
    loss.backward()
    optimizer.step()


@dataclasses.dataclass
class StepSetup:
    """
    One knowledge batch on a device, a freshly initialised model of the world's size, its teacher and AdamW; the step
    runs its forward under `torch.autocast(autocast_dtype)` when that is given (bf16 on a GPU).
    """

    batch: dict
    model: KnowledgeCLIPModel
    teacher: CLIPModel
    optimizer: torch.optim.Optimizer
    autocast_dtype: torch.dtype | None = None

    @classmethod
    def create(
        cls, world, batch_size: int, device: str = "cpu", autocast_dtype: torch.dtype | None = None
    ) -> StepSetup:
        model = world.model().to(device).train()
        teacher = model.to_clip().eval().requires_grad_(False)
        batch = {name: tensor.to(device) for name, tensor in world.batch(batch_size).items()}
        # Fused AdamW on a GPU (one kernel over all parameters, as CUDA trainers use); the CPU sections keep the
        # default implementation their figures were measured with.
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=torch.device(device).type == "cuda")
        return cls(batch, model, teacher, optimizer, autocast_dtype)

    def step(self, set_to_none: bool = True) -> dict[str, torch.Tensor]:
        """One batched training step (what the trainer runs); `set_to_none` as in `training_step`."""
        return training_step(
            knowledge_losses, self.model, self.teacher, self.batch, self.optimizer, self.autocast_dtype, set_to_none
        )

    def teacher_cached_step(self, cache: TeacherEmbeddingCache) -> dict[str, torch.Tensor]:
        """One batched training step with the trainer's teacher cache; after the first, every entity is a hit (the
        trainer's steady state on a graph whose entity views recur, as the benchmark world's do)."""

        def losses(model, teacher, batch):
            return knowledge_losses(model, teacher, batch, cache)

        return training_step(losses, self.model, self.teacher, self.batch, self.optimizer, self.autocast_dtype)

    def flops(self) -> int:
        """FLOPs of the step's forward and backward (counted by `FlopCounterMode`: matmuls, convolutions and
        attention); the optimizer's are not counted and no parameter changes."""
        self.optimizer.zero_grad(set_to_none=True)
        with FlopCounterMode(display=False) as counter:
            with autocast(self.batch, self.autocast_dtype):
                loss = knowledge_losses(self.model, self.teacher, self.batch)["loss"]
            loss.backward()
        self.optimizer.zero_grad(set_to_none=True)
        return counter.get_total_flops()


def fusion_sequence_count(batch: dict) -> int:
    """
    The fusion sequences the model runs for a knowledge batch, each once: `Y(-,-,e)` of every entity, `Y(h,r,-)` of
    every distinct (head, relation) query of the triplets, `R(h,-,t)` of every distinct (head, tail) pair of the
    triplets and graph edges.
    """
    triplets = batch["triplets"]
    edges = batch.get("graph_edges", triplets.new_zeros(0, 3))
    entities = batch["entity_ids"].shape[0]
    queries = torch.unique(triplets[:, :2], dim=0).shape[0]
    pairs = torch.unique(torch.cat([triplets[:, [0, 2]], edges[:, [0, 2]]]), dim=0).shape[0]
    return entities + queries + pairs


@contextlib.contextmanager
def module_ranges(groups: dict[str, list[torch.nn.Module]]) -> Iterator[None]:
    """
    Opens a profiler range named after its group around every forward call of each module (forward hooks, without
    touching the model's code), so that a profile tells which part of a step each op and allocation belongs to.
    """
    handles, open_ranges = [], {}
    for name, modules in groups.items():
        for module in modules:

            def enter(module, args, name=name):
                open_ranges.setdefault(id(module), []).append(record_function(name).__enter__())

            def leave(module, args, output):
                open_ranges[id(module)].pop().__exit__(None, None, None)

            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# ---------------------------------------------------------------------------------------------------------- memory
def rss_bytes() -> int:
    """Current resident set size of this process (Linux `/proc/self/statm`)."""
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------------------- tables
def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Prints a fixed-width table; floats with 3 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(str(h))] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  " + "  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    for row in cells:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)))
