"""The report's CNN, kept exactly as it was: 688,586 parameters, log-softmax output."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


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
        x = self.drop_2d(F.max_pool2d(F.leaky_relu(self.b1(self.c1(x)), 0.01), 2))  # 28 -> 14
        x = self.drop_2d(F.max_pool2d(F.leaky_relu(self.b2(self.c2(x)), 0.01), 2))  # 14 -> 7
        x = self.drop_2d(F.max_pool2d(F.leaky_relu(self.b3(self.c3(x)), 0.01), 2))  # 7 -> 3
        x = x.flatten(1)  # flatten(1), unlike the report's view(-1, ...), also accepts channels_last
        x = self.drop(F.leaky_relu(self.fc_1(x), 0.01))
        return F.log_softmax(self.fc_2(x), dim=1)

    def reset_parameters(self) -> None:
        """Re-initialise every layer, BatchNorm's running mean and variance included."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
