"""knowledge-clip: Knowledge-CLIP (Pan et al., NeurIPS 2022) as a Hugging Face model.

Importing the package registers the model for `AutoConfig`, `AutoModel`,
`AutoModelForZeroShotImageClassification` and `AutoProcessor`, and marks its classes for the auto classes so that
`save_pretrained` writes an `auto_map` and the flat module files (`trust_remote_code` loading without the package).
It also registers the "knowledge-triplet-completion" pipeline task.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForZeroShotImageClassification,
    AutoProcessor,
)

from .configuration_knowledge_clip import KnowledgeCLIPConfig, KnowledgeFusionConfig
from .losses import FeatureGather, clip_loss, e2e_loss, e2r_loss, g2e_loss, info_nce_loss, kd_loss
from .modeling_knowledge_clip import KnowledgeCLIPModel, KnowledgeCLIPOutput, KnowledgeFusionModel
from .pipeline_knowledge_clip import register_pipeline
from .processing_knowledge_clip import KnowledgeCLIPProcessor
from .reasoning import KnowledgeReasoner

__version__ = "0.1.0"

AutoConfig.register(KnowledgeCLIPConfig.model_type, KnowledgeCLIPConfig, exist_ok=True)
AutoConfig.register(KnowledgeFusionConfig.model_type, KnowledgeFusionConfig, exist_ok=True)
AutoModel.register(KnowledgeCLIPConfig, KnowledgeCLIPModel, exist_ok=True)
AutoModelForZeroShotImageClassification.register(KnowledgeCLIPConfig, KnowledgeCLIPModel, exist_ok=True)
AutoProcessor.register(KnowledgeCLIPConfig, KnowledgeCLIPProcessor, exist_ok=True)
KnowledgeCLIPConfig.register_for_auto_class()
KnowledgeCLIPModel.register_for_auto_class("AutoModel")
KnowledgeCLIPProcessor.register_for_auto_class()
register_pipeline()

__all__ = [
    "FeatureGather",
    "KnowledgeCLIPConfig",
    "KnowledgeCLIPModel",
    "KnowledgeCLIPOutput",
    "KnowledgeCLIPProcessor",
    "KnowledgeFusionConfig",
    "KnowledgeFusionModel",
    "KnowledgeReasoner",
    "clip_loss",
    "e2e_loss",
    "e2r_loss",
    "g2e_loss",
    "info_nce_loss",
    "kd_loss",
]
