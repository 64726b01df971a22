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
