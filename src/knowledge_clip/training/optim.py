# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The paper's optimisation: AdamW with two learning rates and decay groups, cosine schedule with linear warm-up."""

import math

import torch
from torch import nn

from ..modeling_knowledge_clip import KnowledgeCLIPModel

__all__ = ["clamp_logit_scale", "cosine_schedule_with_warmup", "parameter_groups"]

# The modules Knowledge-CLIP adds to CLIP; everything else is a pretrained tower.
NEW_MODULE_PREFIXES = ("text_to_fusion.", "vision_to_fusion.", "fusion_encoder.", "relation_head.", "graph_head.")
MAX_LOGIT_SCALE = math.log(100)


def _lookup_table_parameters(model: nn.Module) -> set[int]:
    """Ids of the weights of every `nn.Embedding` (token, position and role embeddings)."""
    return {id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)}


def _no_weight_decay(parameter: nn.Parameter, lookup_tables: set[int]) -> bool:
    # Decay applies to the weight matrices of linear and convolution layers only (CLIP's and open_clip's rule), the
    # patch embedding included: it is a convolution over pixels like any other projection, and timm's ViT decays it
    # too. Exempt are vectors and scalars (biases, norm gains, the class embedding, the fusion head token and relation
    # role, logit_scale) and nn.Embedding tables (token, position, fusion role embeddings), which open_clip would
    # decay: a table's row gets a gradient only when its token occurs, while decoupled decay shrinks every row at
    # every step, so rare tokens would fade for no reason in the data.
    return parameter.ndim < 2 or id(parameter) in lookup_tables


def parameter_groups(
    model: nn.Module,
    tower_learning_rate: float,
    new_modules_learning_rate: float,
    weight_decay: float,
    base_model_prefix: str = "",
) -> list[dict]:
    """
    AdamW parameter groups: (CLIP towers | new modules) x (decay | no decay).

    Args:
        model (`nn.Module`): A `KnowledgeCLIPModel`, or a model holding one under `base_model_prefix` (not wrapped).
        tower_learning_rate (`float`): Learning rate of the CLIP towers, projections and `logit_scale` (paper: 1e-5).
        new_modules_learning_rate (`float`): Learning rate of the fusion encoder and heads (paper: 1e-3).
        weight_decay (`float`): Decay of the weight matrices (see `_no_weight_decay` for what is exempt).
        base_model_prefix (`str`, *optional*, defaults to `""`): Where the `KnowledgeCLIPModel` sits in `model`
            (`"knowledge_clip."` in a task model); every parameter outside it (task heads, a task token) is new.

    Returns:
        `list[dict]`: Non-empty groups with `params`, `lr`, `weight_decay` and a `name`.
    """
    groups = {}
    lookup_tables = _lookup_table_parameters(model)
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        in_base = name.startswith(base_model_prefix)
        is_new = not in_base or name.removeprefix(base_model_prefix).startswith(NEW_MODULE_PREFIXES)
        part = "new_modules" if is_new else "towers"
        decay = "no_decay" if _no_weight_decay(parameter, lookup_tables) else "decay"
        group = groups.setdefault(
            (part, decay),
            {
                "name": f"{part}/{decay}",
                "params": [],
                "lr": new_modules_learning_rate if part == "new_modules" else tower_learning_rate,
                "weight_decay": 0.0 if decay == "no_decay" else weight_decay,
            },
        )
        group["params"].append(parameter)
    return list(groups.values())


def cosine_schedule_with_warmup(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """
    Linear warm-up from 0 to each group's learning rate over `warmup_steps`, then cosine decay to 0 at `total_steps`.

    Args:
        optimizer (`torch.optim.Optimizer`): The optimizer; every group follows the same shape.
        warmup_steps (`int`): Warm-up length in optimiser steps.
        total_steps (`int`): Run length in optimiser steps.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.no_grad()
def clamp_logit_scale(model: KnowledgeCLIPModel) -> None:
    """Clamps `logit_scale` to [0, ln 100] after each step, as CLIP does, so the temperature never drops below 0.01."""
    model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
