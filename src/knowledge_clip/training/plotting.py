# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Training curves as a PNG (matplotlib, Agg: no display needed)."""

from collections.abc import Mapping, Sequence

__all__ = ["plot_training_curves"]


def plot_training_curves(
    train_history: Sequence[Mapping[str, float]], eval_history: Sequence[Mapping[str, float]], path: str
) -> None:
    """
    Draws every loss of the training log (one panel each) with the validation points on top, and saves it.

    Args:
        train_history (`list[dict]`): Log records with a `step` and `*loss` values.
        eval_history (`list[dict]`): Evaluation records with a `step` and `eval/*loss` values.
        path (`str`): The PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in dict.fromkeys(k for record in train_history for k in record) if name.endswith("loss")]
    columns = max(1, min(3, len(names)))
    rows = max(1, -(-len(names) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        points = [(record["step"], record[name]) for record in train_history if name in record]
        axis.plot(*zip(*points), label="train", linewidth=1.2)
        evaluated = [(record["step"], record[f"eval/{name}"]) for record in eval_history if f"eval/{name}" in record]
        if evaluated:
            axis.plot(*zip(*evaluated), "o-", label="validation", markersize=4)
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
