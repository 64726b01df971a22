"""``fmnist-lab`` (or ``python -m fmnist_lab``): data, train, evaluate, lr-find, predict."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .config import RECIPES, cli_settings, make_config
from .errors import ConfigError, LabError

DEFAULT_OUT = "runs/latest"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def flag_type(setting: dataclasses.Field) -> Callable[[str], Any]:
    """int, float or str, from the setting's annotation ("int | None" -> int); TrainConfig checks the value."""
    return {"int": int, "float": float, "str": str}[str(setting.type).split(" |")[0]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmnist-lab", description="Fashion-MNIST teaching lab: the report's CNN, done properly.")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data-dir", help="folder with the dataset files (default: $FMNIST_DATA_DIR or the project's data/)")
        sub.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")

    data = commands.add_parser("data", help="find, stage and verify the dataset; print where it came from")
    data.add_argument("--data-dir", help="folder with the dataset files")

    train = commands.add_parser("train", help="train the network, write best.pt, last.pt and metrics.json")
    train.add_argument("--data-dir", help="folder with the dataset files (default: $FMNIST_DATA_DIR or the project's data/)")
    train.add_argument("--recipe", choices=list(RECIPES),
                       help="default: the lab's recipe; fast: a few minutes on a CPU; report: the report's own")
    # one flag per TrainConfig setting; unset flags keep the recipe's value
    for f in cli_settings():
        if str(f.type) == "bool":
            train.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None,
                               help=f.metadata["help"])
        else:
            train.add_argument(flag(f.name), type=flag_type(f), default=None, help=f.metadata["help"])
    train.add_argument("--out", help=f"output folder (default: {DEFAULT_OUT})")
    train.add_argument("--overwrite", action="store_true", help="replace the run that the output folder holds")
    train.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR with its own settings")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--nproc", type=positive_int, metavar="N",
                       help="train on N processes with DistributedDataParallel, launched by torchrun (one per GPU "
                            "on CUDA; batch-size is the global batch)")
    evaluate = commands.add_parser("evaluate", help="test loss, accuracy and per-class accuracy of a checkpoint")
    common(evaluate)
    evaluate.add_argument("checkpoint")

    lr_find = commands.add_parser("lr-find", help="LR range test: print suggestions, save the plot")
    common(lr_find)
    lr_find.add_argument("--start-lr", type=positive_float, default=1e-6)
    lr_find.add_argument("--end-lr", type=positive_float, default=1.0)
    lr_find.add_argument("--steps", type=positive_int, default=200)
    lr_find.add_argument("--mode", choices=["exp", "linear"], default="exp")
    lr_find.add_argument("--batch-size", type=positive_int, default=256)
    lr_find.add_argument("--seed", type=int, default=0)
    lr_find.add_argument("--limit-train", type=positive_int, metavar="N")
    lr_find.add_argument("--plot", metavar="PNG", help="save the plot to this PNG file")

    predict = commands.add_parser("predict", help="top-3 classes for your own PNG/JPEG images")
    predict.add_argument("checkpoint")
    predict.add_argument("images", nargs="+")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `--nproc` hands on to torchrun
    # a `kill` from another terminal ends training like Ctrl-C: the message says how to resume
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return COMMANDS[args.command](args, parser)
    except ConfigError as err:
        print(f"fmnist-lab {args.command}: error: {flags_message(err)}", file=sys.stderr)
        return 1
    except LabError as err:
        print(f"fmnist-lab {args.command}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"fmnist-lab {args.command}: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fmnist-lab: interrupted", file=sys.stderr)
        return 130


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def flags_message(err: ConfigError) -> str:
    """The library names arguments (``lr=0``); the command line names flags (``--lr 0``)."""
    return "; ".join(f"{flag(name)} {value}: {rule}" for name, value, rule in err.problems)


def cmd_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .data import load_fashion_mnist, pixel_stats

    data = load_fashion_mnist(args.data_dir)
    print(f"train: {tuple(data.train_images.shape)} images, test: {tuple(data.test_images.shape)} images, "
          f"{len(data.classes)} classes")
    counts = data.train_labels.bincount(minlength=len(data.classes))
    for name, count in zip(data.classes, counts.tolist()):
        print(f"  {name:<12} {count:>6} training images")
    mean, std = pixel_stats(data.train_images)
    print(f"training pixels: mean {mean:.4f}, std {std:.4f}")
    return 0


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import distributed
    from .data import load_fashion_mnist
    from .experiment import RunFolder, run

    changes = {f.name: getattr(args, f.name) for f in cli_settings() if getattr(args, f.name) is not None}
    if args.resume:
        given = [flag(name) for name in changes] + [flag(name) for name in ("recipe", "out", "overwrite")
                                                     if getattr(args, name) not in (None, False)]
        if given:
            parser.error(f"--resume continues a run with its own settings, in its own folder; drop {', '.join(given)}")
        out = Path(args.resume)
        config = RunFolder(out).read_settings()[1]
    else:
        try:
            config = make_config(args.recipe or "default", **changes)
        except ConfigError as err:
            parser.error(flags_message(err))
        out = Path(args.out or DEFAULT_OUT)
    if args.nproc is not None and not distributed.launched_by_torchrun():
        distributed.check_settings(config, args.nproc)
        RunFolder(out).check(resume=bool(args.resume), overwrite=args.overwrite)
        return distributed.launch(args.argv, args.nproc, out)  # runs this command again on each rank
    with distributed.process_group(config):  # nothing to join without torchrun
        main_rank = distributed.is_main()
        if main_rank:
            RunFolder(out).check(resume=bool(args.resume), overwrite=args.overwrite)  # before any data is loaded
        with contextlib.nullcontext() if main_rank else contextlib.redirect_stdout(io.StringIO()):
            data = load_fashion_mnist(args.data_dir)  # says where the data came from: once, not once per rank
        result = run(config, data, out, resume=bool(args.resume), overwrite=args.overwrite,
                     progress=not args.no_progress)
    if main_rank:
        print(f"Test accuracy: {100 * result.test_accuracy:.2f}% (best epoch {result.history.best_epoch} of "
              f"{len(result.history)} on the validation split, {result.minutes:.1f} min). Files in {out}/")
    return 0


def cmd_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .checkpoint import load_checkpoint
    from .data import Batches, load_fashion_mnist, normalize
    from .metrics import confusion_matrix, per_class_accuracy
    from .train import evaluate, format_eval, pick_device

    device = pick_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint, device)
    data = load_fashion_mnist(args.data_dir)
    x = normalize(data.test_images, checkpoint.mean, checkpoint.std)
    result = evaluate(checkpoint.model, Batches(x, data.test_labels, 1000), device)
    print(format_eval("Test", result))
    print(f"Test accuracy: {100 * result.accuracy:.2f}%")
    for name, accuracy in zip(checkpoint.classes, per_class_accuracy(confusion_matrix(result.targets, result.predictions)).tolist()):
        print(f"  {name:<12} {100 * accuracy:6.2f}%")
    return 0


def cmd_lr_find(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from .config import TrainConfig
    from .data import Batches, load_fashion_mnist
    from .lr_finder import find_lr
    from .model import Net
    from .train import make_splits

    if args.start_lr >= args.end_lr:
        parser.error(f"--start-lr ({args.start_lr}) must be below --end-lr ({args.end_lr})")
    try:
        config = TrainConfig(batch_size=args.batch_size, seed=args.seed, limit_train=args.limit_train, device=args.device)
    except ConfigError as err:
        parser.error(flags_message(err))
    data = load_fashion_mnist(args.data_dir)
    splits = make_splits(data, config)
    torch.manual_seed(config.seed)
    model = Net().to(splits.train_x.device)
    batches = Batches(splits.train_x, splits.train_y, config.batch_size, shuffle=True, seed=config.seed)
    result = find_lr(model, batches, args.start_lr, args.end_lr, args.steps, args.mode, config=config)
    print(f"Sweep: {args.mode}, {len(result.lrs)} steps; {result.stop_reason}")
    for name, lr in result.suggestions.items():
        print(f"  {name:<11} {lr:.3g}")
    if result.one_cycle_lr is not None:
        print(f"  one-cycle peak LR: {result.one_cycle_lr:.3g}")
    print(f"  (lowest raw loss at LR {result.lowest_raw_loss_lr:.3g}; the report's rule, divided by 4: "
          f"{result.report_lr:.3g})")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from .plots import plot_lr_finder

        plot_lr_finder(result).savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"Plot saved to {args.plot}")
    return 0


def cmd_predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .checkpoint import load_checkpoint
    from .predict import ImageError, predict_files

    checkpoint = load_checkpoint(args.checkpoint)
    failures = 0
    for result in predict_files(checkpoint, args.images):
        if isinstance(result, ImageError):
            failures += 1
            print(f"error: {result}", file=sys.stderr)
        else:
            print(f"{result.path}: " + ", ".join(f"{name} {p:.1%}" for name, p in result.top))
    return 1 if failures else 0


COMMANDS = {"data": cmd_data, "train": cmd_train, "evaluate": cmd_evaluate, "lr-find": cmd_lr_find, "predict": cmd_predict}
