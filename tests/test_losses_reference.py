"""The batched, deduplicated model computes the paper's equations.

Each objective is recomputed here literally: one tower pass per entity occurrence, one fusion pass per triplet,
Eq. 3 built by hand from the model's parameters, the losses written as explicit sums over the batch. The model's
`forward(return_loss=True)` must match within 1e-5.
"""

import math

import pytest
import torch
from tiny import RELATIONS, solid_image, tiny_config, tiny_processor, tiny_tokenizer

from knowledge_clip import KnowledgeCLIPModel
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


class Literal:
    """The paper's equations, one entity and one triplet at a time."""

    def __init__(self, model, processor):
        self.model, self.processor = model, processor
        self.fusion = model.fusion_encoder

    def tokens(self, entity):
        """x_e: the entity's token features at the fusion width (one tower pass, no padding)."""
        if isinstance(entity, str):
            ids = self.processor.tokenizer(entity, return_tensors="pt")["input_ids"]
            hidden = self.model.text_model(input_ids=ids).last_hidden_state[0]
            return self.model.text_to_fusion(hidden)
        pixels = self.processor.image_processor(entity.convert("RGB"), return_tensors="pt")["pixel_values"]
        hidden = self.model.vision_model(pixel_values=pixels).last_hidden_state
        return self.model.vision_to_fusion(self.model.vision_model.post_layernorm(hidden))[0]

    def relation(self, text):
        ids = self.processor.tokenizer(text, return_tensors="pt")["input_ids"]
        return self.model.text_to_fusion(self.model.text_model(input_ids=ids).pooler_output)[0]

    def sequence(self, head, relation, tail):
        """Eq. 3 with Eq. 6 masking: [<head>, x_h + PE_h, x̄_r + PE_r, x_t + PE_t]; a masked part is one zero token."""
        emb = self.fusion.embeddings
        width = emb.head_token.shape[0]
        x_h = self.tokens(head) if head is not None else torch.zeros(1, width)
        x_t = self.tokens(tail) if tail is not None else torch.zeros(1, width)
        x_r = self.relation(relation) if relation is not None else torch.zeros(width)
        pe_h = emb.head_role_embedding.weight[: x_h.shape[0]]
        pe_t = emb.tail_role_embedding.weight[: x_t.shape[0]]
        rows = [emb.head_token[None], x_h + pe_h, (x_r + emb.relation_role_embedding)[None], x_t + pe_t]
        return torch.cat(rows), 1 + x_h.shape[0]

    def fuse(self, head, relation, tail):
        sequence, relation_position = self.sequence(head, relation, tail)
        hidden = self.fusion(inputs_embeds=sequence[None]).last_hidden_state[0]
        return hidden[0], hidden[relation_position]  # Y (Eq. 4), R (Eq. 5)

    def Y(self, head, relation, tail):
        return self.fuse(head, relation, tail)[0]

    def R(self, head, tail):
        return self.fuse(head, None, tail)[1]


def cosine(a, b):
    return torch.dot(a, b) / (a.norm() * b.norm())


def info_nce_literal(xs, ys, interchangeable, scale):
    """Eq. 8 / Eq. 13 as written: -log of the positive's share among the non-interchangeable candidates."""
    n = len(xs)
    total = 0.0
    for i in range(n):
        for first, second in ((xs, ys), (ys, xs)):
            candidates = [j for j in range(n) if j == i or not interchangeable(i, j)]
            logits = torch.stack([scale * cosine(first[i], second[j]) for j in candidates])
            total = total - (logits[candidates.index(i)] - torch.logsumexp(logits, dim=0))
    return total / (2 * n)


def key(entity):
    return entity if isinstance(entity, str) else ("image", entity.tobytes())


@torch.no_grad()
def test_losses_equal_literal_equations(setup):
    model, teacher, processor, batch, triplets, graph_edges = setup
    output = model(**batch, return_loss=True, **teacher_embeddings(teacher, batch))
    literal = Literal(model, processor)
    tau = model.config.knowledge_temperature

    # E2E (Eq. 8): Y(-,-,t_i) vs Y(h_i, r_i, -).
    tails = [literal.Y(None, None, t) for _, _, t in triplets]
    queries = [literal.Y(h, r, None) for h, r, _ in triplets]

    def e2e_interchangeable(i, j):
        (hi, ri, ti), (hj, rj, tj) = triplets[i], triplets[j]
        return key(ti) == key(tj) or (key(hi) == key(hj) and ri == rj)

    e2e = info_nce_literal(tails, queries, e2e_interchangeable, 1 / tau)
    assert abs(output.e2e_loss.item() - e2e.item()) < TOL

    # E2R (Eq. 10): the relation MLP on R(h_i, -, t_i), cross-entropy over the vocabulary.
    e2r = 0.0
    for h, r, t in triplets:
        logits = model.relation_head(literal.R(h, t))
        e2r = e2r - torch.log_softmax(logits, dim=0)[RELATIONS.index(r)]
    assert abs(output.e2r_loss.item() - e2r.item() / len(triplets)) < TOL

    # G2E (Eqs. 11-13): G^0 = Y(-,-,e); G^l(t) = mean over in-edges (h, r, t) of [W^l R(h,-,t)] * G^{l-1}(h).
    def G(layer, entity):
        if layer == 0:
            return literal.Y(None, None, entity)
        in_edges = [(h, r) for h, r, t in graph_edges if key(t) == key(entity)]
        if not in_edges:
            return G(layer - 1, entity)
        gate = model.graph_head.layers[layer - 1]
        return torch.stack([gate(literal.R(h, entity)) * G(layer - 1, h) for h, _ in in_edges]).mean(dim=0)

    targets = []
    for _, _, t in triplets:
        if any(key(t) == key(e_t) for _, _, e_t in graph_edges) and all(key(t) != key(x) for x in targets):
            targets.append(t)
    g2e = info_nce_literal(
        [literal.Y(None, None, t) for t in targets],
        [G(model.config.graph_num_layers, t) for t in targets],
        lambda i, j: False,
        1 / tau,
    )
    assert len(targets) >= 3
    assert abs(output.g2e_loss.item() - g2e.item()) < TOL

    # KD: KL(teacher || student) of the image->text and text->image similarity distributions over the batch.
    texts, images = [], []
    for h, _, t in triplets:
        for entity in (h, t):
            bucket = texts if isinstance(entity, str) else images
            if all(key(entity) != key(x) for x in bucket):
                bucket.append(entity)

    def embeds(clip, entities):
        rows = []
        for entity in entities:
            if isinstance(entity, str):
                ids = processor.tokenizer(entity, return_tensors="pt")["input_ids"]
                rows.append(clip.get_text_features(input_ids=ids).pooler_output[0])
            else:
                pixels = processor.image_processor(entity.convert("RGB"), return_tensors="pt")["pixel_values"]
                rows.append(clip.get_image_features(pixel_values=pixels).pooler_output[0])
        return rows

    T = model.config.kd_temperature

    def kl_rows(student_rows, student_cols, teacher_rows, teacher_cols, student_scale, teacher_scale):
        total = 0.0
        for i in range(len(student_rows)):
            s = torch.stack([student_scale * cosine(student_rows[i], c) / T for c in student_cols])
            t = torch.stack([teacher_scale * cosine(teacher_rows[i], c) / T for c in teacher_cols])
            p = torch.softmax(t, dim=0)
            total = total + sum(p[j] * (math.log(p[j]) - torch.log_softmax(s, dim=0)[j]) for j in range(len(p)))
        return total

    s_txt, s_img = embeds(model, texts), embeds(model, images)
    t_txt, t_img = embeds(teacher, texts), embeds(teacher, images)
    s_scale, t_scale = model.logit_scale.exp(), teacher.logit_scale.exp()
    kd = kl_rows(s_img, s_txt, t_img, t_txt, s_scale, t_scale) + kl_rows(s_txt, s_img, t_txt, t_img, s_scale, t_scale)
    kd = kd * T**2 / (len(texts) + len(images))
    assert abs(output.kd_loss.item() - kd.item()) < TOL

    # Eq. 14: equal weights.
    total = output.e2e_loss + output.e2r_loss + output.g2e_loss + output.kd_loss
    assert abs(output.loss.item() - total.item()) < TOL


@torch.no_grad()
def test_public_encoders_match_literal(setup):
    model, _, processor, _, _, _ = setup
    literal = Literal(model, processor)
    red = solid_image((220, 30, 30))
    entities = ["a red square", "shape", red]
    batch = processor(triplets=[("a red square", "is a", "shape"), (red, "image of", "a red square")])
    entity_inputs = {k: batch[k] for k in ("entity_input_ids", "entity_attention_mask", "entity_pixel_values")}
    features = model.encode_entity_features(**entity_inputs, **_relations(batch))
    entity_embeds = model.encode_entities(features)
    for slot, entity in enumerate(entities):
        assert torch.allclose(entity_embeds[slot], literal.Y(None, None, entity), atol=TOL)

    queries = model.encode_queries(features, batch["triplets"][:, :2])
    assert torch.allclose(queries[0], literal.Y("a red square", "is a", None), atol=TOL)
    assert torch.allclose(queries[1], literal.Y(red, "image of", None), atol=TOL)

    logits = model.predict_relations(features, batch["triplets"][:, [0, 2]])
    assert torch.allclose(logits[1], model.relation_head(literal.R(red, "a red square")), atol=TOL)


def _relations(batch):
    return {k: batch[k] for k in ("relation_input_ids", "relation_attention_mask")}


def test_kd_is_zero_against_itself(setup):
    model, _, _, batch, _, _ = setup
    with torch.no_grad():
        output = model(**batch, return_loss=True, **teacher_embeddings(model.to_clip().eval(), batch))
    assert abs(output.kd_loss.item()) < 1e-6
