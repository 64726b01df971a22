import torch

from fmnist_lab.model import Net, count_parameters


def test_parameter_count_and_layer_names_match_the_report():
    model = Net()
    assert count_parameters(model) == 688_586
    names = {name.split(".")[0] for name, _ in model.named_parameters()}
    assert names == {"c1", "b1", "c2", "b2", "c3", "b3", "fc_1", "fc_2"}


def test_output_is_log_probabilities_for_ten_classes():
    model = Net().eval()
    out = model(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)


def test_channels_last_input_gives_the_same_output():
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(3, 1, 28, 28)
    expected = model(x)
    model.to(memory_format=torch.channels_last)
    assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-5)


def test_reset_parameters_reinitialises_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = Net()
    model.train()
    model(torch.randn(8, 1, 28, 28) * 3 + 1)  # updates the BatchNorm running statistics
    with torch.no_grad():
        model.b2.weight.fill_(5.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not torch.equal(model.b1.running_mean, torch.zeros(32))
    model.reset_parameters()
    assert torch.equal(model.b1.running_mean, torch.zeros(32))
    assert torch.equal(model.b1.running_var, torch.ones(32))
    assert int(model.b1.num_batches_tracked) == 0
    assert torch.equal(model.b2.weight, torch.ones(64))
    for name in ("c1.weight", "c3.weight", "fc_1.weight", "fc_2.bias"):
        assert not torch.equal(model.state_dict()[name], before[name]), name
