"""Tests for `train_clip_tokenizer`, the stage-0 CLIP's BPE training (deterministic, unlike tokenizers' trainer)."""

import json
import os
import subprocess
import sys

from transformers import CLIPTokenizer

from knowledge_clip.training.stage0 import train_clip_tokenizer


def merges(tokenizer: CLIPTokenizer) -> list[tuple[str, str]]:
    return [tuple(pair) for pair in json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]]


def test_most_frequent_pair_first_ties_by_text():
    # Words low x2, lower, lowest: (l, o) occurs 4 times; then (lo, w), (lo, w</w>) and (w, e) twice each, and
    # "w" sorts before "w</w>"; then (lo, w</w>) and (low, e) tie, and "lo" sorts before "low".
    tokenizer = train_clip_tokenizer(["low lower", "lowest LOW"], vocab_size=1000)
    assert merges(tokenizer)[:3] == [("l", "o"), ("lo", "w"), ("lo", "w</w>")]
    assert tokenizer.tokenize("low lower lowest") == ["low</w>", "lower</w>", "lowest</w>"]


def test_a_clip_tokenizer_with_the_vocabulary_size_asked():
    texts = ["a red circle left of a blue square", "the green triangle is small", "image of a yellow shape"] * 3
    tokenizer = train_clip_tokenizer(texts, vocab_size=300)
    assert len(tokenizer) == 300
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1, 1)
    ids = tokenizer("A  red Circle")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a red circle"
    # Without a size limit, training stops when every word is one token.
    whole = train_clip_tokenizer(texts, vocab_size=10_000)
    assert all(len(whole.tokenize(word)) == 1 for text in texts for word in text.split())


def test_the_same_tokenizer_in_every_process(tmp_path):
    """Python's string hashing differs per process (as tokenizers' hash maps do): the result must not."""
    script = (
        "import sys\n"
        "from knowledge_clip.training.stage0 import train_clip_tokenizer\n"
        "texts = [f'shape {i % 7} colour {i % 5} of {chr(97 + i % 26) * (1 + i % 3)} size {i % 11}' for i in range(300)]\n"
        "print(train_clip_tokenizer(texts, vocab_size=320).backend_tokenizer.to_str())\n"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for seed in (1, 2, 3)
    ]
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(json.loads(outputs[0])["model"]["vocab"]) == 320
