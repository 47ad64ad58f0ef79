# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Every fenced code block of README.md and docs/*.md runs, offline and at tiny sizes, so that none can rot.

Each page runs top to bottom in its own working directory, which holds what `make demo` leaves (a tiny demo run:
`demo_world/`, `stage0_clip/`, `knowledge-clip-demo/`) and the files a reader is assumed to have: python blocks share
one namespace, bash blocks run each command in process (an example script's `main`, with tiny flags appended, which
win over the page's), json and yaml blocks are parsed. What does not run is listed in EXEMPT or EXEMPT_LANGUAGES with
its reason; an exemption that no longer matches a block fails, as does a block without a language.

Pages name datasets under /data and checkpoints by Hub id; they resolve locally without editing the pages:
- `/data/` becomes `data/` in every block and config (the tests cannot write /data), and `data/...` and the
  fine-tuning data's relative paths are copies of demo-world files in the same published formats (DATA_LAYOUT);
- the Hub ids in HUB_IDS load tiny local checkpoints from a Hub cache of this session (HF_HUB_OFFLINE=1);
- `HfApi` is a local fake, so the push examples run and upload nothing (graphs go to local folders and come back).
Only sizes are substituted in the text (SIZE_SUBSTITUTIONS), and each substitution must still apply.
"""

import importlib
import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import huggingface_hub.constants
import pytest
import yaml
from accelerate.state import AcceleratorState, GradientState
from graph_utils import FakeHub
from huggingface_hub import HfApi
from tiny import solid_image
from training_utils import REPO, TINY_ARGS, TINY_EVALUATE_ARGS, TINY_FINETUNE_ARGS, load_example, run_pretrain

PAGES = ["README.md", *sorted(str(path.relative_to(REPO)) for path in (REPO / "docs").glob("*.md"))]

# Output and notation blocks: nothing to run.
EXEMPT_LANGUAGES = {
    "text": "output, notation or a file layout",
    "bibtex": "a citation",
}

# (page, the start of exempt bash commands, why they do not run here).
EXEMPT = [
    (
        "README.md",
        "make demo",
        "make creates .venv and pip-installs; the command it runs is README's first Train line",
    ),
    ("README.md", "make test", "make creates .venv and pip-installs; it runs the whole suite, this test included"),
    ("docs/index.md", "make demo", "make creates .venv and pip-installs; README's first Train line is what it runs"),
    ("docs/index.md", "make test", "make creates .venv and pip-installs; it runs the whole suite, this test included"),
    (
        "docs/training.md",
        "make demo",
        "make creates .venv and pip-installs; README's first Train line is what it runs",
    ),
    ("docs/benchmarks.md", "make bench", "minutes of timing at full sizes; tests/test_benchmarks.py runs --quick"),
    ("docs/benchmarks.md", ".venv/bin/python benchmarks/run.py", "timing runs; tests/test_benchmarks.py runs --quick"),
    (
        "docs/benchmarks.md",
        ".venv/bin/python benchmarks/bench_gpu.py",
        "needs a GPU; tests/test_benchmarks.py runs it without CUDA and with --device cpu --tiny",
    ),
    (
        "README.md",
        "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 examples/pretrain.py",
        "two processes; tests/test_training_distributed.py launches exactly this at tiny sizes",
    ),
    ("docs/training.md", "accelerate config", "interactive questionnaire"),
    ("docs/training.md", "accelerate launch --multi_gpu --num_processes 8", "needs 8 GPUs"),
    ("docs/training.md", "accelerate launch --use_fsdp --num_processes 8", "needs 8 GPUs"),
    ("docs/training.md", "accelerate launch --use_deepspeed --num_processes 8", "needs 8 GPUs and DeepSpeed"),
    ("docs/training.md", "accelerate launch --multi_gpu --num_machines 2", "needs two machines with 8 GPUs each"),
    (
        "docs/downstream.md",
        "accelerate launch examples/finetune.py --task snli_ve --model_name_or_path openai/clip-vit-base-patch32",
        "its data flags are elided ('...'); the SNLI-VE command above runs",
    ),
    ("docs/downstream.md", "ACCELERATE_USE_CPU=1", "flags elided ('...'); tests/test_finetune.py runs two processes"),
    (
        "docs/downstream.md",
        "accelerate launch examples/finetune.py ...",
        "flags elided ('...'); test_finetune resumes",
    ),
    (
        "docs/downstream.md",
        "python examples/reproduce_downstream.py",
        "dozens of pre-training and fine-tuning runs (minutes even with --smoke); tests/test_reproduce_downstream.py",
    ),
    (
        "docs/evaluation.md",
        "python examples/reproduce_ablation.py",
        "dozens of pre-training runs (a minute even with --smoke); tests/test_evaluation_cli.py tests its parts",
    ),
]

# Hub ids the pages load, served from a local Hub cache: the tiny stage-0 CLIP and the tiny Knowledge-CLIP of the demo.
HUB_IDS = {"openai/clip-vit-base-patch32": "stage0_clip", "your-name/knowledge-clip-vit-b-32": "knowledge-clip-demo"}

# Where the pages' data paths (after /data/ -> data/) find demo-world files, relative to the working directory.
DATA_LAYOUT = {
    "data/vg": "demo_world/visual_genome",
    "data/visual_genome": "demo_world/visual_genome",
    "data/visualsem": "demo_world/visualsem",
    "data/conceptnet": "demo_world/conceptnet",
    "data/conceptnet-assertions-5.7.0.csv.gz": "demo_world/conceptnet/conceptnet-assertions-5.7.0.csv.gz",
    "data/coco": "demo_world/coco",
    "data/my_classes/test": "demo_world/zero_shot/test",
    # docs/downstream.md, relative to the data root it runs in
    "vqa": "demo_world/downstream/vqa",
    "coco/train2014": "demo_world/downstream/coco/train2014",
    "coco/val2014": "demo_world/downstream/coco/val2014",
    "snli_ve": "demo_world/downstream/snli_ve",
    "flickr30k/flickr30k-images": "demo_world/downstream/flickr30k_images",
    "nlvr/nlvr2/data": "demo_world/downstream/nlvr2",
    "nlvr2/images/train": "demo_world/downstream/nlvr2/images/train",
    "nlvr2/dev": "demo_world/downstream/nlvr2/images/dev",
    "karpathy/dataset_flickr30k.json": "demo_world/downstream/retrieval/dataset_flickr30k.json",
    # the output of docs/training.md's run, which docs/downstream.md fine-tunes
    "knowledge-clip-vit-b-32": "knowledge-clip-demo",
}

# (page, text, tiny replacement): the sizes of python blocks (bash commands get tiny flags instead).
SIZE_SUBSTITUTIONS = [
    ("docs/data.md", 'size="default"', 'size="tiny"'),
    ("docs/demo_world.md", 'size="default"', 'size="tiny"'),
    ("docs/collator.md", "num_samples=1_000_000", "num_samples=8"),
    ("docs/collator.md", "batch_size=256, num_workers=8", "batch_size=4, num_workers=0"),
]

# Appended to each example script's command: tiny models, data and steps.
TINY_FLAGS = {
    "pretrain": [*TINY_ARGS, "--max_steps", "2", "--dataloader_num_workers", "0"],
    "finetune": [*TINY_FINETUNE_ARGS, "--max_steps", "2", "--dataloader_num_workers", "0"],
    "evaluate_model": TINY_EVALUATE_ARGS,
    "push_to_hub": [],
    "knowledge_clip.data.demo_world": ["--size", "tiny"],
}
CONFIGS = sorted((REPO / "examples" / "configs").glob("*.yaml"))


@dataclass(frozen=True)
class CodeBlock:
    page: str
    line: int  # of the opening fence, 1-based
    language: str
    source: str


def code_blocks(page: str) -> list[CodeBlock]:
    """The fenced blocks of a page, in order (``` or ~~~ fences, possibly indented, as in a list item)."""
    blocks, lines, index = [], (REPO / page).read_text(encoding="utf-8").splitlines(), 0
    while index < len(lines):
        opening = re.match(r"\s*(`{3,}|~{3,})\s*(\S*)", lines[index])
        if opening is None:
            index += 1
            continue
        fence, end = opening.group(1), index + 1
        while not lines[end].strip().startswith(fence):
            end += 1
        source = "\n".join(lines[index + 1 : end])
        indent = len(lines[index]) - len(lines[index].lstrip())
        source = "\n".join(line[indent:] for line in source.splitlines())
        blocks.append(CodeBlock(page, index + 1, opening.group(2), source))
        index = end + 1
    return blocks


def commands(source: str) -> list[str]:
    """The command lines of a bash block: `\\` continuations joined; comments and blank lines dropped."""
    lines = re.sub(r"\\\n", " ", source).splitlines()
    return [shlex.join(words) for words in (shlex.split(line, comments=True) for line in lines) if words]


def exemption(page: str, text: str) -> tuple[str, str, str] | None:
    return next((entry for entry in EXEMPT if entry[0] == page and text.startswith(entry[1])), None)


ALL_BLOCKS = [block for page in PAGES for block in code_blocks(page)]


# --------------------------------------------------------------------------------------------------- the lists hold
def test_every_block_names_a_language_that_runs_or_is_exempt():
    runnable = {"python", "bash", "json", "yaml"}
    wrong = [
        f"{b.page}:{b.line} {b.language or '(none)'}"
        for b in ALL_BLOCKS
        if b.language not in runnable | set(EXEMPT_LANGUAGES)
    ]
    assert not wrong, f"blocks without a known language: {wrong}"


def test_every_exemption_and_substitution_still_matches():
    texts = [(b.page, command) for b in ALL_BLOCKS if b.language == "bash" for command in commands(b.source)]
    stale = [entry[:2] for entry in EXEMPT if not any(exemption(page, text) == entry for page, text in texts)]
    assert not stale, f"exemptions that match no block: {stale}"
    unused = [
        (p, old) for p, old, _ in SIZE_SUBSTITUTIONS if not any(b.page == p and old in b.source for b in ALL_BLOCKS)
    ]
    assert not unused, f"substitutions that match no block: {unused}"
    texts = [
        absolute_data_paths_made_relative(text)
        for text in [*(b.source for b in ALL_BLOCKS), *map(Path.read_text, CONFIGS)]
    ]
    unused = [name for name in [*DATA_LAYOUT, *HUB_IDS] if not any(name in text for text in texts)]
    assert not unused, f"data paths and Hub ids that no block or config names: {unused}"
    languages = {b.language for b in ALL_BLOCKS}
    assert set(EXEMPT_LANGUAGES) <= languages, f"exempt languages no block uses: {set(EXEMPT_LANGUAGES) - languages}"


# -------------------------------------------------------------------------------------------------- the session
@pytest.fixture(scope="session")
def demo_outputs(tmp_path_factory) -> Path:
    """What `make demo` leaves, at tiny sizes: demo_world/, stage0_clip/ and knowledge-clip-demo/."""
    root = tmp_path_factory.mktemp("demo")
    result = run_pretrain([*TINY_ARGS, "--max_steps", "2"], cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.fixture(scope="session")
def hub_cache(demo_outputs, tmp_path_factory) -> Path:
    """A Hub cache holding the checkpoints of HUB_IDS, as `from_pretrained` would have downloaded them."""
    cache = tmp_path_factory.mktemp("hub_cache")
    for repo_id, local in HUB_IDS.items():
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        shutil.copytree(demo_outputs / local, repo / "snapshots" / ("0" * 40))
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0" * 40)
    return cache


def prepare_working_directory(demo_outputs: Path, workdir: Path) -> None:
    shutil.copytree(demo_outputs, workdir)
    for doc_path, demo_path in DATA_LAYOUT.items():
        copy = shutil.copytree if (workdir / demo_path).is_dir() else shutil.copy
        (workdir / doc_path).parent.mkdir(parents=True, exist_ok=True)
        copy(workdir / demo_path, workdir / doc_path)
    for config in CONFIGS:
        (workdir / "examples" / "configs").mkdir(parents=True, exist_ok=True)
        (workdir / "examples" / "configs" / config.name).write_text(
            absolute_data_paths_made_relative(config.read_text())
        )
    # A reader's own files, which the pages open by name.
    for index, name in enumerate(["wheel.jpg", "pet.jpg", "scene.png", "photo.jpg", "images/0001.jpg"]):
        (workdir / name).parent.mkdir(exist_ok=True)
        solid_image((200, 40 * index, 30)).save(workdir / name)
    # The files whose format a page shows in a json block: that block is the file.
    for page, name in (("docs/evaluation.md", "my_probes.jsonl"), ("docs/publishing.md", "outputs/results.json")):
        (workdir / name).parent.mkdir(exist_ok=True)
        (workdir / name).write_text(next(b.source for b in code_blocks(page) if b.language == "json") + "\n")
    labels = [json.loads(line)["label"] for line in (workdir / "data/my_classes/test/metadata.jsonl").open()]
    (workdir / "classes.txt").write_text("\n".join(sorted(set(labels))) + "\n")
    (workdir / "templates.txt").write_text("a photo of a {}.\na drawing of a {}.\n")


def absolute_data_paths_made_relative(text: str) -> str:
    return re.sub(r"(?<![\w./-])/data/", "data/", text)


def run_command(command: str, monkeypatch) -> None:
    """One bash command, in this process: the example script's or module's `main` with tiny flags appended."""
    words = shlex.split(command)
    with monkeypatch.context() as patch:
        if words[:2] == ["accelerate", "launch"]:
            words = words[2:]
            while words[0].startswith("--"):  # the launcher's options: those one process honours in this one
                option, value, words = words[0], words[1], words[2:]
                if option == "--mixed_precision":
                    patch.setenv("ACCELERATE_MIXED_PRECISION", value)
                else:
                    assert (option, value) == ("--num_processes", "1"), f"{option} {value}: not one local process"
        elif words[0] == "python":
            words = words[1:]
        else:
            raise AssertionError(f"not a python or accelerate command: {command}")
        if words[0] == "-m":
            name, main, args = words[1], importlib.import_module(words[1]).main, words[2:]
        else:
            name = re.fullmatch(r"examples/(\w+)\.py", words[0]).group(1)
            main, args = load_example(name).main, words[1:]
        try:
            main([*args, *TINY_FLAGS[name]])
        finally:  # accelerate keeps its state per process; every command starts from none, as in its own process
            AcceleratorState._reset_state(reset_partial_state=True)
            GradientState._reset_state()


def run_block(block: CodeBlock, namespace: dict, monkeypatch) -> None:
    source = absolute_data_paths_made_relative(block.source)
    for page, old, new in SIZE_SUBSTITUTIONS:
        if page == block.page:
            source = source.replace(old, new)
    if block.language == "python":
        exec(compile(source, f"{block.page}:{block.line}", "exec"), namespace)
    elif block.language == "bash":
        for command in commands(source):
            if exemption(block.page, command) is None:
                try:
                    run_command(command, monkeypatch)
                except BaseException as error:  # argparse's SystemExit too
                    raise AssertionError(f"{block.page}:{block.line}: {command}") from error
    elif block.language == "json":
        json.loads(source)
    elif block.language == "yaml":
        yaml.safe_load(source)


def runs_something(block: CodeBlock) -> bool:
    if block.language == "bash":
        return any(exemption(block.page, command) is None for command in commands(block.source))
    return block.language not in EXEMPT_LANGUAGES


RUNNABLE_PAGES = sorted({b.page for b in ALL_BLOCKS if runs_something(b)})


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_page_code_blocks_run(page, demo_outputs, hub_cache, tmp_path, monkeypatch):
    workdir = tmp_path / "work"
    prepare_working_directory(demo_outputs, workdir)
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr("knowledge_clip.hub.HfApi", lambda: mock.create_autospec(HfApi, instance=True))
    # Graphs go to a local stand-in of the Hub and come back from it (the methods import `HfApi` when called).
    graph_hub = FakeHub(tmp_path / "graph-hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: graph_hub.api)
    namespace = {"__name__": "__main__"}
    for block in code_blocks(page):
        if block.language not in EXEMPT_LANGUAGES:
            run_block(block, namespace, monkeypatch)
