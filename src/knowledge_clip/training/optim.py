# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The paper's optimisation: AdamW with two learning rates and decay groups, cosine schedule with linear warm-up."""

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

from ..modeling_knowledge_clip import KnowledgeCLIPModel

__all__ = ["clamp_logit_scale", "cosine_schedule_with_warmup", "decay_groups", "parameter_groups"]

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
    model: nn.Module, tower_learning_rate: float, new_modules_learning_rate: float, weight_decay: float
) -> list[dict]:
    """
    Pre-training's AdamW parameter groups: (CLIP towers | new modules) x (decay | no decay).

    Args:
        model (`nn.Module`): A `KnowledgeCLIPModel` (not wrapped).
        tower_learning_rate (`float`): Learning rate of the CLIP towers, projections and `logit_scale` (paper: 1e-5).
        new_modules_learning_rate (`float`): Learning rate of the fusion encoder and heads (paper: 1e-3).
        weight_decay (`float`): Decay of the weight matrices (see `_no_weight_decay` for what is exempt).

    Returns:
        `list[dict]`: Non-empty groups with `params`, `lr`, `weight_decay` and a `name` (`towers/decay`,
        `new_modules/no_decay`, ...).
    """
    return decay_groups(
        model,
        lambda name: name.startswith(NEW_MODULE_PREFIXES),
        {"towers": tower_learning_rate, "new_modules": new_modules_learning_rate},
        weight_decay,
    )


def decay_groups(
    model: nn.Module, is_new: Callable[[str], bool], learning_rates: Mapping[str, float], weight_decay: float
) -> list[dict]:
    """
    AdamW groups of the trainable parameters of `model`: (old part | new part) x (decay | no decay).

    Args:
        model (`nn.Module`): The model (not wrapped).
        is_new (`Callable[[str], bool]`): Whether the parameter of that name belongs to the new part.
        learning_rates (`Mapping[str, float]`): Two entries, the old part's name and rate first, then the new part's.
        weight_decay (`float`): Decay of the weight matrices (see `_no_weight_decay` for what is exempt).

    Returns:
        `list[dict]`: Non-empty groups with `params`, `lr`, `weight_decay` and a `name` (`<part>/decay` or
        `<part>/no_decay`).
    """
    (old_part, _), (new_part, _) = learning_rates.items()
    groups = {}
    lookup_tables = _lookup_table_parameters(model)
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        part = new_part if is_new(name) else old_part
        decay = "no_decay" if _no_weight_decay(parameter, lookup_tables) else "decay"
        group = groups.setdefault(
            (part, decay),
            {
                "name": f"{part}/{decay}",
                "params": [],
                "lr": learning_rates[part],
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
