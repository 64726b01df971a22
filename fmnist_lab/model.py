"""The report's CNN, kept exactly as it was: 688,586 parameters, log-softmax output."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NEGATIVE_SLOPE = 0.01  # LeakyReLU's slope below zero, as in the report


class Net(nn.Module):
    """3 x [conv 3x3 -> BatchNorm -> LeakyReLU -> max-pool 2 -> Dropout2d] -> 512 -> 10.

    Layer names (c1/b1, c2/b2, c3/b3, fc_1, fc_2) match the report, so its weights and
    ours are interchangeable.
    """

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.b1 = nn.BatchNorm2d(32)
        self.c2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.b2 = nn.BatchNorm2d(64)
        self.c3 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
        self.b3 = nn.BatchNorm2d(128)
        self.drop_2d = nn.Dropout2d(p=0.25)
        self.fc_1 = nn.Linear(128 * 3 * 3, 512)
        self.drop = nn.Dropout(p=0.5)
        self.fc_2 = nn.Linear(512, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop_2d(F.max_pool2d(F.leaky_relu(self.b1(self.c1(x)), NEGATIVE_SLOPE), 2))  # 28 -> 14
        x = self.drop_2d(F.max_pool2d(F.leaky_relu(self.b2(self.c2(x)), NEGATIVE_SLOPE), 2))  # 14 -> 7
        x = self.drop_2d(F.max_pool2d(F.leaky_relu(self.b3(self.c3(x)), NEGATIVE_SLOPE), 2))  # 7 -> 3
        x = x.flatten(1)  # flatten(1), unlike the report's view(-1, ...), also accepts channels_last
        x = self.drop(F.leaky_relu(self.fc_1(x), NEGATIVE_SLOPE))
        return F.log_softmax(self.fc_2(x), dim=1)

    def reset_parameters(self, batchnorm: bool = True) -> None:
        """Re-initialise every layer, BatchNorm's scale, shift and running statistics included.

        ``batchnorm=False`` re-initialises only the conv and linear layers: the report says its method "resets the
        parameters of the fully connected and convolutional layers", and that it reset no others is our reading.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) or (batchnorm and isinstance(module, nn.BatchNorm2d)):
                module.reset_parameters()


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside the ``with`` block; the model's previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """The device the model's parameters are on."""
    return next(model.parameters()).device


def count_parameters(model: nn.Module) -> int:
    """The number of parameters (weights and biases; BatchNorm's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())


def layer_shapes(
    model: nn.Module, image: Tensor | None = None
) -> list[tuple[str, tuple[int, ...], tuple[int, ...], int]]:
    """(layer name, input shape, output shape, parameter count) for each layer call, in order.

    One image (default: zeros, 1x28x28) goes through ``model`` in eval mode, with a forward hook
    on every layer; shapes are per image (no batch dimension). Functional steps in ``forward``
    (LeakyReLU, max-pool, flatten) have no hooks: they show as the change between one row's
    output and the next row's input.
    """
    image = torch.zeros(1, 28, 28) if image is None else image
    rows = []

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            rows.append((name, tuple(inputs[0].shape[1:]), tuple(output.shape[1:]), count_parameters(module)))

        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in model.named_children()]
    try:
        with evaluating(model), torch.no_grad():
            model(image.unsqueeze(0).to(model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return rows
