"""The downstream task models: forward/backward from Knowledge-CLIP and CLIP checkpoints, save/load, Auto classes,
custom code without the package, the VQA pipeline, and the joint encoder against a literal per-pair computation."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from tiny import solid_image, tiny_config
from transformers import AutoModelForSequenceClassification, AutoModelForVisualQuestionAnswering, pipeline

from knowledge_clip import (
    KnowledgeCLIPForImageTextClassification,
    KnowledgeCLIPForQuestionAnswering,
    KnowledgeCLIPModel,
)
from knowledge_clip.modeling_knowledge_clip import DropPath
from knowledge_clip.reference import LiteralKnowledgeCLIP

WITHOUT_PACKAGE = "import sys; sys.modules['knowledge_clip'] = None\n"
ANSWERS = ["red", "blue", "2", "yes", "no"]
TASKS = {
    "vqa": (KnowledgeCLIPForQuestionAnswering, {"id2label": dict(enumerate(ANSWERS))}),
    "snli_ve": (
        KnowledgeCLIPForImageTextClassification,
        {"id2label": {0: "entailment", 1: "neutral", 2: "contradiction"}},
    ),
    "nlvr2": (KnowledgeCLIPForImageTextClassification, {"id2label": {0: "False", 1: "True"}, "num_images": 2}),
}


@pytest.fixture(scope="module")
def checkpoints(tokenizer, processor, tmp_path_factory):
    """A Knowledge-CLIP checkpoint and the stock-CLIP export of its towers."""
    torch.manual_seed(0)
    model = KnowledgeCLIPModel(tiny_config(tokenizer)).eval()
    root = tmp_path_factory.mktemp("checkpoints")
    model.save_pretrained(root / "knowledge")
    processor.save_pretrained(root / "knowledge")
    model.save_clip_pretrained(root / "clip", processor)
    return model, root / "knowledge", root / "clip"


def _inputs(processor, task, labels=True):
    red, blue = solid_image((220, 30, 30)), solid_image((30, 30, 220))
    texts = ["is the square red", "a blue circle left of a red square"]
    images = [[red, blue], [blue, red]] if task == "nlvr2" else [red, blue]
    inputs = dict(processor(text=texts, images=images, padding=True, return_tensors="pt"))
    if labels:
        inputs["labels"] = (
            torch.tensor([[1.0, 0, 0, 0.3, 0], [0, 0.6, 0, 0, 1.0]]) if task == "vqa" else torch.tensor([1, 0])
        )
    return inputs


def _fusion_size(clip_dir):
    return {"fusion_encoder_config": tiny_config().fusion_encoder_config.to_dict()} if clip_dir else {}


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("source", ["knowledge", "clip"])
def test_forward_backward_from_either_checkpoint(checkpoints, processor, task, source):
    base, knowledge_dir, clip_dir = checkpoints
    cls, overrides = TASKS[task]
    path = knowledge_dir if source == "knowledge" else clip_dir
    torch.manual_seed(0)
    model = cls.from_pretrained(path, **overrides, **_fusion_size(source == "clip")).train()
    assert model.config.model_type == "knowledge_clip" and model.config.num_labels == len(overrides["id2label"])
    # The towers always come from the checkpoint; the fusion encoder only from a Knowledge-CLIP one.
    tower = model.knowledge_clip.vision_model.embeddings.patch_embedding.weight
    assert torch.equal(tower, base.vision_model.embeddings.patch_embedding.weight)
    fusion = model.knowledge_clip.fusion_encoder.layers[0].mlp.fc1.weight
    assert torch.equal(fusion, base.fusion_encoder.layers[0].mlp.fc1.weight) == (source == "knowledge")

    # Drop-path (the tiny fusion encoder's last layer has rate 0.1) can drop a branch for every pair of this small
    # batch and leave its parameters without a gradient by chance: the check below is about the wiring.
    for module in model.modules():
        if isinstance(module, DropPath):
            module.drop_prob = 0.0
    output = model(**_inputs(processor, task))
    num_images = overrides.get("num_images", 1)
    assert output.logits.shape == (2, model.config.num_labels)
    assert output.joint_embeds.shape == (2, num_images, model.config.fusion_encoder_config.hidden_size)
    output.loss.backward()
    used = (
        "classifier.",
        "knowledge_clip.fusion_encoder.layers.",
        "knowledge_clip.vision_model.",
        "knowledge_clip.text_model.",
    )
    no_gradient = [
        name for name, p in model.named_parameters() if name.startswith(used) and (p.grad is None or not p.grad.any())
    ]
    assert not no_gradient


def test_vqa_loss_is_vilt_scaled_bce(checkpoints, processor):
    _, knowledge_dir, _ = checkpoints
    model = KnowledgeCLIPForQuestionAnswering.from_pretrained(knowledge_dir, id2label=dict(enumerate(ANSWERS))).eval()
    inputs = _inputs(processor, "vqa")
    with torch.no_grad():
        output = model(**inputs)
    labels = inputs["labels"]
    literal = -(labels * output.logits.sigmoid().log() + (1 - labels) * (1 - output.logits.sigmoid()).log())
    assert output.loss.item() == pytest.approx(literal.sum(dim=1).mean().item(), rel=1e-5)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_save_load_exact_and_auto_classes(checkpoints, processor, task, tmp_path):
    _, knowledge_dir, _ = checkpoints
    cls, overrides = TASKS[task]
    model = cls.from_pretrained(knowledge_dir, **overrides).eval()
    model.save_pretrained(tmp_path)
    auto = (
        AutoModelForVisualQuestionAnswering
        if cls is KnowledgeCLIPForQuestionAnswering
        else AutoModelForSequenceClassification
    )
    loaded = auto.from_pretrained(tmp_path).eval()
    assert type(loaded) is cls
    assert loaded.config.id2label == model.config.id2label
    inputs = _inputs(processor, task, labels=False)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)
    # The towers and fusion encoder of a task checkpoint load back into the base model.
    base = KnowledgeCLIPModel.from_pretrained(tmp_path)
    assert torch.equal(
        base.fusion_encoder.final_layer_norm.weight, model.knowledge_clip.fusion_encoder.final_layer_norm.weight
    )


def test_pixel_values_must_match_num_images(checkpoints, processor):
    _, knowledge_dir, _ = checkpoints
    model = KnowledgeCLIPForImageTextClassification.from_pretrained(knowledge_dir, num_labels=2, num_images=2)
    with pytest.raises(ValueError, match="num_images = 2"):
        model(**_inputs(processor, "snli_ve", labels=False))


@torch.no_grad()
def test_joint_features_equal_literal_per_pair(checkpoints, processor):
    model, _, _ = checkpoints
    red, blue = solid_image((220, 30, 30)), solid_image((30, 30, 220))
    texts = ["a red square", "a blue circle left of a red square", "shape"]
    inputs = processor(text=texts, images=[red, blue], padding=True, return_tensors="pt")
    pairs = torch.tensor([[0, 1], [1, 0], [0, 2], [1, 1]])  # (image row, text row); images reused, text 1 twice
    output = model.get_joint_features(**inputs, image_text_pairs=pairs, return_token_states=True)
    # The same entities as a knowledge batch for the literal reference: the texts are slots 0-2, the images 3-4.
    entities = processor(triplets=[(red, "image of", texts[0]), (blue, "image of", texts[1]), (red, "is a", texts[2])])
    literal = LiteralKnowledgeCLIP(model, model.to_clip().eval(), entities)
    assert entities["entity_input_ids"].shape[0] == len(texts) and entities["entity_pixel_values"].shape[0] == 2
    image_slots = [3, 4]
    for row, (image, text) in enumerate(pairs.tolist()):
        sequence, relation_position = literal.sequence(image_slots[image], None, text)
        hidden = model.fusion_encoder(inputs_embeds=sequence[None]).last_hidden_state[0]
        assert torch.allclose(output.pooler_output[row], hidden[0], atol=1e-5)
        # Token states come back in the pair's row, at the literal positions, padding after them.
        length = sequence.shape[0]
        assert int(output.attention_mask[row].sum()) == length
        assert int(output.relation_positions[row]) == relation_position
        assert torch.allclose(output.last_hidden_state[row, :length], hidden, atol=1e-5)


@torch.no_grad()
def test_joint_features_with_relation_features_equal_literal(checkpoints, processor):
    model, _, _ = checkpoints
    red, blue = solid_image((220, 30, 30)), solid_image((30, 30, 220))
    texts = ["a red square", "a blue circle left of a red square"]
    inputs = processor(text=texts, images=[red, blue], padding=True, return_tensors="pt")
    torch.manual_seed(1)
    task_token = torch.randn(model.config.fusion_encoder_config.hidden_size)
    output = model.get_joint_features(**inputs, relation_features=task_token)
    masked = model.get_joint_features(**inputs, relation_features=torch.zeros_like(task_token))
    assert torch.allclose(masked.pooler_output, model.get_joint_features(**inputs).pooler_output, atol=1e-6)
    entities = processor(triplets=[(red, "image of", texts[0]), (blue, "image of", texts[1])])
    literal = LiteralKnowledgeCLIP(model, model.to_clip().eval(), entities)
    for row, image_slot in enumerate([2, 3]):
        sequence, relation_position = literal.sequence(image_slot, None, row)
        sequence[relation_position] += task_token  # x_r = the task token, with the relation role encoding
        hidden = model.fusion_encoder(inputs_embeds=sequence[None]).last_hidden_state[0]
        assert torch.allclose(output.pooler_output[row], hidden[0], atol=1e-5)
        assert not torch.allclose(output.pooler_output[row], masked.pooler_output[row], atol=1e-3)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_token_starts_at_the_masked_reading_and_learns(checkpoints, processor, task, tmp_path):
    _, knowledge_dir, _ = checkpoints
    cls, overrides = TASKS[task]
    torch.manual_seed(0)
    masked = cls.from_pretrained(knowledge_dir, **overrides).eval()
    torch.manual_seed(0)
    model = cls.from_pretrained(knowledge_dir, **overrides, joint_relation="task_token").eval()
    assert masked.task_token is None and torch.equal(model.task_token, torch.zeros_like(model.task_token))
    inputs = _inputs(processor, task)
    output = model(**inputs)
    with torch.no_grad():
        assert torch.allclose(output.logits, masked(**inputs).logits, atol=1e-6)
    output.loss.backward()
    assert model.task_token.grad is not None and model.task_token.grad.abs().sum() > 0
    with torch.no_grad():
        model.task_token.normal_()
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path).eval()
    assert loaded.config.joint_relation == "task_token" and torch.equal(loaded.task_token, model.task_token)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, model(**inputs).logits)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_joint_and_towers_head_reads_y_and_the_towers_terms(checkpoints, processor, task, tmp_path):
    _, knowledge_dir, _ = checkpoints
    cls, overrides = TASKS[task]
    model = cls.from_pretrained(knowledge_dir, **overrides, task_head_inputs="joint_and_towers").eval()
    base = model.knowledge_clip
    seen = []
    model.classifier.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    inputs = _inputs(processor, task)
    output = model(**inputs)
    # Literally: per (example, image), [Y, u, v, u * v] with u, v the towers' unit embeddings times sqrt(dim).
    num_images = overrides.get("num_images", 1)
    pixels = inputs["pixel_values"].reshape(-1, *inputs["pixel_values"].shape[-3:])
    with torch.no_grad():
        scale = model.config.projection_dim**0.5
        u = F.normalize(base.get_image_features(pixel_values=pixels).pooler_output, dim=-1) * scale
        v = F.normalize(base.get_text_features(inputs["input_ids"], inputs["attention_mask"]).pooler_output, dim=-1)
        v = (v * scale).repeat_interleave(num_images, dim=0)
        joint = output.joint_embeds.flatten(0, 1)
        expected = torch.cat([joint, u, v, u * v], dim=-1).view(2, -1)
    assert seen[0].reshape(2, -1).shape == (2, num_images * model.head_width)
    assert torch.allclose(seen[0].reshape(2, -1), expected, atol=1e-5)
    output.loss.backward()
    assert base.text_projection.weight.grad.abs().sum() > 0 and base.visual_projection.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path).eval()
    assert loaded.config.task_head_inputs == "joint_and_towers"
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, model(**inputs).logits)


def test_processor_two_images_per_example(processor):
    inputs = _inputs(processor, "nlvr2", labels=False)
    assert inputs["pixel_values"].shape[:2] == (2, 2)
    single = processor(images=[solid_image((220, 30, 30))], return_tensors="pt")["pixel_values"]
    assert torch.equal(inputs["pixel_values"][0, 0], single[0])


def _vqa_pipeline_and_model(checkpoints, processor):
    _, knowledge_dir, _ = checkpoints
    torch.manual_seed(0)
    model = KnowledgeCLIPForQuestionAnswering.from_pretrained(knowledge_dir, id2label=dict(enumerate(ANSWERS))).eval()
    return pipeline("knowledge-visual-question-answering", model=model, processor=processor), model


def test_vqa_pipeline_call_and_output(checkpoints, processor, tmp_path):
    pipe, model = _vqa_pipeline_and_model(checkpoints, processor)
    image = solid_image((220, 30, 30))
    answers = pipe(image=image, question="is the square red", top_k=3)
    assert [set(answer) for answer in answers] == [{"score", "answer"}] * 3
    with torch.no_grad():
        inputs = processor(text=["is the square red"], images=[image], padding=True, return_tensors="pt")
        probabilities = model(**inputs).logits[0].sigmoid()
    best = probabilities.argsort(descending=True)[:3]
    assert [a["answer"] for a in answers] == [ANSWERS[i] for i in best]
    assert [a["score"] for a in answers] == pytest.approx(probabilities[best].tolist(), abs=1e-6)
    image.save(tmp_path / "red.png")
    assert pipe({"image": str(tmp_path / "red.png"), "question": "is the square red"}, top_k=3) == answers
    assert len(pipe(image=image, question="is the square red")) == len(ANSWERS)  # default top_k 5
    batched = pipe([{"image": image, "question": "is the square red"}] * 2, top_k=1)
    assert batched == [answers[:1], answers[:1]]
    with pytest.raises(ValueError, match="question"):
        pipe(image=image)


def test_task_models_and_vqa_pipeline_without_the_package(checkpoints, processor, tmp_path):
    pipe, model = _vqa_pipeline_and_model(checkpoints, processor)
    pipe.save_pretrained(tmp_path / "vqa")
    processor.save_pretrained(tmp_path / "vqa")  # Pipeline.save_pretrained does not save a ProcessorMixin
    image = solid_image((220, 30, 30))
    image.save(tmp_path / "red.png")
    expected = pipe(image=image, question="is the square red", top_k=2)
    nlvr2 = KnowledgeCLIPForImageTextClassification.from_pretrained(checkpoints[1], **TASKS["nlvr2"][1]).eval()
    nlvr2.save_pretrained(tmp_path / "nlvr2")
    inputs = _inputs(processor, "nlvr2", labels=False)
    torch.save(inputs, tmp_path / "inputs.pt")
    with torch.no_grad():
        torch.save(nlvr2(**inputs).logits, tmp_path / "expected_logits.pt")
    code = f"""
        import torch
        from PIL import Image
        from transformers import AutoModelForSequenceClassification, pipeline
        pipe = pipeline(model="vqa", trust_remote_code=True)
        assert type(pipe).__name__ == "KnowledgeVisualQuestionAnsweringPipeline", type(pipe)
        answers = pipe(image=Image.open("red.png"), question="is the square red", top_k=2)
        expected = {expected!r}
        assert [a["answer"] for a in answers] == [a["answer"] for a in expected], answers
        assert all(abs(a["score"] - e["score"]) < 1e-6 for a, e in zip(answers, expected))
        model = AutoModelForSequenceClassification.from_pretrained("nlvr2", trust_remote_code=True).eval()
        assert type(model).__name__ == "KnowledgeCLIPForImageTextClassification"
        with torch.no_grad():
            logits = model(**torch.load("inputs.pt")).logits
        assert torch.equal(logits, torch.load("expected_logits.pt"))
    """
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PACKAGE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
