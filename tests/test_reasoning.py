"""The reasoning API and the "knowledge-triplet-completion" pipeline, locally and as custom code without the package."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from tiny import RELATIONS, solid_image, tiny_config
from transformers import pipeline

from knowledge_clip import KnowledgeCLIPModel
from knowledge_clip.pipeline_knowledge_clip import TASK, KnowledgeTripletCompletionPipeline, register_pipeline
from knowledge_clip.reasoning import KnowledgeReasoner

RED = solid_image((220, 30, 30))
CANDIDATES = ["shape", "colour", RED, "animal", "dog"]


@pytest.fixture(scope="module")
def model(processor):
    torch.manual_seed(0)
    return KnowledgeCLIPModel(tiny_config(processor.tokenizer)).eval()


@pytest.fixture(scope="module")
def reasoner(model, processor):
    return KnowledgeReasoner(model, processor, batch_size=2)


def _forward_scores(model, processor, triplets):
    """cos(Y(h,r,-), Y(-,-,t)) read from the model's forward on a processor batch: an independent path."""
    batch = processor(triplets=triplets)
    with torch.no_grad():
        output = model(**batch)
    tails = batch["triplets"][:, 2]
    return (F.normalize(output.query_embeds, dim=-1) * F.normalize(output.entity_embeds[tails], dim=-1)).sum(-1)


def _assert_same_ranking(got, expected, key):
    assert [id(item[key]) if not isinstance(item[key], str) else item[key] for item in got] == [
        id(item[key]) if not isinstance(item[key], str) else item[key] for item in expected
    ]
    assert [item["score"] for item in got] == pytest.approx([item["score"] for item in expected], abs=1e-5)


def test_score_triplets_equals_the_model_forward(model, processor, reasoner):
    triplets = [
        ("square", "is a", "shape"),
        ("square", "is a", RED),
        (RED, "left of", "circle"),
        ("dog", "has part", "tail"),
    ]
    expected = _forward_scores(model, processor, triplets)
    assert torch.allclose(torch.tensor(reasoner.score_triplets(triplets)), expected, atol=1e-5)


def test_rank_tails_and_heads_sort_by_the_triplet_score(reasoner):
    ranked = reasoner.rank_tails("square", "is a", CANDIDATES)
    scores = reasoner.score_triplets([("square", "is a", c) for c in CANDIDATES])
    assert [r["score"] for r in ranked] == pytest.approx(sorted(scores, reverse=True), abs=1e-5)
    assert len(reasoner.rank_tails("square", "is a", CANDIDATES, top_k=2)) == 2
    heads = reasoner.rank_heads("shape", "is a", CANDIDATES, top_k=3)
    head_scores = reasoner.score_triplets([(c, "is a", "shape") for c in CANDIDATES])
    assert [r["score"] for r in heads] == pytest.approx(sorted(head_scores, reverse=True)[:3], abs=1e-5)
    assert all(key in heads[0] for key in ("head", "score"))


def test_rank_relations_equals_predict_relations(model, processor, reasoner):
    ranked = reasoner.rank_relations("square", RED)
    batch = processor(triplets=[("square", "is a", RED)])
    with torch.no_grad():
        features = model.encode_entity_features(
            batch.get("entity_input_ids"), batch.get("entity_attention_mask"), batch.get("entity_pixel_values")
        )
        logits = model.predict_relations(features, batch["triplets"][:, [0, 2]])[0]
    probabilities = logits.softmax(-1)
    assert [r["relation"] for r in ranked] == [RELATIONS[i] for i in probabilities.argsort(descending=True)]
    assert sum(r["score"] for r in ranked) == pytest.approx(1.0, abs=1e-5)


def test_reasoner_refuses_plain_clip_and_bad_inputs(model, processor, reasoner):
    with pytest.raises(TypeError, match="no fusion encoder"):
        KnowledgeReasoner(model.to_clip(), processor)
    with pytest.raises(ValueError, match="non-empty list"):
        reasoner.rank_tails("square", "is a", "shape")
    with pytest.raises(ValueError, match="triplets\\[1\\]"):
        reasoner.score_triplets([("a", "is a", "b"), ("a", 3, "b")])
    with pytest.raises(ValueError, match="top_k"):
        reasoner.rank_tails("square", "is a", CANDIDATES, top_k=0)


def test_pipeline_answers_every_question(model, processor, reasoner):
    register_pipeline()
    pipe = pipeline(TASK, model=model, processor=processor)
    assert isinstance(pipe, KnowledgeTripletCompletionPipeline)
    tails = pipe({"head": "square", "relation": "is a", "candidates": CANDIDATES}, top_k=2)
    _assert_same_ranking(tails, reasoner.rank_tails("square", "is a", CANDIDATES, top_k=2), "tail")
    heads = pipe({"tail": "shape", "relation": "is a", "candidates": CANDIDATES})
    _assert_same_ranking(heads, reasoner.rank_heads("shape", "is a", CANDIDATES), "head")
    relations = pipe({"head": "square", "tail": RED}, top_k=1)
    _assert_same_ranking(relations, reasoner.rank_relations("square", RED, top_k=1), "relation")
    score = pipe({"head": "square", "relation": "is a", "tail": "shape"})
    assert score["score"] == pytest.approx(reasoner.score_triplets([("square", "is a", "shape")])[0], abs=1e-6)
    assert len(pipe([{"head": "a", "tail": "b"}, {"head": "a", "relation": "is a", "tail": "b"}])) == 2
    with pytest.raises(ValueError, match="Cannot tell the question"):
        pipe({"head": "square"})
    with pytest.raises(ValueError, match="Unknown keys"):
        pipe({"head": "square", "object": "shape"})


def test_pipeline_saved_as_custom_code_runs_without_the_package(model, processor, tmp_path):
    register_pipeline()
    pipe = pipeline(TASK, model=model, processor=processor)
    pipe.save_pretrained(tmp_path / "pipe")
    processor.save_pretrained(tmp_path / "pipe")
    RED.save(tmp_path / "red.png")
    expected = {
        "tails": pipe({"head": "square", "relation": "is a", "candidates": ["shape", "colour", RED]}),
        "relations": pipe({"head": "square", "tail": RED}, top_k=2),
    }
    torch.save(expected, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["knowledge_clip"] = None  # importing the package now fails: only the saved files can serve
        import torch
        from PIL import Image
        from transformers import pipeline
        pipe = pipeline(model={str(tmp_path / "pipe")!r}, trust_remote_code=True)
        assert type(pipe).__module__.startswith("transformers_modules"), type(pipe).__module__
        red = Image.open({str(tmp_path / "red.png")!r})
        expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=False)
        tails = pipe({{"head": "square", "relation": "is a", "candidates": ["shape", "colour", red]}})
        assert [t["tail"] if isinstance(t["tail"], str) else "<image>" for t in tails] == [
            t["tail"] if isinstance(t["tail"], str) else "<image>" for t in expected["tails"]
        ], (tails, expected["tails"])
        for got, want in zip(tails, expected["tails"]):
            assert abs(got["score"] - want["score"]) < 1e-5
        assert pipe({{"head": "square", "tail": red}}, top_k=2) == expected["relations"]
        print("ok")
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
