import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from fmnist_lab import Net
from fmnist_lab import explorer as explorer_module
from fmnist_lab.data import normalize
from fmnist_lab.explorer import feature_map_explorer
from fmnist_lab.interpretability import (
    BLOCKS,
    block_outputs,
    classifier_features,
    first_layer_responses,
    grad_cam,
    knn_accuracy,
    nearest_neighbours,
    occlusion,
    pca,
    rank_correlation,
    saliency,
    share_on_garment,
    top_activating,
    tsne,
)
from fmnist_lab.plots import (
    plot_attributions,
    plot_embedding,
    plot_feature_maps,
    plot_filters,
    plot_image_and_feature_maps,
    plot_neighbours,
    plot_top_activating,
    tile_maps,
)

from .conftest import make_images


def tiny_net() -> Net:
    torch.manual_seed(0)
    model = Net()
    # give BatchNorm some non-trivial statistics, so eval mode differs from train mode
    with torch.no_grad():
        for bn in (model.b1, model.b2, model.b3):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return model


def tiny_images(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % 10
    images = make_images(labels, seed)
    return images, labels


def hooks_left(model: Net) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_block_outputs_have_the_shapes_of_each_block_and_match_a_manual_forward():
    model = tiny_net()
    images, _ = tiny_images()
    x = normalize(images, 0.3, 0.3)
    outputs = block_outputs(model, x)
    assert list(outputs) == list(BLOCKS)
    assert [tuple(t.shape) for t in outputs.values()] == [(6, 32, 14, 14), (6, 64, 7, 7), (6, 128, 3, 3)]
    model.eval()
    with torch.no_grad():
        expected = x
        for name, conv, bn in zip(BLOCKS, (model.c1, model.c2, model.c3), (model.b1, model.b2, model.b3)):
            expected = F.max_pool2d(F.leaky_relu(bn(conv(expected)), 0.01), 2)
            torch.testing.assert_close(outputs[name], expected)


def test_hooks_are_removed_and_the_mode_restored_even_when_the_forward_fails():
    model = tiny_net().train()
    images, _ = tiny_images()
    block_outputs(model, normalize(images, 0.3, 0.3))
    first_layer_responses(model, normalize(images, 0.3, 0.3))
    classifier_features(model, normalize(images, 0.3, 0.3))
    assert hooks_left(model) == 0 and model.training
    with pytest.raises(RuntimeError):
        block_outputs(model, torch.zeros(2, 3, 28, 28))  # three channels: c1 refuses them
    assert hooks_left(model) == 0 and model.training


def test_first_layer_responses_are_c1_then_batchnorm():
    model = tiny_net()
    x = normalize(tiny_images()[0], 0.3, 0.3)
    responses = first_layer_responses(model, x)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(responses, model.b1(model.c1(x)))


def test_classifier_features_are_what_fc_2_reads_in_any_batch_size():
    model = tiny_net()
    x = normalize(tiny_images(7)[0], 0.3, 0.3)
    features = classifier_features(model, x, batch_size=3)  # batches of 3, 3 and 1
    assert features.shape == (7, 512)
    model.eval()
    with torch.no_grad():
        blocks = block_outputs(model, x)["block 3"]
        expected = F.leaky_relu(model.fc_1(blocks.flatten(1)), 0.01)
        torch.testing.assert_close(features, expected)
        torch.testing.assert_close(model.fc_2(features).log_softmax(1), model(x))


def test_top_activating_finds_each_filters_strongest_images_and_places():
    model = tiny_net()
    x = normalize(tiny_images(12)[0], 0.3, 0.3)
    top = top_activating(model, x, k=4, batch_size=5)
    assert top.images.shape == top.rows.shape == top.cols.shape == top.values.shape == (32, 4)
    responses = first_layer_responses(model, x)
    peaks = responses.flatten(2).max(2).values  # (12, 32)
    for f in range(32):
        expected = peaks[:, f].sort(descending=True).values[:4]
        torch.testing.assert_close(top.values[f], expected)
        for j in range(4):
            i, r, c = top.images[f, j], top.rows[f, j], top.cols[f, j]
            assert responses[i, f, r, c] == top.values[f, j]
    with pytest.raises(ValueError, match="k must be between 1 and the number of images"):
        top_activating(model, x, k=13)


def test_saliency_is_the_absolute_gradient_of_the_targets_log_probability():
    model = tiny_net()
    x = normalize(tiny_images(3)[0], 0.3, 0.3)
    target = torch.tensor([1, 5, 9])
    maps = saliency(model, x, target)
    assert maps.shape == (3, 28, 28) and (maps >= 0).all()
    model.eval()
    x_grad = x.clone().requires_grad_(True)
    model(x_grad)[torch.arange(3), target].sum().backward()
    torch.testing.assert_close(maps, x_grad.grad.abs().squeeze(1))
    assert hooks_left(model) == 0


def test_grad_cam_weights_block_3s_activated_maps_by_their_mean_gradient():
    model = tiny_net().train()
    x = normalize(tiny_images(3)[0], 0.3, 0.3)
    maps = grad_cam(model, x, 9)  # one class for every image
    assert maps.shape == (3, 28, 28) and (maps >= 0).all() and maps.sum() > 0
    assert hooks_left(model) == 0 and model.training
    model.eval()
    with recording_b3(model) as outputs:
        log_probabilities = model(x)
    # block 3 after its LeakyReLU, as a leaf, and the rest of Net.forward from there (eval mode: no dropout)
    activated = F.leaky_relu(outputs[0], 0.01).detach().requires_grad_(True)
    out = F.log_softmax(model.fc_2(F.leaky_relu(model.fc_1(F.max_pool2d(activated, 2).flatten(1)), 0.01)), dim=1)
    gradients = torch.autograd.grad(out[:, 9].sum(), activated)[0]
    cam = F.relu((gradients.mean((2, 3), keepdim=True) * activated).sum(1, keepdim=True))
    expected = F.interpolate(cam, (28, 28), mode="bilinear").squeeze(1)
    torch.testing.assert_close(maps, expected.detach())
    # not the maps before the activation: there BatchNorm's negative outputs would count at full weight
    before = F.relu(
        (torch.autograd.grad(log_probabilities[:, 9].sum(), outputs[0])[0].mean((2, 3), keepdim=True) * outputs[0]).sum(
            1, keepdim=True
        )
    )
    assert not torch.allclose(maps, F.interpolate(before, (28, 28), mode="bilinear").squeeze(1).detach())


class recording_b3:
    """Keep b3's output in the graph (the package's recorder detaches it)."""

    def __init__(self, model: Net) -> None:
        self.model, self.acts = model, []

    def __enter__(self) -> list:
        self.handle = self.model.b3.register_forward_hook(lambda m, a, o: self.acts.append(o))
        return self.acts

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def test_occlusion_averages_the_drop_over_the_patches_covering_each_pixel():
    model = tiny_net()
    x = normalize(tiny_images(2)[0], 0.3, 0.3)
    target = torch.tensor([3, 7])
    maps = occlusion(model, x, target, background=-1.0, window=8, stride=4)
    assert maps.shape == (2, 28, 28) and hooks_left(model) == 0
    model.eval()
    total, count = torch.zeros(2, 28, 28), torch.zeros(28, 28)
    with torch.no_grad():
        before = model(x)[torch.arange(2), target]
        for top in range(0, 21, 4):  # overlapping windows at 0, 4, ..., 20
            for left in range(0, 21, 4):
                covered = x.clone()
                covered[:, :, top : top + 8, left : left + 8] = -1.0
                drop = before - model(covered)[torch.arange(2), target]
                total[:, top : top + 8, left : left + 8] += drop[:, None, None]
                count[top : top + 8, left : left + 8] += 1
    torch.testing.assert_close(maps, total / count)
    with pytest.raises(ValueError, match="stride must be between 1 and the window"):
        occlusion(model, x, target, background=-1.0, window=4, stride=8)


def test_share_on_garment_counts_positive_attribution_on_non_black_pixels():
    images = torch.zeros(2, 2, 2, dtype=torch.uint8)
    images[:, 0, 0] = 200  # the garment is the top-left pixel
    maps = torch.tensor([[[3.0, 1.0], [0.0, -5.0]], [[0.0, 0.0], [0.0, 0.0]]])
    # a map without positive attribution has no share: it counted as 0 and pulled the notebook's means down
    # (helper 100)
    torch.testing.assert_close(share_on_garment(maps, images), torch.tensor([0.75, torch.nan]), equal_nan=True)


def test_rank_correlation_agrees_with_scipy_including_ties():
    from scipy.stats import spearmanr

    a = torch.rand(2, 5, 5)
    torch.testing.assert_close(rank_correlation(a, a * 3 + 1), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(rank_correlation(a, -a), -torch.ones(2, dtype=torch.float64))
    b = torch.rand(2, 5, 5).round(decimals=1)  # many ties, as in maps clipped at zero
    b[:, :2] = 0
    expected = [spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(2)]
    torch.testing.assert_close(rank_correlation(a, b), torch.tensor(expected, dtype=torch.float64))


def test_pca_finds_the_direction_of_largest_variance():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(200, 1, generator=g)
    direction = torch.tensor([[3.0, 4.0, 0.0]]) / 5
    points = t * direction * 10 + 0.01 * torch.randn(200, 3, generator=g) + 7  # a line, offset from the origin
    projected = pca(points, 2)
    assert projected.shape == (200, 2)
    assert projected[:, 0].std() > 100 * projected[:, 1].std()
    torch.testing.assert_close(projected[:, 0].abs(), (t.squeeze(1) - t.mean()).abs() * 10, atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="dims must be between 1 and 3"):
        pca(points, 4)


def test_tsne_keeps_separate_groups_apart():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 2
    features = torch.randn(40, 20, generator=g) + 20 * labels[:, None].float()
    points = tsne(features)
    assert points.shape == (40, 2)
    assert knn_accuracy(points, labels, k=3) == 1.0


def test_nearest_neighbours_in_order_without_the_query():
    points = torch.tensor([[0.0, 0.0], [6.0, 0.0], [1.0, 0.0], [0.0, -2.0], [4.0, 3.0]])
    assert nearest_neighbours(points, 0, k=3).tolist() == [2, 3, 4]  # distances 1, 2, 5 (and 6)
    assert nearest_neighbours(points, 4, k=3).tolist() == [1, 2, 0]  # 3.6, 4.2, 5: by distance, not by index
    with pytest.raises(ValueError, match="k must be between 1 and 4"):
        nearest_neighbours(points, 0, k=5)


def test_knn_accuracy_counts_leave_one_out_votes():
    line = torch.arange(10.0)[:, None]
    assert knn_accuracy(line, torch.tensor([0] * 5 + [1] * 5), k=1) == 1.0
    assert knn_accuracy(line, torch.tensor([0, 1] * 5), k=1) == 0.0  # every neighbour has the other label
    with pytest.raises(ValueError, match="k must be between 1 and 9 .the other points., got 10"):
        knn_accuracy(line, torch.tensor([0] * 10), k=10)


def test_knn_accuracy_votes_among_k_neighbours():
    g = torch.Generator().manual_seed(0)
    points, labels = torch.randn(30, 2, generator=g), torch.randint(0, 3, (30,), generator=g)

    def by_loops(k):  # each point's k nearest others vote; a tied vote goes to the smallest label
        right = 0
        for i in range(len(points)):
            others = sorted((float((points[i] - points[j]).norm()), j) for j in range(len(points)) if j != i)
            votes = [int(labels[j]) for _, j in others[:k]]
            right += max(range(3), key=lambda label: (votes.count(label), -label)) == int(labels[i])
        return right / len(points)

    assert by_loops(1) != by_loops(5)  # the case tells k apart
    for k in (1, 3, 5):
        assert knn_accuracy(points, labels, k=k) == pytest.approx(by_loops(k))


def test_plots_draw_what_they_are_given():
    model = tiny_net()
    images, labels = tiny_images(10)
    x = normalize(images, 0.3, 0.3)
    fig = plot_filters(model.c1.weight)
    assert len([ax for ax in fig.axes if ax.images]) == 32 and fig.axes[-1].get_ylabel() == "weight"  # colour bar
    top = top_activating(model, x, k=3)
    assert len(plot_top_activating(images, model.c1.weight, top, [0, 5]).axes) == 2 * 4
    maps = block_outputs(model, x)["block 2"][0]
    (grid,) = [ax.images[0] for ax in plot_feature_maps(maps).axes if ax.images]  # the 64 maps, tiled into one image
    assert torch.allclose(torch.from_numpy(grid.get_array().filled(float("nan"))), tile_maps(maps, 16), equal_nan=True)
    assert grid.get_clim() == pytest.approx((float(maps.min()), float(maps.flatten().quantile(0.99))))  # one scale
    fig = plot_image_and_feature_maps(images[0], maps, "title")
    assert sum(bool(ax.images) for ax in fig.axes) == 2  # the image, the grid
    maps = {
        "saliency": saliency(model, x[:2], 1),
        "Grad-CAM": grad_cam(model, x[:2], 1),
        "occlusion": occlusion(model, x[:2], 1, background=-1.0),
    }
    fig = plot_attributions(images[:2], maps, ["a", "b"])
    assert len(fig.axes) == 2 * 4
    fig = plot_embedding(torch.randn(10, 2), labels, focus=(0, 2))
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["T-shirt/top", "Pullover"]
    fig = plot_neighbours(images, labels, 0, torch.tensor([3, 4]), predicted=6)
    assert [ax.get_title() for ax in fig.axes] == ["true: T-shirt/top\nsaid: Shirt", "#1: Dress", "#2: Coat"]
    plt.close("all")


def test_feature_map_explorer_redraws_for_each_image_and_block(monkeypatch):
    shown = []
    monkeypatch.setattr(explorer_module, "show", shown.append)
    model = tiny_net()
    images, labels = tiny_images(5)
    box = feature_map_explorer(model, images, labels, 0.3, 0.3)
    (slider, block), status = box.children[0].children, box.children[1]

    def maps_drawn(i: int, name: str) -> bool:
        """Whether the figure shown last holds image ``i``'s maps of block ``name``, tiled as plot_feature_maps does."""
        (drawn,) = [ax.images[0].get_array() for ax in shown[-1].axes[1:] if ax.images]
        maps = block_outputs(model, normalize(images[i : i + 1], 0.3, 0.3))[name][0]
        expected = tile_maps(maps, 8 if len(maps) <= 32 else 16)
        return torch.allclose(torch.from_numpy(drawn.filled(float("nan"))), expected, equal_nan=True)

    def input_drawn() -> torch.Tensor:
        return torch.from_numpy(shown[-1].axes[0].images[0].get_array().data)

    assert status.value.startswith("image #0 (T-shirt/top), block 1: 32 maps of 14x14") and maps_drawn(0, "block 1")
    assert torch.equal(input_drawn(), images[0])
    slider.value = 3
    assert status.value.startswith("image #3 (Dress), block 1") and torch.equal(input_drawn(), images[3])
    block.value = "block 3"
    assert status.value.startswith("image #3 (Dress), block 3: 128 maps of 3x3") and maps_drawn(3, "block 3")
    assert len(shown) == 3 and hooks_left(model) == 0
    plt.close("all")
