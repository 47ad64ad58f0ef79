"""KnowledgeCLIPModel as a Hugging Face model: CLIP parity, CLIP in and out, save/load, custom code, auto classes,
and the transformers model-test conventions that apply (init statistics, determinism, batching equivalence,
gradient checkpointing, attention and hidden-state outputs)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from tiny import solid_image, tiny_config
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForZeroShotImageClassification,
    AutoProcessor,
    CLIPModel,
    pipeline,
)

from knowledge_clip import KnowledgeCLIPConfig, KnowledgeCLIPModel, KnowledgeCLIPProcessor
from knowledge_clip.modeling_knowledge_clip import LENGTH_BUCKET_RATIO, MASKED, KnowledgeFusionLayer, length_buckets
from knowledge_clip.training import teacher_embeddings

# A prelude that makes `import knowledge_clip` fail, for processes that must work from the saved files alone.
WITHOUT_PACKAGE = "import sys; sys.modules['knowledge_clip'] = None\n"


@pytest.fixture()
def model(tokenizer):
    torch.manual_seed(0)
    return KnowledgeCLIPModel(tiny_config(tokenizer)).eval()


@pytest.fixture(scope="module")
def batch(processor):
    red, blue = solid_image((220, 30, 30)), solid_image((30, 30, 220))
    triplets = [
        (red, "image of", "a red square"),
        ("a red square", "caption of", red),
        ("a blue circle", "left of", blue),
        ("square", "is a", "shape"),
    ]
    # "a red square" has an in-edge of its own, so both message-passing layers reach the targets.
    edges = [
        ("a red square", "caption of", red),
        (blue, "left of", red),
        ("circle", "is a", "shape"),
        ("shape", "has part", "a red square"),
    ]
    return processor(triplets=triplets, graph_edges=edges)


@pytest.fixture(scope="module")
def clip_inputs(processor):
    images = [solid_image((220, 30, 30)), solid_image((30, 30, 220))]
    return processor(text=["a red square", "a blue circle"], images=images, padding=True, return_tensors="pt")


def without_bookkeeping(config: dict) -> dict:
    """A config dict without what saving and loading legitimately change (paths, dtype, auto_map)."""
    ignored = {"dtype", "architectures", "_name_or_path", "auto_map", "transformers_version"}
    return {k: without_bookkeeping(v) if isinstance(v, dict) else v for k, v in config.items() if k not in ignored}


def assert_clip_features_equal(a, b, clip_inputs):
    with torch.no_grad():
        for name in ("get_image_features",):
            assert torch.equal(
                getattr(a, name)(pixel_values=clip_inputs["pixel_values"]).pooler_output,
                getattr(b, name)(pixel_values=clip_inputs["pixel_values"]).pooler_output,
            )
        text = {k: clip_inputs[k] for k in ("input_ids", "attention_mask")}
        assert torch.equal(a.get_text_features(**text).pooler_output, b.get_text_features(**text).pooler_output)


def test_plain_inference_equals_clip(model, clip_inputs):
    clip = CLIPModel(model.config.to_clip_config()).eval()
    clip.load_state_dict(model.to_clip().state_dict())
    with torch.no_grad():
        ours, theirs = model(**clip_inputs, return_loss=True), clip(**clip_inputs, return_loss=True)
    for field in ("loss", "logits_per_image", "logits_per_text", "text_embeds", "image_embeds"):
        assert torch.equal(getattr(ours, field), getattr(theirs, field)), field
    assert ours.e2e_loss is None and ours.entity_embeds is None
    assert_clip_features_equal(model, clip, clip_inputs)


def test_from_clip_to_clip_round_trip_is_exact(tokenizer, clip_inputs, tmp_path):
    source = CLIPModel(tiny_config(tokenizer).to_clip_config()).eval()
    model = KnowledgeCLIPModel.from_clip(source, relation_vocab=["is a"]).eval()
    assert model.config.model_type == "knowledge_clip" and "model_type" not in vars(model.config)
    assert model.config.relation_vocab == ["is a"]
    assert_clip_features_equal(model, source, clip_inputs)
    assert_clip_features_equal(model.to_clip().eval(), source, clip_inputs)

    source.save_pretrained(tmp_path / "clip")
    loaded = KnowledgeCLIPModel.from_clip(str(tmp_path / "clip"), relation_vocab=["is a", "part of"]).eval()
    assert loaded.config.model_type == "knowledge_clip" and "model_type" not in vars(loaded.config)
    assert_clip_features_equal(loaded, source, clip_inputs)
    # The knowledge modules are freshly initialised, not left empty.
    assert loaded.relation_head.classifier.weight.shape == (2, loaded.config.fusion_encoder_config.hidden_size)
    assert 0.01 < loaded.fusion_encoder.embeddings.head_role_embedding.weight.std() < 0.03


def test_save_clip_pretrained_loads_in_stock_clip(model, processor, clip_inputs, tmp_path):
    model.save_clip_pretrained(tmp_path, processor=processor)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "clip"
    assert not {"fusion_encoder_config", "relation_vocab", "auto_map"} & set(config)
    assert (tmp_path / "preprocessor_config.json").exists()
    assert_clip_features_equal(CLIPModel.from_pretrained(tmp_path).eval(), model, clip_inputs)


def test_save_load_round_trip_is_exact(model, processor, batch, tmp_path):
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = KnowledgeCLIPModel.from_pretrained(tmp_path).eval()
    assert without_bookkeeping(loaded.config.to_dict()) == without_bookkeeping(model.config.to_dict())
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    with torch.no_grad():
        assert torch.equal(model(**batch, return_loss=True).loss, loaded(**batch, return_loss=True).loss)
    reloaded_processor = KnowledgeCLIPProcessor.from_pretrained(tmp_path)
    assert reloaded_processor.relation_vocab == processor.relation_vocab


def test_auto_classes_resolve_to_knowledge_clip(model, processor, tmp_path):
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), KnowledgeCLIPConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), KnowledgeCLIPModel)
    assert isinstance(AutoModelForZeroShotImageClassification.from_pretrained(tmp_path), KnowledgeCLIPModel)
    assert isinstance(AutoProcessor.from_pretrained(tmp_path), KnowledgeCLIPProcessor)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_knowledge_clip.KnowledgeCLIPConfig",
        "AutoModel": "modeling_knowledge_clip.KnowledgeCLIPModel",
        "AutoModelForZeroShotImageClassification": "modeling_knowledge_clip.KnowledgeCLIPModel",
    }
    for module in ("configuration_knowledge_clip", "modeling_knowledge_clip", "losses", "processing_knowledge_clip"):
        assert (tmp_path / f"{module}.py").exists(), module


def _run_without_package(code: str, tmp_path) -> None:
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


def test_trust_remote_code_without_package_is_exact(model, processor, batch, clip_inputs, tmp_path):
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    torch.save({**batch, **clip_inputs}, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected_loss = model(**batch, return_loss=True).loss
        expected_logits = model(**clip_inputs).logits_per_image
    image = solid_image((220, 30, 30))
    image.save(tmp_path / "red.png")
    expected_scores = pipeline(
        "zero-shot-image-classification",
        model=model,
        tokenizer=processor.tokenizer,
        image_processor=processor.image_processor,
    )(image, candidate_labels=["red square", "blue circle"])
    torch.save({"loss": expected_loss, "logits": expected_logits, "scores": expected_scores}, tmp_path / "expected.pt")
    _run_without_package(
        f"""
        import torch
        from PIL import Image
        from transformers import AutoModel, AutoProcessor, pipeline
        model = AutoModel.from_pretrained({str(model_dir)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        processor = AutoProcessor.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
        inputs, expected = torch.load("inputs.pt"), torch.load("expected.pt")
        knowledge = {{k: v for k, v in inputs.items() if k.startswith(("entity_", "relation_")) or k in ("triplets", "graph_edges")}}
        plain = {{k: inputs[k] for k in ("input_ids", "attention_mask", "pixel_values")}}
        with torch.no_grad():
            assert torch.equal(model(**knowledge, return_loss=True).loss, expected["loss"])
            assert torch.equal(model(**plain).logits_per_image, expected["logits"])
        classifier = pipeline("zero-shot-image-classification", model={str(model_dir)!r}, trust_remote_code=True)
        scores = classifier(Image.open("red.png"), candidate_labels=["red square", "blue circle"])
        # The scores agree to 1e-6, not bit for bit: with the same inputs and weights, a model loaded from the file
        # holds its weights at other addresses than the one built in the test process, and the CPU's vectorised
        # kernels may then sum in another order (seen: 1.5e-8 on a score, with 1 thread in both processes).
        assert [s["label"] for s in scores] == [s["label"] for s in expected["scores"]], (scores, expected["scores"])
        for score, expected_score in zip(scores, expected["scores"]):
            assert abs(score["score"] - expected_score["score"]) < 1e-6, (scores, expected["scores"])
        """,
        tmp_path,
    )


def test_stock_zero_shot_pipeline_runs_on_registered_and_exported(model, processor, tmp_path):
    image = solid_image((30, 30, 220))
    labels = ["red square", "blue circle", "shape"]
    model.save_pretrained(tmp_path / "full")
    processor.save_pretrained(tmp_path / "full")
    registered = pipeline("zero-shot-image-classification", model=str(tmp_path / "full"))(
        image, candidate_labels=labels
    )
    assert isinstance(registered[0]["score"], float) and {r["label"] for r in registered} == set(labels)
    model.save_clip_pretrained(tmp_path / "clip", processor=processor)
    torch.save(registered, tmp_path / "expected.pt")
    image.save(tmp_path / "blue.png")
    _run_without_package(
        f"""
        import torch
        from PIL import Image
        from transformers import pipeline
        classifier = pipeline("zero-shot-image-classification", model={str(tmp_path / "clip")!r})
        assert type(classifier.model).__name__ == "CLIPModel"
        scores = classifier(Image.open("blue.png"), candidate_labels={labels!r})
        expected = torch.load("expected.pt")
        assert [s["label"] for s in scores] == [s["label"] for s in expected]
        assert all(abs(a["score"] - b["score"]) < 1e-6 for a, b in zip(scores, expected))
        """,
        tmp_path,
    )


# ---------------------------------------------------------------------------------------------------------------------
# transformers model-test conventions
# ---------------------------------------------------------------------------------------------------------------------
def test_initialization_statistics(tokenizer):
    torch.manual_seed(0)
    config = tiny_config(tokenizer, fusion_encoder_config={"hidden_size": 64, "num_attention_heads": 4})
    model = KnowledgeCLIPModel(config)
    std = config.initializer_range
    for name, param in model.named_parameters():
        if name.startswith(("text_model.", "vision_model.", "visual_projection", "text_projection", "logit_scale")):
            continue
        if "layer_norm" in name:
            expected = 1.0 if name.endswith("weight") else 0.0
            assert torch.all(param == expected), name
        elif name.endswith("bias"):
            assert torch.all(param == 0), name
        else:
            assert abs(param.std().item() - std) < 0.35 * std, (name, param.std().item())
            assert abs(param.mean().item()) < 0.01, name
    assert model.logit_scale.item() == pytest.approx(config.logit_scale_init_value)


def test_determinism(model, batch):
    with torch.no_grad():
        first, second = model(**batch, return_loss=True), model(**batch, return_loss=True)
    for field in ("loss", "entity_embeds", "query_embeds", "relation_logits", "graph_embeds"):
        assert torch.equal(getattr(first, field), getattr(second, field)), field


def test_batching_equivalence(model, processor):
    """An entity's representation does not depend on what else is in the batch (padding, length buckets)."""
    red = solid_image((220, 30, 30))
    entities = ["a red square", "shape", "a blue circle left of a red square", red]
    with torch.no_grad():
        together = model.encode_entities(model.encode_entity_features(**_entity_inputs(processor, entities)))
        alone = torch.cat(
            [model.encode_entities(model.encode_entity_features(**_entity_inputs(processor, [e]))) for e in entities]
        )
    assert torch.allclose(together, alone, atol=1e-5)


def _entity_inputs(processor, entities):
    batch = processor.encode_knowledge(entities, [(0, "is a", 0)])
    return {k: batch[k] for k in ("entity_input_ids", "entity_attention_mask", "entity_pixel_values") if k in batch}


def test_gradient_checkpointing_gives_same_loss_and_gradients(tokenizer, batch, monkeypatch):
    torch.manual_seed(0)
    model = KnowledgeCLIPModel(tiny_config(tokenizer)).train()
    # The first fusion layer's projections of the distinct input rows, computed once per step, unless checkpointing
    # replays the layer (then the padded inputs are kept, which take less memory than the projections would).
    project_rows, projected = model.fusion_encoder.project_rows, []

    def counted_project_rows(rows):
        projected.append(rows.shape[0])
        return project_rows(rows)

    monkeypatch.setattr(model.fusion_encoder, "project_rows", counted_project_rows)

    def loss_and_grads():
        projected.clear()
        model.zero_grad()
        torch.manual_seed(1)  # drop-path draws the same masks in both runs
        loss = model(**batch, return_loss=True).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain_loss, plain_grads = loss_and_grads()
    assert len(projected) == 1
    model.activation_checkpointing_enable({"use_reentrant": False})
    assert all(layer.gradient_checkpointing for layer in model.modules() if isinstance(layer, KnowledgeFusionLayer))
    checkpointed_loss, checkpointed_grads = loss_and_grads()
    assert not projected
    assert torch.allclose(plain_loss, checkpointed_loss, atol=1e-6)
    assert plain_grads.keys() == checkpointed_grads.keys()
    for name in plain_grads:
        assert torch.allclose(plain_grads[name], checkpointed_grads[name], atol=1e-6), name


def test_every_trainable_parameter_gets_a_gradient_and_the_teacher_none(tokenizer, batch):
    torch.manual_seed(0)
    model = KnowledgeCLIPModel(tiny_config(tokenizer)).train()
    teacher = KnowledgeCLIPModel(tiny_config(tokenizer)).to_clip().eval().requires_grad_(False)
    output = model(**batch, return_loss=True, **teacher_embeddings(teacher, batch))
    assert {"e2e_loss", "e2r_loss", "g2e_loss", "kd_loss"} <= {k for k in output.keys() if k.endswith("_loss")}
    output.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing
    assert all(p.grad is None for p in teacher.parameters())


def test_attention_and_hidden_state_outputs(tokenizer, batch, clip_inputs):
    model = KnowledgeCLIPModel._from_config(tiny_config(tokenizer), attn_implementation="eager").eval()
    assert model.fusion_encoder.config._attn_implementation == "eager"
    with torch.no_grad():
        output = model(**batch, output_attentions=True, output_hidden_states=True)
    fusion_config = model.config.fusion_encoder_config
    fusion = output.fusion_model_output
    rows, length, width = fusion.last_hidden_state.shape
    assert rows == fusion.sequences.shape[0] == fusion.pooler_output.shape[0]
    assert width == fusion_config.hidden_size
    assert len(fusion.attentions) == fusion_config.num_hidden_layers
    assert fusion.attentions[0].shape == (rows, fusion_config.num_attention_heads, length, length)
    assert len(fusion.hidden_states) == fusion_config.num_hidden_layers + 1
    # Rows are in input order: the first ones are the entities' Y(-,-,e), whose index 0 is the pooled output.
    num_entities = output.entity_embeds.shape[0]
    assert torch.equal(fusion.sequences[:num_entities, 2], torch.arange(num_entities))
    assert torch.allclose(fusion.last_hidden_state[:num_entities, 0], output.entity_embeds)
    # No real token attends to padding, and padding rows of shorter sequences are zero.
    padding = ~fusion.attention_mask.bool()
    assert torch.all(fusion.attentions[0].masked_select(padding[:, None, None, :]) == 0)
    with torch.no_grad():
        plain = model(**clip_inputs, output_hidden_states=True)
    assert len(plain.vision_model_output.hidden_states) == model.config.vision_config.num_hidden_layers + 1


def test_sdpa_is_default_and_matches_eager(tokenizer, batch):
    torch.manual_seed(0)
    sdpa = KnowledgeCLIPModel(tiny_config(tokenizer)).eval()
    assert sdpa.fusion_encoder.config._attn_implementation == "sdpa"
    eager = KnowledgeCLIPModel._from_config(tiny_config(tokenizer), attn_implementation="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    with torch.no_grad():
        assert torch.allclose(sdpa(**batch, return_loss=True).loss, eager(**batch, return_loss=True).loss, atol=1e-5)


def test_knowledge_forward_without_teacher_or_graph_edges(model, processor):
    batch = processor(triplets=[("square", "is a", "shape"), ("circle", "is a", "shape")])
    with torch.no_grad():
        output = model(**batch, return_loss=True)
    assert output.g2e_loss is None and output.kd_loss is None
    assert torch.allclose(output.loss, output.e2e_loss + output.e2r_loss)


def test_loss_weights_and_clip_loss(tokenizer, batch):
    torch.manual_seed(0)
    config = tiny_config(tokenizer, e2e_loss_weight=2, e2r_loss_weight=0.5, g2e_loss_weight=0, clip_loss_weight=1.0)
    model = KnowledgeCLIPModel(config).eval()
    with torch.no_grad():
        output = model(**batch, return_loss=True)
    expected = 2 * output.e2e_loss + 0.5 * output.e2r_loss + 0 * output.g2e_loss + output.clip_loss
    assert torch.allclose(output.loss, expected)
    assert output.clip_loss > 0


def test_teacher_reads_images_at_another_resolution_with_interpolate_pos_encoding(tokenizer, processor):
    # A 48-pixel batch for a 32-pixel model: the student interpolates its position embeddings, and so must the
    # teacher inside the KD loss (it used to be called without the flag and failed on the position count).
    torch.manual_seed(0)
    config = tiny_config(tokenizer)
    config.fusion_encoder_config.max_entity_tokens = 1 + (48 // 8) ** 2  # class token + 6x6 patches
    model = KnowledgeCLIPModel(config).eval()
    teacher = model.to_clip().eval().requires_grad_(False)
    red, blue = solid_image((220, 30, 30), size=48), solid_image((30, 30, 220), size=48)
    batch = processor(triplets=[(red, "image of", "a red square"), (blue, "image of", "a blue circle")])
    batch["entity_pixel_values"] = torch.nn.functional.interpolate(batch["entity_pixel_values"], size=(48, 48))
    batch["interpolate_pos_encoding"] = True
    output = model(**batch, return_loss=True, **teacher_embeddings(teacher, batch))
    # The teacher is the student's own CLIP part, so their similarity distributions agree and KD is zero.
    assert output.kd_loss.item() == pytest.approx(0.0, abs=1e-6)


def test_length_buckets_partition_rows_by_length():
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 60, (500,), generator=generator)
    buckets = length_buckets(lengths)
    rows = torch.cat([bucket_rows for bucket_rows, _ in buckets])
    assert torch.equal(rows.sort().values, torch.arange(500))  # every row in exactly one pass
    for bucket_rows, width in buckets:
        bucket_lengths = lengths[bucket_rows]
        assert width == bucket_lengths.max() and bucket_lengths.max() <= LENGTH_BUCKET_RATIO * bucket_lengths.min()
    # Greedy from the shortest: each pass starts at the first length the previous one could not take.
    for (previous, _), (current, _) in zip(buckets, buckets[1:]):
        assert lengths[current].min() > LENGTH_BUCKET_RATIO * lengths[previous].min()


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_fuse_without_token_states_equals_the_full_layers(tokenizer, batch, attn_implementation, checkpointing):
    """Without token states, `fuse` runs the first fusion layer's layer norm and projections once per distinct input
    row and the last layer at index 0 and the relation slot alone: Y, R and every gradient must be those of the full
    layers over the padded sequences, drop-path included."""
    torch.manual_seed(0)
    model = KnowledgeCLIPModel._from_config(tiny_config(tokenizer), attn_implementation=attn_implementation).train()
    if checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    entities_inputs = [batch[name] for name in ("entity_input_ids", "entity_attention_mask", "entity_pixel_values")]
    relation_inputs = [batch["relation_input_ids"], batch["relation_attention_mask"]]
    triplets = batch["triplets"]
    # Sequences of every form and of several lengths: entities alone, queries, pairs and whole triplets.
    num_entities = batch["entity_ids"].shape[0]
    masked = torch.full((num_entities,), MASKED)
    heads = torch.cat([masked, triplets[:, 0], triplets[:, 0], triplets[:, 0]])
    relations = torch.cat([masked, triplets[:, 1], torch.full_like(triplets[:, 1], MASKED), triplets[:, 1]])
    tails = torch.cat(
        [torch.arange(num_entities), torch.full_like(triplets[:, 2], MASKED), triplets[:, 2], triplets[:, 2]]
    )

    def read_and_grads(return_token_states):
        model.zero_grad()
        torch.manual_seed(1)  # drop-path draws the same masks in both runs
        entities = model.encode_entity_features(*entities_inputs, *relation_inputs)
        output = model.fuse(entities, heads, relations, tails, return_token_states=return_token_states)
        assert (output.last_hidden_state is not None) == return_token_states
        (output.pooler_output.square().sum() + output.relation_embeds.sin().sum()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return output.pooler_output.detach(), output.relation_embeds.detach(), grads

    full_pooled, full_relations, full_grads = read_and_grads(return_token_states=True)
    pooled, relations_out, grads = read_and_grads(return_token_states=False)
    torch.testing.assert_close(pooled, full_pooled, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(relations_out, full_relations, rtol=1e-5, atol=1e-6)
    assert grads.keys() == full_grads.keys()
    # Within float rounding of the largest gradient: the two paths sum the same terms in another order.
    scale = max(grad.abs().max() for grad in full_grads.values())
    for name in grads:
        assert (grads[name] - full_grads[name]).abs().max() <= 1e-6 * scale, name


def test_output_positions_refuse_layer_outputs(model):
    fusion = model.fusion_encoder
    inputs_embeds = torch.randn(2, 5, fusion.config.hidden_size)
    positions = torch.tensor([[0, 2], [0, 3]])
    output = fusion(inputs_embeds=inputs_embeds, output_positions=positions).last_hidden_state
    full = fusion(inputs_embeds=inputs_embeds).last_hidden_state
    assert output.shape == (2, 2, fusion.config.hidden_size)
    torch.testing.assert_close(output, full.gather(1, positions[..., None].expand(-1, -1, full.shape[-1])))
    with pytest.raises(ValueError, match="output_positions"):
        fusion(inputs_embeds=inputs_embeds, output_positions=positions, output_hidden_states=True)


def test_fusion_inputs_as_distinct_rows(model, batch):
    """The embeddings give each distinct input row once; the fusion encoder reads them, projected once, as it reads
    the padded sequences they make."""
    fusion = model.fusion_encoder
    entities = model.encode_entity_features(
        *[batch[name] for name in ("entity_input_ids", "entity_attention_mask", "entity_pixel_values")],
        batch["relation_input_ids"],
        batch["relation_attention_mask"],
    )
    triplets = batch["triplets"]
    # Each head once with its relation and once alone with the same relation: its tokens recur in the head role.
    heads, relations = triplets[:, 0].repeat(2), triplets[:, 1].repeat(2)
    tails = torch.cat([triplets[:, 2], torch.full_like(triplets[:, 2], MASKED)])
    rows, input_rows, attention_mask, relation_positions = fusion.embeddings(entities, heads, relations, tails)
    # Every row is read, and there are fewer rows than real positions. (Rows are distinct pairs of a token and a role
    # encoding; two can still be equal in value: texts that begin alike have equal first tokens under the causal mask.)
    assert input_rows.shape == attention_mask.shape
    assert torch.equal(input_rows.unique(), torch.arange(rows.shape[0]))
    assert rows.shape[0] < attention_mask.sum()
    inputs_embeds = F.embedding(input_rows, rows)
    projected_rows = fusion.project_rows(rows)
    positions = torch.stack([torch.zeros_like(relation_positions), relation_positions], 1)
    for output_positions in (None, positions):
        expected = fusion(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, output_positions=output_positions
        )
        output = fusion(
            projected_rows=projected_rows,
            input_rows=input_rows,
            attention_mask=attention_mask,
            output_positions=output_positions,
        )
        real = attention_mask.bool() if output_positions is None else slice(None)
        torch.testing.assert_close(output.last_hidden_state[real], expected.last_hidden_state[real])
    with pytest.raises(ValueError, match="projected_rows cannot"):
        fusion(projected_rows=projected_rows, input_rows=input_rows, output_hidden_states=True)
    with pytest.raises(ValueError, match="Give inputs_embeds"):
        fusion(inputs_embeds=inputs_embeds, projected_rows=projected_rows, input_rows=input_rows)
    with pytest.raises(ValueError, match="Give inputs_embeds"):
        fusion(projected_rows=projected_rows)
