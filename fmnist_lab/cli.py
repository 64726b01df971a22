"""``fmnist-lab`` (or ``python -m fmnist_lab``): data, train, evaluate, lr-find, predict."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import io
import os
import signal
import sys
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RECIPES, TrainConfig, make_config
from .devices import bf16_allowed
from .errors import ConfigError, DegenerateRunWarning, LabError
from .files import nearest_existing

if TYPE_CHECKING:
    from .run_folder import RunSettings

DEFAULT_OUT = "runs/latest"

DATA_DIR_HELP = "folder with the dataset files (default: $FMNIST_DATA_DIR or the project's data/)"
# The help of find_lr's parameters that `fmnist-lab lr-find` exposes; their types and defaults come from find_lr
LR_FIND_HELP = {
    "start_lr": "the sweep's first LR",
    "end_lr": "the sweep's last LR",
    "num_steps": "LRs tried, one mini-batch each",
    "mode": "exp (equal steps in log LR) or linear (the report's)",
}


def path_name(text: str) -> str:
    """A folder or file name given on the command line: an empty one (``--resume ""``) is refused, not ignored."""
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a folder or file name, not an empty string")
    return text


def flag(name: str) -> str:
    """The command-line flag of a setting: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def flag_type(hint: Any) -> Any:
    """The type a flag's text is parsed into: the hint itself, or its non-None part (``int | None`` -> int)."""
    parts = [t for t in typing.get_args(hint) if t is not type(None)]
    return parts[0] if parts else hint


def add_flag(parser: argparse.ArgumentParser, name: str, hint: Any, help: str, default: Any = None) -> None:
    """``--name`` parsed by its type hint; booleans get ``--name`` / ``--no-name``."""
    if flag_type(hint) is bool:
        parser.add_argument(flag(name), action=argparse.BooleanOptionalAction, default=default, help=help)
    else:
        parser.add_argument(flag(name), type=flag_type(hint), default=default, help=help)


def add_settings(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """One flag per TrainConfig setting (or the ``names`` given); an unset flag (None) keeps the recipe's value."""
    hints = typing.get_type_hints(TrainConfig)
    for setting in dataclasses.fields(TrainConfig):
        if names is None or setting.name in names:
            add_flag(parser, setting.name, hints[setting.name], setting.metadata["help"])


def build_parser() -> argparse.ArgumentParser:
    """The ``fmnist-lab`` parser with its commands: data, train, evaluate, lr-find, predict."""
    parser = argparse.ArgumentParser(
        prog="fmnist-lab", description="Fashion-MNIST teaching lab: the report's CNN, done properly."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="find, stage and verify the dataset; print where it came from")
    data.add_argument("--data-dir", type=path_name, help=DATA_DIR_HELP)

    add_train_command(commands)

    evaluate = commands.add_parser("evaluate", help="test loss, accuracy and per-class accuracy of a checkpoint")
    evaluate.add_argument("--data-dir", type=path_name, help=DATA_DIR_HELP)
    add_settings(evaluate, ["device"])
    evaluate.add_argument("checkpoint")

    add_lr_find_command(commands)

    predict = commands.add_parser("predict", help="top-3 classes for your own PNG/JPEG images")
    predict.add_argument("checkpoint")
    predict.add_argument("images", nargs="+")
    for command in commands.choices.values():  # a command's usage errors show its own usage and name
        command.set_defaults(command_parser=command)
    return parser


def add_train_command(commands: argparse._SubParsersAction) -> None:
    """``train``: one flag per setting, the recipe, and the run folder's options."""
    train = commands.add_parser("train", help="train the network, write best.pt, last.pt, run.json and metrics.json")
    train.add_argument("--data-dir", type=path_name, help=DATA_DIR_HELP)
    train.add_argument(
        "--recipe",
        choices=list(RECIPES),
        help="default: the lab's recipe; fast: a few minutes on a CPU; speedrun: the report's accuracy in "
        "an eighth of its time with bfloat16, a fifth without (early dropout); report: the report's own",
    )
    add_settings(train)
    train.add_argument("--out", type=path_name, help=f"output folder (default: {DEFAULT_OUT})")
    train.add_argument("--overwrite", action="store_true", help="replace the run that the output folder holds")
    train.add_argument(
        "--resume", type=path_name, metavar="DIR", help="continue the interrupted run in DIR with its own settings"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train on N processes with DistributedDataParallel, launched by torchrun (one per GPU "
        "on CUDA; batch-size is the global batch)",
    )


def add_lr_find_command(commands: argparse._SubParsersAction) -> None:
    """``lr-find``: its sweep's flags, types and defaults taken from ``find_lr``'s signature."""
    from .lr_finder import find_lr

    lr_find = commands.add_parser("lr-find", help="LR range test: print suggestions, save the plot")
    lr_find.add_argument("--data-dir", type=path_name, help=DATA_DIR_HELP)
    parameters, hints = inspect.signature(find_lr).parameters, typing.get_type_hints(find_lr)
    for name, help in LR_FIND_HELP.items():
        default = parameters[name].default
        add_flag(lr_find, name, hints[name], f"{help} (default: {default})", default)
    add_settings(lr_find, ["batch_size", "seed", "limit_train", "device"])
    lr_find.add_argument("--plot", type=path_name, metavar="PNG", help="save the plot to this PNG file")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the lab's own errors raised while it runs end it with one line and exit status 1.

    (A bad FMNIST_LAB_QUICK is refused earlier, when the lab is imported, with one line too: quick.py.)
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # told with the subcommand's usage, not the top level's
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `--nproc` hands on to torchrun
    try:
        bf16_allowed()  # read where the arithmetic starts: a bad FMNIST_LAB_BF16 is refused here, before any work
    except ConfigError as err:
        args.command_parser.error(flags_message(err))
    # a `kill` from another terminal ends training like Ctrl-C: the message says how to resume
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with warnings.catch_warnings():  # the lab's warnings as one line each, like its errors, not Python's two
            warnings.showwarning = lambda message, *_: print(
                f"fmnist-lab {args.command}: warning: {warning_text(message)}", file=sys.stderr
            )
            return COMMANDS[args.command](args, args.command_parser)
    except ConfigError as err:
        print(f"fmnist-lab {args.command}: error: {flags_message(err)}", file=sys.stderr)
        return 1
    except LabError as err:
        print(f"fmnist-lab {args.command}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        fix = (
            "; check its permissions, or use a file or folder you can access"
            if isinstance(err, PermissionError)
            else ""
        )
        print(f"fmnist-lab {args.command}: error: {err.filename or ''}: {err.strerror or err}{fix}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fmnist-lab: interrupted", file=sys.stderr)
        return 130


def flag_problem(name: str, value: object, rule: str) -> str:
    """A problem with a setting in the command line's words: ``--lr 0: ...`` (``--lr: ...`` for a setting not
    given); an environment variable, whose name is upper case, as ``FMNIST_LAB_BF16=2: ...``."""
    shown = '""' if value == "" else value
    if isinstance(value, bool):  # a switch: --flip, or --no-flip
        return f"{flag(name) if value else flag('no_' + name)}: {rule}"
    if name.isupper():
        return f"{name}={shown}: {rule}"
    return f"{flag(name)}: {rule}" if value is None else f"{flag(name)} {shown}: {rule}"


def flags_message(err: ConfigError) -> str:
    """The library names arguments (``lr=0``); the command line names flags and environment variables."""
    return "; ".join(flag_problem(*triple) for triple in err.problems)


def warning_text(message: Warning | str) -> str:
    """A warning's text; one about the settings names the flag (``--batch-size 512``), not the argument."""
    return flag_problem(*message.problem) if isinstance(message, DegenerateRunWarning) else str(message)


def cmd_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``fmnist-lab data``: find or stage the dataset, verify it and print its statistics."""
    from .data import pixel_stats
    from .dataset import load_fashion_mnist

    data = load_fashion_mnist(args.data_dir)
    print(
        f"train: {tuple(data.train_images.shape)} images, test: {tuple(data.test_images.shape)} images, "
        f"{len(data.classes)} classes"
    )
    counts = data.train_labels.bincount(minlength=len(data.classes))
    for name, count in zip(data.classes, counts.tolist()):
        print(f"  {name:<12} {count:>6} training images")
    mean, std = pixel_stats(data.train_images)
    print(f"training pixels: mean {mean:.4f}, std {std:.4f}")
    return 0


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``fmnist-lab train``: a new run (LR choice, training, the one test pass) or a resumed one."""
    from . import distributed
    from .dataset import load_fashion_mnist
    from .experiment import pick_lr, resume, run
    from .run_folder import RunFolder

    config, out, saved = _train_settings(args, parser)
    if args.nproc is not None and not distributed.launched_by_torchrun():
        distributed.check_settings(config, args.nproc)
        RunFolder(out).check(resume=bool(args.resume), overwrite=args.overwrite)
        return distributed.launch(args.argv, args.nproc, out)  # runs this command again on each rank
    created = not out.exists()
    with distributed.process_group(config):  # nothing to join without torchrun
        main_rank = distributed.is_main()
        if main_rank:
            RunFolder(out).check(resume=bool(args.resume), overwrite=args.overwrite)  # before any data is loaded
        try:
            with contextlib.nullcontext() if main_rank else contextlib.redirect_stdout(io.StringIO()):
                data = load_fashion_mnist(args.data_dir)  # says where the data came from: once, not once per rank
            progress = not args.no_progress
            if args.resume:
                result = resume(out, data, progress=progress, settings=saved)
            else:
                config, model = pick_lr(config, data)
                result = run(config, data, out, overwrite=args.overwrite, progress=progress, model=model)
        except BaseException:
            if main_rank and created:  # the folder check() made, if nothing was written in it (no data, say)
                with contextlib.suppress(OSError):
                    out.rmdir()
            raise
    if main_rank:
        print(
            f"Test accuracy: {100 * result.test_accuracy:.2f}% (best epoch {result.history.best_epoch} of "
            f"{len(result.history)} on the validation split; {result.minutes:.1f} min of training and test). "
            f"Files in {out}/"
        )
    return 0


def _train_settings(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[TrainConfig, Path, RunSettings | None]:
    """The config, the output folder and (``--resume``) the run.json read from it; else recipe and flags."""
    from . import distributed
    from .run_folder import RunFolder

    if args.nproc is not None and args.nproc < 1:
        parser.error(f"--nproc {args.nproc}: must be at least 1")
    if args.sync_bn and args.nproc is None and not distributed.launched_by_torchrun():
        parser.error(
            "--sync-bn shares BatchNorm's statistics between processes: start several (--nproc N, or torchrun, on GPUs)"
        )
    fields = dataclasses.fields(TrainConfig)
    changes = {f.name: getattr(args, f.name) for f in fields if getattr(args, f.name) is not None}
    if args.resume:
        others = [name for name in ("recipe", "out", "overwrite") if getattr(args, name) not in (None, False)]
        given = [flag(name) for name in [*changes, *others]]
        if given:
            parser.error(f"--resume continues a run with its own settings, in its own folder; drop {', '.join(given)}")
        saved = RunFolder(Path(args.resume)).read_settings()  # read once; the processes need its device first
        return saved.config, Path(args.resume), saved
    try:
        return make_config(args.recipe or "default", **changes), Path(args.out or DEFAULT_OUT), None
    except ConfigError as err:
        parser.error(flags_message(err))


def cmd_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``fmnist-lab evaluate``: a checkpoint scored on the test set, per class too."""
    from .checkpoint import load_checkpoint
    from .data import EVAL_BATCH_SIZE, Batches, normalize
    from .dataset import load_fashion_mnist
    from .devices import pick_device
    from .metrics import confusion_matrix, per_class_accuracy
    from .train import evaluate, format_eval

    device = pick_device("auto" if args.device is None else args.device)
    checkpoint = load_checkpoint(args.checkpoint, device)
    data = load_fashion_mnist(args.data_dir)
    x = normalize(data.test_images, checkpoint.mean, checkpoint.std)
    # in the precision the run trained and scored in (a run trained with --no-bf16 keeps it off)
    bf16 = checkpoint.config.get("bf16", True)
    result = evaluate(checkpoint.model, Batches(x, data.test_labels, EVAL_BATCH_SIZE), device, bf16=bf16)
    print(format_eval("Test", result))
    print(f"Test accuracy: {100 * result.accuracy:.2f}%")
    for name, accuracy in zip(
        checkpoint.classes, per_class_accuracy(confusion_matrix(result.targets, result.predictions)).tolist()
    ):
        print(f"  {name:<12} {100 * accuracy:6.2f}%")
    return 0


def cmd_lr_find(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``fmnist-lab lr-find``: the LR range test on a fresh network; suggestions printed, curve saved."""
    import torch

    from .data import make_splits
    from .dataset import load_fashion_mnist
    from .fused import new_net
    from .lr_finder import REPORT_DIVISOR, find_lr, sweep_batches, sweep_lrs

    try:
        sweep_lrs(args.start_lr, args.end_lr, args.num_steps, args.mode)  # its checks, before any work
        config = make_config(**{name: getattr(args, name) for name in ("batch_size", "seed", "limit_train", "device")})
    except ConfigError as err:
        parser.error(flags_message(err))
    if args.plot:
        problem = plot_path_problem(Path(args.plot))
        if problem:
            parser.error(f"--plot {args.plot}: {problem}")  # before the sweep, not after it
    data = load_fashion_mnist(args.data_dir)
    splits = make_splits(data, config)
    torch.manual_seed(config.seed)
    model = new_net(config).to(splits.train_x.device)
    result = find_lr(
        model, sweep_batches(splits, config), args.start_lr, args.end_lr, args.num_steps, args.mode, config=config
    )
    print(f"Sweep: {args.mode}, {len(result.lrs)} steps; {result.stop_reason}")
    for name, lr in result.suggestions.items():
        print(f"  {name:<11} {lr:.3g}")
    if result.one_cycle_lr is not None:
        print(f"  one-cycle peak LR: {result.one_cycle_lr:.3g}")
    print(
        f"  (lowest raw loss at LR {result.lowest_raw_loss_lr:.3g}; the report's rule as we read it, "
        f"÷{REPORT_DIVISOR}: {result.report_lr:.3g})"
    )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from .files import atomic_savefig
        from .plots import plot_lr_finder

        atomic_savefig(plot_lr_finder(result), args.plot, dpi=120, bbox_inches="tight")
        print(f"Plot saved to {args.plot}")
    return 0


def plot_path_problem(path: Path) -> str | None:
    """Why the plot cannot be saved to ``path`` (None if it can): its format, a folder in its place, its folder."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix and path.suffix[1:].lower() not in formats:
        return f"matplotlib cannot save {path.suffix} files; end the name in .png, .pdf, .svg or .jpg"
    if path.is_dir():
        return f"a folder; give a file name in it, such as {path / 'lr_finder.png'}"
    if path.exists() and not path.is_file():
        return "not a regular file (a device or a pipe); give the name of a file to write, such as lr_finder.png"
    folder = nearest_existing(path.parent)  # the folder to write in, or to create it in
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK):
        return f"cannot write in {folder}; choose a folder you can write to"
    return None


def cmd_predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``fmnist-lab predict``: the top classes of each image file; a file that fails is named, the rest go on."""
    from .checkpoint import load_checkpoint
    from .predict import ImageError, predict_files

    checkpoint = load_checkpoint(args.checkpoint)
    failures = 0
    for result in predict_files(checkpoint, args.images):
        if isinstance(result, ImageError):
            failures += 1
            print(f"fmnist-lab predict: error: {result}", file=sys.stderr)
        else:
            print(f"{result.path}: " + ", ".join(f"{name} {p:.1%}" for name, p in result.top))
    return 1 if failures else 0


COMMANDS = {
    "data": cmd_data,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "lr-find": cmd_lr_find,
    "predict": cmd_predict,
}
