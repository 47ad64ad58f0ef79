"""The batched, deduplicated model computes the paper's equations.

Each objective is recomputed by the literal reference, `knowledge_clip.reference.LiteralKnowledgeCLIP`: one tower
pass per entity occurrence, one fusion pass per sequence, Eq. 3 built by hand from the model's parameters, the losses
written as sums over the batch. The model's `forward(return_loss=True)`, its losses and their gradients, must match
within 1e-5.
"""

import pytest
import torch
from tiny import solid_image, tiny_config, tiny_processor, tiny_tokenizer

from knowledge_clip import KnowledgeCLIPModel
from knowledge_clip.reference import LiteralKnowledgeCLIP
from knowledge_clip.training import teacher_embeddings

TOL = 1e-5


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    processor = tiny_processor(tokenizer)
    model = KnowledgeCLIPModel(tiny_config(tokenizer)).eval()
    teacher = KnowledgeCLIPModel(tiny_config(tokenizer)).to_clip().eval()
    red, blue, green = solid_image((220, 30, 30)), solid_image((30, 30, 220)), solid_image((30, 200, 30))
    # Two triplets share a tail and two share (head, relation): the false-negative masks matter.
    triplets = [
        (red, "image of", "a red square"),
        ("a red square", "caption of", red),
        ("a blue circle", "left of", blue),
        ("square", "is a", "shape"),
        ("circle", "is a", "shape"),
        ("square", "is a", "a red square"),
        (green, "image of", "a green triangle"),
    ]
    graph_edges = [
        ("a red square", "caption of", red),
        (blue, "left of", red),
        ("circle", "is a", "shape"),
        ("square", "has part", "shape"),
        (green, "left of", "square"),
        ("a red square", "left of", "square"),
        (red, "image of", "a red square"),
    ]
    batch = processor(triplets=triplets, graph_edges=graph_edges)
    return model, teacher, processor, batch, triplets, graph_edges


@torch.no_grad()
def test_losses_equal_literal_equations(setup):
    model, teacher, _, batch, _, _ = setup
    output = model(**batch, return_loss=True, **teacher_embeddings(teacher, batch))
    literal = LiteralKnowledgeCLIP(model, teacher, batch)
    expected = literal.losses()
    # E2E (Eq. 8), E2R (Eq. 10), G2E (Eqs. 11-13) and KD, each against its literal sum over the batch.
    for name in ("e2e_loss", "e2r_loss", "g2e_loss", "kd_loss"):
        assert abs(output[name].item() - expected[name].item()) < TOL, name
    edge_tails = set(batch["graph_edges"][:, 2].tolist())
    assert len(edge_tails & set(batch["triplets"][:, 2].tolist())) >= 3  # G2E contrasts several targets
    # One fusion pass per sequence of every objective: nothing was shared with the batched path.
    assert literal.fusion_passes > 3 * len(batch["triplets"])

    # Eq. 14: equal weights.
    total = output.e2e_loss + output.e2r_loss + output.g2e_loss + output.kd_loss
    assert abs(output.loss.item() - total.item()) < TOL
    assert abs(output.loss.item() - expected["loss"].item()) < TOL


def test_gradients_equal_literal_equations(setup):
    model, teacher, _, batch, _, _ = setup
    gradients = {}
    for name, compute in (
        ("batched", lambda: model(**batch, return_loss=True, **teacher_embeddings(teacher, batch)).loss),
        ("literal", lambda: LiteralKnowledgeCLIP(model, teacher, batch).losses()["loss"]),
    ):
        model.zero_grad(set_to_none=True)
        compute().backward()
        gradients[name] = {key: p.grad.clone() for key, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    assert gradients["batched"].keys() == gradients["literal"].keys()
    # Relative to the gradient's size: token-embedding gradients reach ~20, and float32 sums of them in another order
    # differ by ~1e-6 of that.
    for key, gradient in gradients["batched"].items():
        torch.testing.assert_close(gradient, gradients["literal"][key], rtol=TOL, atol=TOL, msg=key)


@torch.no_grad()
def test_public_encoders_match_literal(setup):
    model, teacher, processor, _, _, _ = setup
    red = solid_image((220, 30, 30))
    batch = processor(triplets=[("a red square", "is a", "shape"), (red, "image of", "a red square")])
    literal = LiteralKnowledgeCLIP(model, teacher, batch)
    entity_inputs = {k: batch[k] for k in ("entity_input_ids", "entity_attention_mask", "entity_pixel_values")}
    features = model.encode_entity_features(**entity_inputs, **_relations(batch))
    entity_embeds = model.encode_entities(features)
    for slot in range(3):  # "a red square", "shape", the red image
        assert torch.allclose(entity_embeds[slot], literal.fuse(None, None, slot)[0], atol=TOL)

    queries = model.encode_queries(features, batch["triplets"][:, :2])
    for row, (head, relation, _) in enumerate(batch["triplets"].tolist()):
        assert torch.allclose(queries[row], literal.fuse(head, relation, None)[0], atol=TOL)

    logits = model.predict_relations(features, batch["triplets"][:, [0, 2]])
    head, _, tail = batch["triplets"][1].tolist()
    assert torch.allclose(logits[1], model.relation_head(literal.fuse(head, None, tail)[1]), atol=TOL)


def _relations(batch):
    return {k: batch[k] for k in ("relation_input_ids", "relation_attention_mask")}


def test_kd_is_zero_against_itself(setup):
    model, _, _, batch, _, _ = setup
    with torch.no_grad():
        output = model(**batch, return_loss=True, **teacher_embeddings(model.to_clip().eval(), batch))
    assert abs(output.kd_loss.item()) < 1e-6


def _padded_on_the_left(input_ids, attention_mask, pad_token_id):
    """The same texts padded on the other side: each row's real tokens moved to its end."""
    lengths = attention_mask.sum(dim=1)
    shifts = attention_mask.shape[1] - lengths
    columns = (torch.arange(attention_mask.shape[1]) - shifts[:, None]) % attention_mask.shape[1]
    left_ids = torch.gather(input_ids, 1, columns)
    left_mask = torch.gather(attention_mask, 1, columns)
    return left_ids.masked_fill(left_mask == 0, pad_token_id), left_mask


@torch.no_grad()
def test_text_tower_runs_in_length_buckets_for_any_padding_side(setup):
    model, teacher, _, batch, _, _ = setup
    widths = []

    def record_width(module, args, kwargs):
        widths.append(kwargs["input_ids"].shape[1])

    hook = model.text_model.register_forward_pre_hook(record_width, with_kwargs=True)
    try:
        right = model.encode_entity_features(
            batch["entity_input_ids"], batch["entity_attention_mask"], None, **_relations(batch)
        )
    finally:
        hook.remove()
    # Several passes, each cut to its longest text: none pays for the batch's longest entity text but the last.
    lengths = torch.cat([batch["entity_attention_mask"].sum(1), batch["relation_attention_mask"].sum(1)])
    assert len(widths) > 1 and sorted(widths) == widths and widths[-1] == lengths.max()
    assert widths[0] < lengths.max() / 1.5

    # Every text's tokens and pooled output are those of the text alone (the literal reference's tower passes).
    literal = LiteralKnowledgeCLIP(model, teacher, batch)
    num_texts = batch["entity_input_ids"].shape[0]
    for slot in range(num_texts):
        tokens = literal.entity_tokens(slot)
        assert right.lengths[slot] == tokens.shape[0]
        torch.testing.assert_close(right.tokens[slot, : tokens.shape[0]], tokens, rtol=TOL, atol=TOL)
    for row in range(batch["relation_input_ids"].shape[0]):
        torch.testing.assert_close(right.relation_tokens[row], literal.relation_token(row), rtol=TOL, atol=TOL)
    # The text tower's output keeps one row per entity text, then per relation.
    assert right.text_model_output.pooler_output.shape[0] == num_texts + batch["relation_input_ids"].shape[0]

    # Padded on the left instead, the texts give the same features.
    pad = model.config.text_config.pad_token_id
    left = model.encode_entity_features(
        *_padded_on_the_left(batch["entity_input_ids"], batch["entity_attention_mask"], pad),
        None,
        *_padded_on_the_left(batch["relation_input_ids"], batch["relation_attention_mask"], pad),
    )
    assert torch.equal(left.lengths, right.lengths)
    for slot in range(num_texts):
        length = right.lengths[slot]
        torch.testing.assert_close(left.tokens[slot, :length], right.tokens[slot, :length], rtol=TOL, atol=TOL)
    torch.testing.assert_close(left.text_embeds, right.text_embeds, rtol=TOL, atol=TOL)
    torch.testing.assert_close(left.relation_tokens, right.relation_tokens, rtol=TOL, atol=TOL)
