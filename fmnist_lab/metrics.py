"""Metrics beyond accuracy: confusion matrix, per-class accuracy, the worst mistakes."""

from __future__ import annotations

import torch
from torch import Tensor


def confusion_matrix(targets: Tensor, predictions: Tensor, num_classes: int = 10) -> Tensor:
    """``cm[i, j]`` counts images of true class ``i`` predicted as class ``j``."""
    flat = targets.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(cm: Tensor) -> Tensor:
    """Recall of each class: the diagonal over the row sums."""
    return cm.diag().double() / cm.sum(1).clamp(min=1).double()


def most_confident_mistakes(targets: Tensor, probabilities: Tensor, k: int = 12) -> Tensor:
    """Indices of the ``k`` wrong predictions made with the highest probability."""
    confidence, predictions = probabilities.max(1)
    wrong = (predictions != targets).nonzero().flatten()
    order = confidence[wrong].argsort(descending=True)
    return wrong[order[:k]]


def most_confused_pairs(cm: Tensor, k: int = 5) -> list[tuple[int, int, int]]:
    """The ``k`` largest counts off the diagonal as (true class, predicted class, count), largest first."""
    off_diagonal = cm.clone()
    off_diagonal.fill_diagonal_(-1)  # below any count, so the diagonal is never picked
    order = off_diagonal.flatten().argsort(descending=True, stable=True)[:k]
    return [(*divmod(int(i), len(cm)), int(cm.flatten()[i])) for i in order]
