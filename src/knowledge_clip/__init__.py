"""knowledge-clip: Knowledge-CLIP (Pan et al., NeurIPS 2022) as a Hugging Face model.

Importing the package registers the model for `AutoConfig`, `AutoModel`,
`AutoModelForZeroShotImageClassification` and `AutoProcessor`, the task models for
`AutoModelForVisualQuestionAnswering` and `AutoModelForSequenceClassification` (transformers has no auto class for
image-text classification; that one maps a config's `id2label` to logits too), and marks the classes for the auto
classes so that `save_pretrained` writes an `auto_map` and the flat module files (`trust_remote_code` loading without
the package). It also registers the "knowledge-triplet-completion" and "knowledge-visual-question-answering" pipeline
tasks.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForVisualQuestionAnswering,
    AutoModelForZeroShotImageClassification,
    AutoProcessor,
)

from . import losses
from .configuration_knowledge_clip import KnowledgeCLIPConfig, KnowledgeFusionConfig
from .losses import *  # noqa: F403 (the names of losses.__all__, exported below)
from .modeling_knowledge_clip import (
    KnowledgeCLIPClassificationOutput,
    KnowledgeCLIPForImageTextClassification,
    KnowledgeCLIPForQuestionAnswering,
    KnowledgeCLIPModel,
    KnowledgeCLIPOutput,
    KnowledgeFusionModel,
    KnowledgeFusionOutput,
    masked_sequences,
)
from .pipeline_knowledge_clip import register_pipeline
from .processing_knowledge_clip import KnowledgeCLIPProcessor
from .reasoning import KnowledgeReasoner

__version__ = "0.1.0"

AutoConfig.register(KnowledgeCLIPConfig.model_type, KnowledgeCLIPConfig, exist_ok=True)
AutoConfig.register(KnowledgeFusionConfig.model_type, KnowledgeFusionConfig, exist_ok=True)
AutoModel.register(KnowledgeCLIPConfig, KnowledgeCLIPModel, exist_ok=True)
AutoModelForZeroShotImageClassification.register(KnowledgeCLIPConfig, KnowledgeCLIPModel, exist_ok=True)
AutoModelForVisualQuestionAnswering.register(KnowledgeCLIPConfig, KnowledgeCLIPForQuestionAnswering, exist_ok=True)
AutoModelForSequenceClassification.register(
    KnowledgeCLIPConfig, KnowledgeCLIPForImageTextClassification, exist_ok=True
)
AutoProcessor.register(KnowledgeCLIPConfig, KnowledgeCLIPProcessor, exist_ok=True)
KnowledgeCLIPConfig.register_for_auto_class()
KnowledgeCLIPModel.register_for_auto_class("AutoModel")
KnowledgeCLIPForQuestionAnswering.register_for_auto_class("AutoModelForVisualQuestionAnswering")
KnowledgeCLIPForImageTextClassification.register_for_auto_class("AutoModelForSequenceClassification")
KnowledgeCLIPProcessor.register_for_auto_class()
register_pipeline()

__all__ = [
    "KnowledgeCLIPClassificationOutput",
    "KnowledgeCLIPForImageTextClassification",
    "KnowledgeCLIPForQuestionAnswering",
    "KnowledgeCLIPConfig",
    "KnowledgeCLIPModel",
    "KnowledgeCLIPOutput",
    "KnowledgeCLIPProcessor",
    "KnowledgeFusionConfig",
    "KnowledgeFusionModel",
    "KnowledgeFusionOutput",
    "KnowledgeReasoner",
    "masked_sequences",
]
__all__ += losses.__all__  # the objectives: FeatureGather, KnowledgeCLIPLoss and the per-equation losses
