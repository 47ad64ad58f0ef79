"""KnowledgeCLIPConfig: defaults as the paper, round trip, strict validation, CLIP in and out."""

import pytest
from transformers import CLIPConfig

from knowledge_clip import KnowledgeCLIPConfig, KnowledgeFusionConfig


def test_defaults_follow_the_paper():
    config = KnowledgeCLIPConfig()
    fusion = config.fusion_encoder_config
    assert isinstance(fusion, KnowledgeFusionConfig)
    assert (fusion.num_hidden_layers, fusion.hidden_size, fusion.drop_path_rate) == (4, 1024, 0.1)
    weights = (config.e2e_loss_weight, config.e2r_loss_weight, config.g2e_loss_weight, config.kd_loss_weight)
    assert weights == (1.0, 1.0, 1.0, 1.0) and config.clip_loss_weight == 0.0
    # ViT-B/32 at 224: 7 * 7 patches + the class token; the text tower has 77 positions.
    assert fusion.max_entity_tokens == 77


def test_round_trip(tmp_path):
    config = KnowledgeCLIPConfig(
        relation_vocab=["is a", "part of"],
        graph_num_layers=3,
        kd_loss_weight=0.5,
        fusion_encoder_config={"hidden_size": 64, "num_attention_heads": 4},
    )
    config.save_pretrained(tmp_path)
    loaded = KnowledgeCLIPConfig.from_pretrained(tmp_path)
    assert isinstance(loaded.fusion_encoder_config, KnowledgeFusionConfig)
    assert loaded.fusion_encoder_config.hidden_size == 64
    assert (loaded.relation_vocab, loaded.graph_num_layers, loaded.kd_loss_weight) == (["is a", "part of"], 3, 0.5)
    assert loaded.model_type == "knowledge_clip"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"e2e_loss_weight": -1.0}, "e2e_loss_weight must be >= 0"),
        ({"knowledge_temperature": 0.0}, "knowledge_temperature must be > 0"),
        ({"graph_num_neighbors": 0}, "graph_num_neighbors must be >= 1"),
        ({"graph_num_layers": -1}, "graph_num_layers must be >= 0"),
        ({"joint_relation": "relation"}, "joint_relation must be one of masked, task_token"),
        ({"task_head_inputs": "towers"}, "task_head_inputs must be one of joint, joint_and_towers"),
        ({"relation_vocab": ["is a", "is a"]}, "appears twice"),
        ({"relation_vocab": ["is a", " "]}, "relation_vocab\\[1\\] must be a non-empty string"),
        ({"graph_num_layers": "2"}, "expected int"),
        ({"fusion_encoder_config": {"hidden_size": 10, "num_attention_heads": 3}}, "not a multiple"),
        ({"fusion_encoder_config": {"drop_path_rate": 1.5}}, "drop_path_rate must be in"),
    ],
)
def test_invalid_values_are_rejected(kwargs, message):
    with pytest.raises(Exception, match=message):
        KnowledgeCLIPConfig(**kwargs)


def test_from_clip_config_does_not_shadow_model_type():
    clip_config = CLIPConfig(projection_dim=64, text_config={"hidden_size": 128, "num_attention_heads": 4})
    config = KnowledgeCLIPConfig.from_clip_config(clip_config, relation_vocab=["is a"])
    assert config.model_type == "knowledge_clip" and "model_type" not in vars(config)
    assert config.projection_dim == 64 and config.text_config.hidden_size == 128
    exported = config.to_clip_config()
    assert type(exported) is CLIPConfig
    assert exported.text_config.hidden_size == 128 and not hasattr(exported, "relation_vocab")
