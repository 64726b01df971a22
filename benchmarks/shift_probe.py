"""Notebook 07's exercise 5, measured: the ankle boot shifted 6 pixels, and the same boot only cropped.

    python benchmarks/shift_probe.py    # about 3 minutes on a 2-core CPU; prints the numbers the solution quotes

Its output on the 2-core AVX2 machine: ``benchmarks/results/avx2/shift_probe.txt``.

The boot (the first test image) fills the image's whole width, so the exercise's shift to the right
also pushes the back of its shaft off the edge. To tell the shift from the crop, the probe also
scores the boot with the same 6 columns blackened where they are. The network: the fast recipe
cut to 2 epochs (the LR finder's pick), in float32. Block outputs are compared by the cosine
similarity of all their maps together: block 1's (14x14, after one pooling) with the original's
moved 3 columns to the right (6 pixels halved) and unmoved, block 3's (3x3) as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fmnist_lab import load_fashion_mnist, make_config, make_splits, normalize, pick_lr, run
from fmnist_lab.interpretability import block_outputs

SHIFT = 6


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def main() -> None:
    data = load_fashion_mnist()
    config, model = pick_lr(make_config("fast", epochs=2, bf16=False), data, log=lambda line: None)
    trained = run(config, data, progress=False, log=lambda line: None, model=model)
    splits = make_splits(data, trained.config)  # the statistics training normalised with
    model, mean, std = trained.model.eval(), splits.mean, splits.std
    print(f"fast recipe, 2 epochs, float32: best validation accuracy {100 * max(trained.history.val_accuracy):.2f}%")

    boot = data.test_images[0]
    shifted = torch.zeros_like(boot)
    shifted[:, SHIFT:] = boot[:, :-SHIFT]
    cropped = boot.clone()
    cropped[:, -SHIFT:] = 0  # the columns the shift pushes off the edge, blackened in place
    inked, cut = int((boot > 0).sum()), int((boot[:, -SHIFT:] > 0).sum())
    print(f"the boot's inked pixels: {inked}; in the {SHIFT} columns the shift pushes off: {cut} ({cut / inked:.0%})")

    classes = data.classes
    for name, image in (("original", boot), ("shifted", shifted), ("cropped only", cropped)):
        with torch.no_grad():
            probabilities = model(normalize(image[None], mean, std)).exp()[0]
        top = probabilities.topk(3)
        said = ", ".join(f"{classes[i]} {p:.1%}" for p, i in zip(top.values.tolist(), top.indices.tolist()))
        print(f"{name:<13} {said}")

    before = block_outputs(model, normalize(boot[None], mean, std))
    after = block_outputs(model, normalize(shifted[None], mean, std))
    moved = SHIFT // 2
    print(
        f"block 1, shifted against the original moved {moved} columns: "
        f"{cosine(after['block 1'][..., moved:], before['block 1'][..., :-moved]):.2f}; unmoved: "
        f"{cosine(after['block 1'], before['block 1']):.2f}"
    )
    print(f"block 3, shifted against the original: {cosine(after['block 3'], before['block 3']):.2f}")


if __name__ == "__main__":
    main()
