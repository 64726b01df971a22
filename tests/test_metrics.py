import torch

from fmnist_lab.metrics import confusion_matrix, most_confident_mistakes, most_confused_pairs, per_class_accuracy


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    cm = confusion_matrix(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 0]), num_classes=4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [2, 0, 1, 0], [0, 0, 0, 0]]
    assert per_class_accuracy(cm).tolist() == [0.5, 1.0, 1 / 3, 0.0]  # a class without images counts 0, not NaN


def test_most_confused_pairs_skip_the_diagonal_and_keep_the_direction():
    cm = torch.tensor([[50, 1, 3], [2, 60, 0], [7, 4, 40]])
    assert most_confused_pairs(cm, k=3) == [(2, 0, 7), (2, 1, 4), (0, 2, 3)]


def test_most_confident_mistakes_are_wrong_and_sorted_by_confidence():
    targets = torch.tensor([0, 1, 2, 0])
    probabilities = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.0, 0.4, 0.6], [0.05, 0.95, 0.0]])
    # the mistakes: image 1 (said class 0 with 0.8), image 3 (class 1 with 0.95): the later one first
    assert most_confident_mistakes(targets, probabilities, k=5).tolist() == [3, 1]
