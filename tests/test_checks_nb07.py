"""Notebook 07's checks (a saliency map, nearest neighbours): right answers of every kind pass, each wrong one
gets its sentence (issue #24)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree, distance_matrix
from scipy.spatial.distance import cdist
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import KDTree, KNeighborsRegressor, NearestNeighbors

from fmnist_lab.exercises import nb07
from fmnist_lab.model import Net
from tests.checks_support import assert_right, assert_wrong

# q2: a saliency map


def gradient(model, image, target, of=lambda out: out, eval_mode=True):
    if eval_mode:
        model.eval()
    x = image[None].clone().requires_grad_(True)
    of(model(x))[0, target].backward()
    return x.grad[0, 0]


def by_autograd(model, image, target):
    x = image.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.eval()(x[None])[0, target], x)
    return grad[0].abs()


SALIENCY_RIGHT = {
    "backward": lambda model, image, target: gradient(model, image, target).abs(),
    "autograd.grad": lambda model, image, target: by_autograd(model, image, target),
    "(1, 28, 28)": lambda model, image, target: gradient(model, image, target).abs()[None],
    "NumPy": lambda model, image, target: gradient(model, image, target).abs().numpy(),
    "log_softmax of the log-probabilities": lambda model, image, target: gradient(
        model, image, target, of=lambda out: out.log_softmax(1)
    ).abs(),
}


def by_captum(model, image, target):
    from captum.attr import Saliency

    x = image[None].clone().requires_grad_(True)
    return Saliency(model.eval()).attribute(x, target=target, abs=True)[0, 0]


def by_captums_guided_backprop(model, image, target):
    # the network has no ReLU modules to guide, so this is the plain gradient: it used to pass
    from captum.attr import GuidedBackprop

    x = image[None].clone().requires_grad_(True)
    return GuidedBackprop(model.eval()).attribute(x, target=target)[0, 0].abs()


def gradient_of_the_image(model, image, target):
    model.eval()
    model(image)[0, target].backward()
    return image.grad[0].abs()


def grad_in_the_image_itself(model, image, target):
    model.eval()
    image.requires_grad_(True)
    model(image[None])[0, target].backward()
    return image.grad[0].abs()


def dropout_off_only(model, image, target):  # BatchNorm left in the mode the network came in
    for module in model.modules():
        if isinstance(module, (torch.nn.Dropout, torch.nn.Dropout2d)):
            module.eval()
    return gradient(model, image, target, eval_mode=False).abs()


def seeded_in_training_mode(model, image, target):
    torch.manual_seed(0)  # the same dropout every call: the map no longer changes from call to call
    return gradient(model, image, target, eval_mode=False).abs()


def under_no_grad(model, image, target):
    model.eval()
    x = image[None].clone().requires_grad_(True)
    with torch.no_grad():
        out = model(x)
    out[0, target].backward()
    return x.grad[0, 0].abs()


def of_the_score(model, image, target):
    model.eval()
    x = image[None].clone().requires_grad_(True)
    scores = []
    hook = model.fc_2.register_forward_hook(lambda module, inputs, output: scores.append(output))
    model(x)
    hook.remove()
    scores[0][0, target].backward()
    return x.grad[0, 0].abs()


def no_requires_grad(model, image, target):
    model.eval()
    x = image[None]
    model(x)[0, target].backward()
    return x.grad[0, 0].abs()


notebook_boot = torch.zeros(1, 28, 28)  # stands in for the notebook's `boot`, read as a global (helper 102)
notebook_features = torch.zeros(5, 2)  # and for its `features`

SALIENCY_WRONG = {
    "Captum's Saliency": (by_captum, "calls Captum's ready-made `Saliency`"),
    "Captum's GuidedBackprop": (by_captums_guided_backprop, "calls Captum's ready-made `GuidedBackprop`"),
    "signed": (
        lambda model, image, target: gradient(model, image, target),
        "your map has negative values: take the absolute value of the gradient",
    ),
    # the two below were told only "your map differs" (helper 115)
    "signed, of the loss -log p": (
        lambda model, image, target: gradient(model, image, target, of=torch.neg),
        "your map has negative values: take the absolute value of the gradient",
    ),
    "the image clipped in place": (
        lambda model, image, target: gradient(model, image.clamp_(min=-0.5), target).abs(),
        "`my_saliency` changed the image it was given: give the model a copy that records its gradient",
    ),
    "of the probability": (
        lambda model, image, target: gradient(model, image, target, of=torch.exp).abs(),
        "you took the gradient of the probability (the exp() of the output)",
    ),
    # another class used to be told "did you call model.eval() first?"
    "another class": (
        lambda model, image, target: gradient(model, image, (target + 1) % 10).abs(),
        "your map is the one of class 4, not of the target class 3",
    ),
    "training mode": (
        lambda model, image, target: gradient(model, image, target, eval_mode=False).abs(),
        "your map changes from call to call: call model.eval() first",
    ),
    # the two below, no randomness from call to call, were told only "your map differs" (helper 102)
    "dropout switched off, BatchNorm left in training mode": (
        dropout_off_only,
        "your map is right when the network comes in eval mode, but not from training mode",
    ),
    # told only "your map differs" (helper 115)
    "BatchNorm switched to training mode in the answer": (
        lambda model, image, target: dropout_off_only(model.train(), image, target),
        "your map is that of a network whose BatchNorm is in training mode",
    ),
    "training mode with a seed": (
        seeded_in_training_mode,
        "your map is right when the network comes in eval mode, but not from training mode",
    ),
    # the next two were told PyTorch's error, or "your map differs", alone (helper 102)
    "under torch.no_grad()": (
        under_no_grad,
        "the forward pass recorded no graph to backpropagate through: run it without torch.no_grad()",
    ),
    "the score's gradient": (of_the_score, "you took the gradient of the score, fc_2's output before log-softmax"),
    "the notebook's image": (
        lambda model, image, target: gradient(model, notebook_boot, target).abs(),
        "`my_saliency` uses the notebook's `notebook_boot`: compute the map of the `model`, `image` and `target`",
    ),
    # SmoothGrad's noise, in eval mode: once told only to call model.eval() (helper-85)
    "noise added to the image": (
        lambda model, image, target: gradient(model, image + 0.1 * torch.randn_like(image), target).abs(),
        "if you did, the randomness is your own (noise added to the image?)",
    ),
    "input times gradient": (
        lambda model, image, target: (gradient(model, image, target) * image[0]).abs(),
        "your map differs from |d log p(class 3) / d pixel|",
    ),
    "the lab's saliency": (
        lambda model, image, target: nb07.saliency(model, image[None], target)[0],
        "calls the lab's own `saliency` (fmnist_lab.interpretability.saliency)",
    ),
    # the three below were praised, or told with PyTorch's error alone (helper-93)
    "the gradient kept in the image itself": (
        grad_in_the_image_itself,
        "called a second time on the same image your map changed (twice as large when the gradient adds up)",
    ),
    "no requires_grad": (
        no_requires_grad,
        "a .grad is None when the tensor did not record its gradient: make the image you give the model record it",
    ),
    "no batch dimension": (
        lambda model, image, target: gradient_of_the_image(model, image.clone().requires_grad_(True), target),
        "the model takes a batch: give it the image with a batch dimension, (1, 1, 28, 28)",
    ),
}


@pytest.mark.parametrize("answer", SALIENCY_RIGHT.values(), ids=SALIENCY_RIGHT)
def test_saliency_right_answers_pass(answer):
    assert_right(nb07.q2, answer)


@pytest.mark.parametrize("answer, sentence", SALIENCY_WRONG.values(), ids=SALIENCY_WRONG)
def test_saliency_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb07.q2, answer, sentence)


def test_saliency_hands_the_answer_a_copy_of_the_notebooks_model():
    torch.manual_seed(0)
    model = Net()  # the notebook's model, in training mode

    def leaves_training_mode(net, image, target):
        result = gradient(net, image, target).abs()
        net.train()  # an answer that ends in train() used to leave the notebook's model in training mode
        return result

    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert "; on the pullover too." in assert_right(nb07.q2, leaves_training_mode, model, torch.randn(1, 28, 28), 2)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "image, target, sentence",
    [
        (
            torch.zeros(1, 1, 28, 28),
            9,
            "one normalised image of shape (1, 28, 28) after the model, in floats and without a batch dimension",
        ),
        (torch.zeros(1, 28, 28, dtype=torch.uint8), 9, "in floats and without a batch dimension (boot[0], say)"),
        (torch.zeros(1, 28, 28), 10, "the target class (an int from 0 to 9) after the image, but it got int 10"),
    ],
    ids=["a batch of one", "bytes", "target 10"],
)
def test_saliency_handed_other_data_names_what_it_expects(image, target, sentence):
    # each used to raise a TypeError, or to be blamed on the student's function
    message = assert_wrong(nb07.q2, SALIENCY_RIGHT["backward"], sentence, Net(), image, target)
    assert message.startswith("Not yet: check() expects") and "hint()" not in message


def test_saliency_without_its_target_is_told_to_give_it():
    image, answer = torch.zeros(1, 28, 28), SALIENCY_RIGHT["backward"]
    assert_wrong(nb07.q2, answer, "expects the target class (an int from 0 to 9) after the image", Net(), image)
    assert_wrong(nb07.q2, answer, "check() got None for the notebook's `target`: give the value", Net(), image, None)


def test_saliency_takes_the_target_as_a_one_element_tensor():
    target = torch.tensor(9)
    assert "on the ankle boot too" in assert_right(
        nb07.q2, SALIENCY_RIGHT["backward"], Net(), torch.zeros(1, 28, 28), target
    )


# q3: nearest neighbours


def my_nearest(features, query, k):
    distances = (features - features[query]).norm(dim=1)
    distances[query] = float("inf")
    return distances.argsort()[:k]


def my_nearest_distances(features, query):
    distances = (features - features[query]).norm(dim=1)
    distances[query] = float("inf")
    return distances


def by_numpy(features, query, k):
    x = features.numpy()
    order = np.argsort(((x - x[query]) ** 2).sum(1), kind="stable")  # squared distances: the same order
    return [int(i) for i in order if i != query][:k]


def by_scipys_distances(features, query, k, distances=pairwise_distances):
    # SciPy's and scikit-learn's distance functions measure; the answer still finds the nearest itself
    scipys = cdist(features[query : query + 1].numpy(), features.numpy())[0]
    theirs = distances(features[query : query + 1].numpy(), features.numpy())[0]  # a library function as a default
    scipys[query] = theirs[query] = np.inf
    assert np.allclose(scipys, theirs)
    return np.argsort(scipys, kind="stable")[:k]


NEAREST_RIGHT = {
    "argsort": my_nearest,
    # refused once: a prefix took SciPy's distance functions for its neighbour searches, and the library's
    # own code behind a default argument was read as the answer's
    "SciPy's cdist and scikit-learn's pairwise_distances": by_scipys_distances,
    "SciPy's distance_matrix": lambda f, q, k: np.argsort(
        np.where(np.arange(len(f)) == q, np.inf, distance_matrix(f[q : q + 1].numpy(), f.numpy())[0]), kind="stable"
    )[:k],
    "topk": lambda f, q, k: (
        torch.cdist(f, f[q : q + 1])[:, 0].index_fill(0, torch.tensor(q), float("inf")).topk(k, largest=False).indices
    ),
    "NumPy, squared distances": by_numpy,
    "sorted in Python": lambda f, q, k: sorted(
        (i for i in range(len(f)) if i != q), key=lambda i: float((f[i] - f[q]).norm())
    )[:k],
    "int32 tensor": lambda f, q, k: my_nearest(f, q, k).int(),
    "ties broken the other way (the later point first)": lambda f, q, k: sorted(
        (i for i in range(len(f)) if i != q), key=lambda i: (float((f[i] - f[q]).norm()), -i)
    )[:k],
}


def tied_point_twice(features, query, k):
    distances = (features - features[query]).norm(dim=1)
    distances[query] = float("inf")
    order = distances.argsort(stable=True)[:k]
    if distances[order[0]] == distances[order[1]]:
        order[1] = order[0]
    return order


def skip_the_first(features, query, k):
    return (features - features[query]).norm(dim=1).argsort(stable=True)[1 : k + 1]


NEAREST_WRONG = {
    # distances returned: read as indices, they were told "holds the query itself" (helper-85)
    "the distances, the query's 0 included": (
        lambda f, q, k: (f - f[q]).norm(dim=1).sort().values[:k],
        "you returned the 3 smallest distances, not the indices of their points",
    ),
    "the distances, the query's 0 left out": (
        lambda f, q, k: (f - f[q]).norm(dim=1).sort().values[1 : k + 1],
        "you returned the 3 smallest distances, not the indices of their points",
    ),
    "positions by / instead of //": (
        lambda f, q, k: my_nearest(f, q, k) / 2,
        "`my_nearest` should return whole-number indices, but on five points",
    ),
    "the query kept": (
        lambda f, q, k: (f - f[q]).norm(dim=1).argsort()[:k],
        "your list holds the query itself (index 2): leave it out",
    ),
    # the twin point used to sort after the query, so dropping the first sorted point passed
    "skip the first": (
        skip_the_first,
        (
            "you dropped the first of the sorted points, but that is not always the "
            "query: here another point sits at distance 0 too"
        ),
    ),
    "farthest": (
        lambda f, q, k: (f - f[q]).norm(dim=1).argsort(descending=True)[:k],
        "you returned the farthest points: take the smallest distances",
    ),
    # the query's distance set to infinity, then topk's largest: once told to leave the query out
    "farthest, the query's distance infinite": (
        lambda f, q, k: (f - f[q]).norm(dim=1).index_fill(0, torch.tensor([q]), float("inf")).topk(k).indices,
        "you returned the farthest points: take the smallest distances",
    ),
    "unordered": (
        lambda f, q, k: my_nearest(f, q, k).flip(0),
        ("you found the right neighbours [0, 1, 3] but in the wrong order: nearest first"),
    ),
    "L1": (
        lambda f, q, k: (f - f[q]).abs().sum(1).index_fill(0, torch.tensor(q), float("inf")).argsort()[:k],
        "you ranked the points by the sum of absolute differences (L1)",
    ),
    "one too many": (lambda f, q, k: my_nearest(f, q, k + 1), "`my_nearest` should return shape (3,)"),
    "scikit-learn's NearestNeighbors": (
        lambda f, q, k: torch.tensor(
            [
                int(i)
                for i in NearestNeighbors(n_neighbors=k + 1).fit(f).kneighbors(f[q : q + 1], return_distance=False)[0]
                if i != q
            ][:k]
        ),
        "calls scikit-learn's ready-made `NearestNeighbors`",
    ),
    # other ready-made neighbour searches used to pass
    "scikit-learn's KDTree": (
        lambda f, q, k: torch.from_numpy(KDTree(f.numpy()).query(f[q : q + 1].numpy(), k=k + 1)[1][0][1:]),
        "calls scikit-learn's ready-made `KDTree`",
    ),
    "scikit-learn's KNeighborsRegressor": (
        lambda f, q, k: torch.from_numpy(
            KNeighborsRegressor(n_neighbors=k + 1)
            .fit(f.numpy(), np.zeros(len(f)))
            .kneighbors(f[q : q + 1].numpy())[1][0]
        )[1:],
        "calls scikit-learn's ready-made `KNeighborsRegressor`",
    ),
    "SciPy's cKDTree": (
        lambda f, q, k: torch.from_numpy(cKDTree(f.numpy()).query(f[q].numpy(), k=k + 1)[1][1:]),
        "calls SciPy's ready-made `cKDTree`",
    ),
    "the lab's nearest_neighbours": (
        lambda f, q, k: nb07.nearest_neighbours(f, q, k),
        "calls the lab's own `nearest_neighbours`",
    ),
    # the query's row taken out before ranking, the later indices not moved back: once told "holds the query"
    "indices of the rows left": (
        lambda f, q, k: torch.cat([f[:q], f[q + 1 :]]).sub(f[q]).norm(dim=1).argsort(stable=True)[:k],
        "the indices after the query's (2) are one too small: with the query's row taken out before ranking",
    ),
    # both once told "your list holds the query itself" (helper 102)
    "indices of the rows left, all moved by one": (
        lambda f, q, k: torch.cat([f[:q], f[q + 1 :]]).sub(f[q]).norm(dim=1).argsort(stable=True)[:k] + 1,
        "the indices before the query's (2) are one too large: with the query's row taken out before ranking",
    ),
    "the notebook's features": (
        lambda f, q, k: my_nearest(notebook_features, q, k),
        "`my_nearest` uses the notebook's `notebook_features`: rank the `features` it is given",
    ),
    "counted from 1": (lambda f, q, k: my_nearest(f, q, k) + 1, "every index is one too large: rows count from 0"),
    "topk's values and indices": (
        lambda f, q, k: tuple(my_nearest_distances(f, q).topk(k, largest=False)),
        "you returned a pair of 3-element tensors, as sort and topk give (values, indices)",
    ),
    "the features changed": (
        lambda f, q, k: my_nearest(f.sub_(f[q].clone()), q, k),
        "changed the input it was given: compute the distances into a new tensor",
    ),
    # right indices, but `val_labels[neighbours]` cannot index with them; nb08.q1 refused its floats (helper 115)
    "a float tensor": (
        lambda f, q, k: my_nearest(f, q, k).float(),
        "your neighbours are right but come as floats (a torch.float32 tensor of shape (3,)): indices are whole",
    ),
    "a NumPy float array": (
        lambda f, q, k: my_nearest(f, q, k).double().numpy(),
        "your neighbours are right but come as floats (",
    ),
    "a list of floats": (
        lambda f, q, k: [float(i) for i in my_nearest(f, q, k)],
        "your neighbours are right but come as floats (",
    ),
    "a list of one-number float tensors": (
        lambda f, q, k: list(my_nearest(f, q, k).float()),
        "your neighbours are right but come as floats (",
    ),
    # right on every case without ties; on the tied one its distances are right too, but one point comes twice
    "a tied point twice": (
        tied_point_twice,
        "on five points on a line (0, 1, -1, 2, -2), the point at 0, k=3 (ties), the 3 nearest points are",
    ),
}


@pytest.mark.parametrize("answer", NEAREST_RIGHT.values(), ids=NEAREST_RIGHT)
def test_nearest_right_answers_pass(answer):
    assert_right(nb07.q3, answer)


@pytest.mark.parametrize("answer, sentence", NEAREST_WRONG.values(), ids=NEAREST_WRONG)
def test_nearest_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb07.q3, answer, sentence)


def test_nearest_handed_no_query_names_what_it_expects():
    # the query left out used to be blamed on the student's function
    message = assert_wrong(
        nb07.q3, my_nearest, "the query's index (an int from 0 to 49) after the features", torch.randn(50, 4)
    )
    assert "but it got NoneType None" in message and "hint()" not in message


def test_the_twin_case_is_built_so_that_skipping_the_first_keeps_the_query():
    points, query, k = nb07._neighbour_cases(None)[
        "2-D points where an earlier point sits exactly on the query (point 3), k=2"
    ]
    assert query in skip_the_first(points, query, k).tolist()


# the grader's hidden cases


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_saliency_on_hidden_cases(seed):
    assert_right(nb07.q2, SALIENCY_RIGHT["backward"], seed=seed)
    assert_wrong(nb07.q2, SALIENCY_WRONG["signed"][0], "", seed=seed)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_nearest_on_hidden_cases(seed):
    for answer in NEAREST_RIGHT.values():
        assert_right(nb07.q3, answer, seed=seed)
    for answer, _ in NEAREST_WRONG.values():
        assert_wrong(nb07.q3, answer, "", seed=seed)


def test_the_query_alone_for_one_neighbour_is_told_to_leave_the_query_out(monkeypatch):
    # a hidden case may ask for k = 1; [query] then also looks like "the query in front of the farthest"
    points = torch.tensor([[0.0], [1.0], [3.0]])
    monkeypatch.setattr(nb07, "_neighbour_cases", lambda generator: {"3 points on a line, k = 1": (points, 0, 1)})
    assert_wrong(nb07.q3, lambda f, q, k: torch.tensor([q]), "your list holds the query itself (index 0)")
