# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Knowledge-CLIP model configuration."""

from huggingface_hub.dataclasses import strict
from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig, PreTrainedConfig

_CLIP_BOOKKEEPING_KEYS = ("model_type", "transformers_version", "architectures", "_name_or_path", "auto_map")

JOINT_RELATIONS = ("masked", "task_token")
"""The readings of the relation slot of the task models' joint image-text sequence (`KnowledgeCLIPConfig.joint_relation`)."""

TASK_HEAD_INPUTS = ("joint", "joint_and_towers")
"""What the task models' classifier reads (`KnowledgeCLIPConfig.task_head_inputs`)."""


@strict
class KnowledgeFusionConfig(PreTrainedConfig):
    r"""
    Configuration of the multi-modal (fusion) encoder of Knowledge-CLIP: the transformer that reads a triplet
    sequence `[<head>, x_h + PE_h, x̄_r + PE_r, x_t + PE_t]` (Eq. 3 of Pan et al., 2022). The defaults are the paper's
    (4 layers, width 1024, drop-path 0.1).

    Args:
        hidden_size (`int`, *optional*, defaults to 1024):
            Width of the fusion encoder.
        num_hidden_layers (`int`, *optional*, defaults to 4):
            Number of transformer layers.
        num_attention_heads (`int`, *optional*, defaults to 16):
            Number of attention heads; must divide `hidden_size`.
        intermediate_size (`int`, *optional*, defaults to 4096):
            Width of the MLP inside each layer.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the MLP.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the layer norms.
        attention_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the attention probabilities.
        drop_path_rate (`float`, *optional*, defaults to 0.1):
            Stochastic depth: the probability of dropping a residual branch grows linearly from 0 at the first layer
            to this value at the last.
        max_entity_tokens (`int`, *optional*):
            Number of learned role encodings PE_h and PE_t, i.e. the longest token sequence of one entity. Filled by
            [`KnowledgeCLIPConfig`] from its towers (text positions, image patches + 1) when left unset.
        num_images (`int`, *optional*, defaults to 1):
            Images per example of [`KnowledgeCLIPForImageTextClassification`]: 1 for visual entailment, 2 for NLVR2.
        joint_relation (`str`, *optional*, defaults to `"masked"`):
            What the relation slot of the task models' joint sequence `X(image, ·, text)` holds: `"masked"`, the zero
            token of Eq. 6 (the sequence E2R pre-trains), or `"task_token"`, a learned vector of the task model
            (`task_token`), initialised at zero so that fine-tuning starts from exactly the masked reading.
        task_head_inputs (`str`, *optional*, defaults to `"joint"`):
            What the task models' classifier reads per image-text pair: `"joint"`, the joint representation
            `Y(image, ·, text)` alone (as ViLT reads its pooled output), or `"joint_and_towers"`, that and the towers'
            embeddings `u` (image) and `v` (text), L2-normalised, with their product `u ⊙ v` (the terms of CLIP's own
            score), so that the head reads the image through CLIP's features before the fusion encoder learns to.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialiser of the fusion weights.
    """

    model_type = "knowledge_clip_fusion"
    base_config_key = "fusion_encoder_config"

    hidden_size: int = 1024
    num_hidden_layers: int = 4
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    attention_dropout: float | int = 0.0
    drop_path_rate: float | int = 0.1
    max_entity_tokens: int | None = None
    initializer_range: float = 0.02

    def validate_architecture(self):
        """Part of `@strict` validation: shapes and rates must make sense."""
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"fusion_encoder_config.{name} must be >= 1, got {getattr(self, name)}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"fusion_encoder_config.hidden_size ({self.hidden_size}) is not a multiple of "
                f"num_attention_heads ({self.num_attention_heads})."
            )
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"fusion_encoder_config.drop_path_rate must be in [0, 1), got {self.drop_path_rate}.")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(
                f"fusion_encoder_config.attention_dropout must be in [0, 1), got {self.attention_dropout}."
            )
        if self.max_entity_tokens is not None and self.max_entity_tokens < 1:
            raise ValueError(f"fusion_encoder_config.max_entity_tokens must be >= 1, got {self.max_entity_tokens}.")


@strict
class KnowledgeCLIPConfig(CLIPConfig):
    r"""
    Configuration of a [`KnowledgeCLIPModel`]: a CLIP configuration (`text_config`, `vision_config`,
    `projection_dim`, `logit_scale_init_value`) plus the fusion encoder, the graph reasoning settings, the relation
    vocabulary and the weights of the training objectives.

    Args:
        fusion_encoder_config (`dict` or [`KnowledgeFusionConfig`], *optional*):
            The multi-modal encoder. Defaults to the paper's (4 layers, width 1024, drop-path 0.1).
        relation_vocab (`list[str]`, *optional*, defaults to `[]`):
            The relation classes of the E2R objective (Eq. 10), as texts. Each must be unique and non-empty.
        graph_num_layers (`int`, *optional*, defaults to 2):
            Number L of message-passing layers of the G2E objective (Eqs. 11-13).
        graph_num_neighbors (`int`, *optional*, defaults to 4):
            In-neighbours sampled per entity and hop when building G2E subgraphs.
        e2e_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the entity-entity objective (Eq. 8) in the total loss (Eq. 14).
        e2r_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the entity-relation objective (Eq. 10).
        g2e_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the graph-entity objective (Eq. 13).
        kd_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the distillation against the frozen original CLIP.
        clip_loss_weight (`float`, *optional*, defaults to 0.0):
            Weight of CLIP's own image-text contrastive loss on the image-text pairs of a knowledge batch. The paper
            does not use it; it is here for ablations.
        knowledge_temperature (`float`, *optional*, defaults to 0.07):
            Temperature τ of the E2E and G2E InfoNCE losses.
        kd_temperature (`float`, *optional*, defaults to 1.0):
            Temperature of the distillation softmaxes (applied on top of each model's own `logit_scale`).
        num_images (`int`, *optional*, defaults to 1):
            Images per example of [`KnowledgeCLIPForImageTextClassification`]: 1 for visual entailment, 2 for NLVR2.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the initialiser of the new (non-CLIP) weights. `CLIPConfig` has none, and without it
            new `nn.Linear` layers would be drawn from N(0, 1).

    Example:

    ```python
    >>> from knowledge_clip import KnowledgeCLIPConfig, KnowledgeCLIPModel
    >>> config = KnowledgeCLIPConfig(relation_vocab=["is a", "part of"])
    >>> model = KnowledgeCLIPModel(config)
    ```
    """

    model_type = "knowledge_clip"
    sub_configs_defaults = {
        "text_config": CLIPTextConfig,
        "vision_config": CLIPVisionConfig,
        "fusion_encoder_config": KnowledgeFusionConfig,
    }

    fusion_encoder_config: dict | KnowledgeFusionConfig | None = None
    relation_vocab: list[str] | None = None
    graph_num_layers: int = 2
    graph_num_neighbors: int = 4
    e2e_loss_weight: float | int = 1.0
    e2r_loss_weight: float | int = 1.0
    g2e_loss_weight: float | int = 1.0
    kd_loss_weight: float | int = 1.0
    clip_loss_weight: float | int = 0.0
    knowledge_temperature: float | int = 0.07
    kd_temperature: float | int = 1.0
    num_images: int = 1
    joint_relation: str = "masked"
    task_head_inputs: str = "joint"
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        self.relation_vocab = list(self.relation_vocab) if self.relation_vocab is not None else []
        super().__post_init__(**kwargs)
        if self.fusion_encoder_config.max_entity_tokens is None:
            self.fusion_encoder_config.max_entity_tokens = self.max_entity_tokens_of_towers()

    def max_entity_tokens_of_towers(self) -> int:
        """The longest token sequence one entity can have: a full text, or every image patch plus the class token."""
        vision = self.vision_config
        image_size = vision.image_size if isinstance(vision.image_size, int) else max(vision.image_size)
        patch_size = vision.patch_size if isinstance(vision.patch_size, int) else min(vision.patch_size)
        return max(self.text_config.max_position_embeddings, (image_size // patch_size) ** 2 + 1)

    @property
    def num_relations(self) -> int:
        """Number of E2R relation classes."""
        return len(self.relation_vocab)

    def validate_knowledge(self):
        """Part of `@strict` validation: the knowledge-specific fields."""
        for name in ("e2e_loss_weight", "e2r_loss_weight", "g2e_loss_weight", "kd_loss_weight", "clip_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        for name in ("knowledge_temperature", "kd_temperature", "initializer_range"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        if self.graph_num_layers < 0:
            raise ValueError(f"graph_num_layers must be >= 0, got {self.graph_num_layers}.")
        if self.num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {self.num_images}.")
        if self.joint_relation not in JOINT_RELATIONS:
            raise ValueError(
                f"joint_relation must be one of {', '.join(JOINT_RELATIONS)}, got {self.joint_relation!r}."
            )
        if self.task_head_inputs not in TASK_HEAD_INPUTS:
            raise ValueError(
                f"task_head_inputs must be one of {', '.join(TASK_HEAD_INPUTS)}, got {self.task_head_inputs!r}."
            )
        if self.graph_num_neighbors < 1:
            raise ValueError(f"graph_num_neighbors must be >= 1, got {self.graph_num_neighbors}.")
        seen = set()
        for index, relation in enumerate(self.relation_vocab):
            if not isinstance(relation, str) or not relation.strip():
                raise ValueError(f"relation_vocab[{index}] must be a non-empty string, got {relation!r}.")
            if relation in seen:
                raise ValueError(f"relation_vocab[{index}] = {relation!r} appears twice.")
            seen.add(relation)

    @classmethod
    def from_clip_config(cls, clip_config: CLIPConfig | dict, **overrides) -> "KnowledgeCLIPConfig":
        """
        Build a Knowledge-CLIP configuration around an existing CLIP configuration.

        Going through the CLIP config's dict but dropping its bookkeeping keys keeps `model_type` from being shadowed
        by `"clip"` and avoids the model-type warning of `from_pretrained`: in transformers 5, a dict's
        `"model_type": "clip"` passed to a config subclass becomes an instance attribute that hides the class's
        `model_type` from pipelines and PEFT, although `to_dict()` still writes `knowledge_clip`.

        Args:
            clip_config (`CLIPConfig` or `dict`):
                The configuration of the CLIP checkpoint to continue.
            **overrides:
                Any field of [`KnowledgeCLIPConfig`], e.g. `relation_vocab=[...]` or
                `fusion_encoder_config={"hidden_size": 512}`.
        """
        values = clip_config.to_dict() if isinstance(clip_config, PreTrainedConfig) else dict(clip_config)
        for key in _CLIP_BOOKKEEPING_KEYS:
            values.pop(key, None)
        return cls(**{**values, **overrides})

    def to_clip_config(self) -> CLIPConfig:
        """The stock `CLIPConfig` of the two towers, without any knowledge field."""
        return CLIPConfig(
            text_config=self.text_config.to_dict(),
            vision_config=self.vision_config.to_dict(),
            projection_dim=self.projection_dim,
            logit_scale_init_value=self.logit_scale_init_value,
            initializer_factor=self.initializer_factor,
        )


__all__ = ["KnowledgeCLIPConfig", "KnowledgeFusionConfig"]
