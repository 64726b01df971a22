import dataclasses
import inspect
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from fmnist_lab import distributed
from fmnist_lab.checkpoint import save_checkpoint
from fmnist_lab.cli import build_parser, flags_message, main
from fmnist_lab.config import RECIPES, TrainConfig, make_config
from fmnist_lab.errors import ConfigError
from fmnist_lab.model import Net
from fmnist_lab.predict import ImageError, load_image, to_fashion_mnist
from fmnist_lab.train import History


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--epochs", "-3"], "--epochs -3: must be at least 1"),
        (["train", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["train", "--lr", "0"], "--lr 0.0: must be a positive number"),
        (["train", "--lr", "-0.1"], "--lr -0.1: must be a positive number"),
        (["train", "--limit-train", "70000"], "--limit-train 70000: must be between 1 and 55000"),
        (["train", "--epochs", "many"], "--epochs: invalid int value: 'many'"),
        (["train", "--recipe", "turbo"], "invalid choice: 'turbo'"),
        (["train", "--max-shift", "-1"], "--max-shift -1: must be >= 0"),
        (["train", "--report-sweep-batches", "0"], "--report-sweep-batches 0: must be at least 1"),
        (["train", "--schedule", "cosine"], "--schedule cosine: must be one of onecycle, step, exponential, constant"),
        (
            ["train", "--resume", "runs/x", "--epochs", "50", "--lr", "3", "--out", "elsewhere"],
            "--resume continues a run with its own settings, in its own folder; drop --epochs, --lr, --out",
        ),
        (
            ["lr-find", "--start-lr", "1", "--end-lr", "0.1"],
            "--start-lr 1.0: must be above 0 and below the end LR (0.1)",
        ),
        (
            ["lr-find", "--num-steps", "1", "--mode", "log"],
            "--num-steps 1: must be at least 2; --mode log: must be exp",
        ),
        (["evaluate"], "the following arguments are required: checkpoint"),
        # an empty --resume used to be read as no --resume: the default recipe started, 30 epochs
        (["train", "--resume", ""], "argument --resume: needs a folder or file name, not an empty string"),
        (["train", "--out", " "], "argument --out: needs a folder or file name, not an empty string"),
        (["lr-find", "--end-lr", "inf"], "--end-lr inf: must be a finite number above 0"),
        # --start-lr used to be blamed for a nan end (helper-86)
        (["lr-find", "--end-lr", "nan"], "--end-lr nan: must be a finite number above 0"),
        # told with the top level's usage (helper-86)
        (["evaluate", "--limit-test", "10", "x.pt"], "usage: fmnist-lab evaluate"),
        # the plot's path used to fail after the whole sweep, naming a temporary file
        (["lr-find", "--plot", "sweep.txt"], "--plot sweep.txt: matplotlib cannot save .txt files"),
        # as root, /dev/full was replaced by the plot after the sweep (helper-86)
        *(
            [(["lr-find", "--plot", "/dev/null"], "--plot /dev/null: not a regular file")]
            if Path("/dev/null").exists()
            else []
        ),
        (["train", "--device", "meta"], "--device meta: not a device the lab trains on"),
        (["train", "--sync-bn"], "--sync-bn shares BatchNorm's statistics between processes: start several"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(argv, message, capsys, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", no_data)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_sync_bn_under_torchrun_is_not_told_to_start_several_processes(monkeypatch, capsys, tmp_path):
    # torchrun had started several, and each was told to start several (helper-93); on the CPU the refusal now
    # gives the real reason
    for name, value in zip(distributed.TORCHRUN_VARIABLES, ("0", "2", "0", "2", "127.0.0.1", "29500")):
        monkeypatch.setenv(name, value)
    assert main(["train", "--sync-bn", "--device", "cpu", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "start several" not in err and "--sync-bn: PyTorch's SyncBatchNorm runs on GPUs only" in err


@pytest.mark.parametrize(
    "argv", [["train", "--out", "RUN"], ["train", "--resume", "RUN"], ["lr-find"], ["evaluate", "RUN/best.pt"]]
)
def test_a_bad_bf16_variable_is_refused_by_its_name_before_any_work(argv, capsys, monkeypatch, tmp_path):
    def no_data(*args, **kwargs):
        raise AssertionError("work started before FMNIST_LAB_BF16 was checked")

    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", no_data)
    monkeypatch.setenv("FMNIST_LAB_BF16", "2")
    with pytest.raises(SystemExit) as exit_info:
        main([arg.replace("RUN", str(tmp_path / "run")) for arg in argv])
    assert exit_info.value.code == 2
    assert "FMNIST_LAB_BF16=2: must be 0 (float32 everywhere) or 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_flags_are_named_with_their_value_and_a_setting_not_given_alone():
    problems = [
        ("lr", None, "none given"),
        ("batch_size", 0, "must be at least 1"),
        ("FMNIST_LAB_BF16", "2", "x"),
    ]
    assert flags_message(ConfigError(problems)) == (
        "--lr: none given; --batch-size 0: must be at least 1; FMNIST_LAB_BF16=2: x"
    )


def test_a_bad_quick_variable_is_refused_in_one_line_as_the_lab_is_imported():
    # it used to end in a 12-frame traceback, even for --help
    root = Path(__file__).resolve().parent.parent
    environment = {**os.environ, "FMNIST_LAB_QUICK": "yes", "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-m", "fmnist_lab", "data", "--help"], env=environment, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "fmnist-lab: error: FMNIST_LAB_QUICK='yes': must be 0 (full sizes) or 1 (quick mode's small sizes, for tests)\n"
    )


@pytest.fixture
def fake_training(monkeypatch):
    """Replace data loading, the LR choice and training: what reaches ``run`` is recorded in the returned dict."""
    seen = {}

    def fake_pick_lr(config, data):
        return config, "the network pick_lr hands on"

    def fake_run(config, data, out_dir, overwrite, progress, model):
        assert model == "the network pick_lr hands on"
        seen.update(config=config, out_dir=out_dir, overwrite=overwrite)
        history = History(train_loss=[0.5], val_loss=[0.4], val_accuracy=[0.9], lr=[0.1], seconds=[1.0])
        return SimpleNamespace(test_accuracy=0.9, history=history, minutes=0.1)

    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", lambda data_dir: None)
    monkeypatch.setattr("fmnist_lab.experiment.pick_lr", fake_pick_lr)
    monkeypatch.setattr("fmnist_lab.experiment.run", fake_run)
    return seen


def test_a_warning_is_one_line_in_the_commands_own_words(fake_training, tmp_path, monkeypatch, capsys):
    import warnings

    from fmnist_lab.errors import DegenerateRunWarning

    def warning_run(config, data, out_dir, overwrite, progress, model):
        warnings.warn(DegenerateRunWarning("batch_size", 512, "not smaller than the 100 training images"), stacklevel=2)
        warnings.warn("any other warning", UserWarning, stacklevel=2)
        return SimpleNamespace(test_accuracy=0.9, history=History([0.5], [0.4], [0.9], [0.1], [1.0]), minutes=0.1)

    monkeypatch.setattr("fmnist_lab.experiment.run", warning_run)
    assert main(["train", "--lr", "0.1", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    # the flag, not the Python argument (batch_size=512) that the library's warning names (helper-86)
    assert err == (
        "fmnist-lab train: warning: --batch-size 512: not smaller than the 100 training images\n"
        "fmnist-lab train: warning: any other warning\n"
    )


def test_every_setting_is_a_flag_and_reaches_the_training_config(fake_training, tmp_path):
    assert (
        main(
            [
                "train",
                "--recipe",
                "fast",
                "--max-shift",
                "2",
                "--flip",
                "--no-bf16",
                "--momentum",
                "0.5",
                "--no-progress",
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    config = fake_training["config"]
    assert (config.max_shift, config.flip, config.bf16, config.momentum) == (2, True, False, 0.5)
    assert config.epochs == make_config("fast").epochs  # the recipe's own value where no flag was given

    main(["train", "--no-progress", "--out", str(tmp_path / "b")])
    assert fake_training["config"] == make_config("default")
    parser_flags = build_parser()._subparsers._group_actions[0].choices["train"]._option_string_actions
    for setting in dataclasses.fields(TrainConfig):
        assert "--" + setting.name.replace("_", "-") in parser_flags, setting.name


def test_flags_parse_as_their_settings_type_hints_say(fake_training, tmp_path):
    assert (
        main(
            [
                "train",
                "--lr",
                "0.1",
                "--patience",
                "3",
                "--lr-rule",
                "report",
                "--val-size",
                "1000",
                "--no-channels-last",
                "--log-interval",
                "10",
                "--no-progress",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    config = fake_training["config"]
    assert (config.lr, config.patience, config.lr_rule, config.val_size) == (0.1, 3, "report", 1000)
    assert (config.channels_last, config.log_interval) == (False, 10)
    assert isinstance(config.lr, float) and isinstance(config.patience, int)


def test_lr_find_takes_its_flags_and_defaults_from_find_lr():
    from fmnist_lab.lr_finder import find_lr

    args = build_parser().parse_args(["lr-find"])
    defaults = inspect.signature(find_lr).parameters
    for name in ("start_lr", "end_lr", "num_steps", "mode"):
        assert getattr(args, name) == defaults[name].default, name
    assert build_parser().parse_args(["lr-find", "--num-steps", "50"]).num_steps == 50


def test_recipe_names_come_from_the_recipes(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "{" + ",".join(RECIPES) + "}" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["train", "lr-find"])
def test_a_missing_gpu_is_refused_with_advice_in_flags(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", lambda *a: pytest.fail("the data loaded first"))
    argv = [command, "--device", "cuda"] + (["--out", str(tmp_path / "run")] if command == "train" else [])
    with pytest.raises(SystemExit):  # a usage error, as for any flag with a value that cannot work
        main(argv)
    assert f"fmnist-lab {command}: error: --device cuda: PyTorch sees no CUDA GPU here; use cpu or auto" in (
        capsys.readouterr().err
    )


def test_resume_from_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 1
    assert "is not the output folder of an interrupted fmnist-lab run" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["taken", "taken/run"])  # the folder itself, or a folder to create inside a file
def test_out_that_is_a_file_is_refused_before_the_data_loads(tmp_path, capsys, monkeypatch, out):
    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", lambda *a: pytest.fail("the data loaded first"))
    (tmp_path / "taken").write_text("a file")
    assert main(["train", "--out", str(tmp_path / out)]) == 1
    assert f"{tmp_path / 'taken'} is a file, not a folder; choose another output folder" in capsys.readouterr().err


def test_an_out_folder_that_cannot_be_created_is_refused_naming_what_to_do(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "run"))

    monkeypatch.setattr(Path, "mkdir", refuse)  # as where the parent folder is read-only, even for root
    assert main(["train", "--out", str(tmp_path / "run")]) == 1
    assert (
        f"cannot create the output folder {tmp_path / 'run'}: Permission denied; choose another output folder"
        in capsys.readouterr().err
    )


def test_a_bug_keeps_its_traceback(fake_training, monkeypatch, tmp_path):
    def broken_run(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (64x1152 and 1024x512)")

    monkeypatch.setattr("fmnist_lab.experiment.run", broken_run)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):  # not a one-line "error:" message
        main(["train", "--no-progress", "--out", str(tmp_path / "run")])


def test_a_plot_path_that_cannot_be_written_is_refused_before_the_sweep(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", lambda *a: pytest.fail("the data loaded first"))
    (tmp_path / "a_file").write_text("")
    for plot, message in [
        (tmp_path, f"a folder; give a file name in it, such as {tmp_path / 'lr_finder.png'}"),
        (tmp_path / "a_file" / "sweep.png", f"{tmp_path / 'a_file'} is a file, not a folder"),
    ]:
        with pytest.raises(SystemExit):
            main(["lr-find", "--plot", str(plot)])
        assert message in capsys.readouterr().err


def test_evaluate_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["evaluate", str(tmp_path / "notes.txt")]) == 1
    assert "not a PyTorch checkpoint" in capsys.readouterr().err
    # an empty file was called "not a PyTorch checkpoint in the zip format" (helper-86)
    (tmp_path / "empty.pt").write_bytes(b"")
    assert main(["evaluate", str(tmp_path / "empty.pt")]) == 1
    assert "the file is empty (0 bytes)" in capsys.readouterr().err


def test_evaluate_refuses_an_empty_device_name(checkpoint_file, capsys):
    # `--device ""` was taken for auto (helper-86)
    assert main(["evaluate", str(checkpoint_file), "--device", ""]) == 1
    assert 'error: --device "": not a device name; use auto, cpu, cuda or mps' in capsys.readouterr().err


def test_a_checkpoint_or_image_without_read_permission_is_told_to_fix_the_permission(tmp_path, capsys, monkeypatch):
    # "not an image the lab can read ... pass a PNG or JPEG file" for a PNG one could not read (helper-86);
    # the denial is simulated: CI runs as root, who reads any file whatever its mode
    image = tmp_path / "shoe.png"
    Image.new("L", (28, 28)).save(image)

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("fmnist_lab.predict.Image.open", denied)
    with pytest.raises(ImageError, match="cannot be read .Permission denied.; give yourself read access"):
        load_image(image)
    monkeypatch.setattr("fmnist_lab.checkpoint.load_checkpoint", denied)
    assert main(["evaluate", str(tmp_path / "m.pt")]) == 1
    assert "m.pt: Permission denied; check its permissions" in capsys.readouterr().err


@pytest.fixture
def checkpoint_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_checkpoint(path, Net(), 0.286, 0.353, TrainConfig(), {})
    return path


@pytest.mark.parametrize("bf16", [True, False])
def test_evaluate_scores_in_the_precision_the_run_trained_in(tmp_path, tiny_data, monkeypatch, capsys, bf16):
    from fmnist_lab import train

    path = tmp_path / "model.pt"
    save_checkpoint(path, Net(), 0.286, 0.353, TrainConfig(bf16=bf16), {})
    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", lambda data_dir: tiny_data)
    seen, original = [], train.evaluate

    def recording_evaluate(*args, **kwargs):
        seen.append(kwargs.get("bf16"))
        return original(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", recording_evaluate)
    assert main(["evaluate", str(path), "--device", "cpu"]) == 0
    assert seen == [bf16] and "Test accuracy: " in capsys.readouterr().out


def shoe_photo(size=(300, 200), mode="RGB", light_background=True):
    """A dark 'shoe' (a filled rectangle) on a white table, off-centre."""
    background, shoe = (255, 30) if light_background else (0, 220)
    image = Image.new("L", size, background)
    image.paste(shoe, (40, 120, 200, 170))
    return image.convert(mode)


def test_preprocess_inverts_light_background_and_centres():
    x = to_fashion_mnist(shoe_photo())
    assert x.shape == (28, 28) and x.dtype == torch.uint8
    assert x[0].max() == 0 and x[-1].max() == 0  # background above and below the wide shoe is black
    assert x[14, 14] > 200  # the object is light and centred
    rows = (x > 100).any(1).nonzero().flatten()
    cols = (x > 100).any(0).nonzero().flatten()
    assert cols[-1] - cols[0] >= 26  # longer side scaled to fill the frame
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1


def test_preprocess_keeps_dark_background():
    x = to_fashion_mnist(shoe_photo(light_background=False))
    assert x[0, 0] == 0 and x[14, 14] > 200


def test_transparent_png_is_composited(tmp_path):
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((20, 20, 20, 255), (10, 20, 54, 44))
    image.save(tmp_path / "cutout.png")
    x = to_fashion_mnist(load_image(tmp_path / "cutout.png"))
    assert x[0, 0] == 0 and x[14, 14] > 200


@pytest.mark.parametrize(
    "name, mode", [("a.png", "RGB"), ("b.jpg", "RGB"), ("c.png", "L"), ("d.png", "LA"), ("e.png", "P")]
)
def test_predict_reads_many_formats_and_reports_top_3(tmp_path, checkpoint_file, name, mode, capsys):
    shoe_photo(mode=mode).save(tmp_path / name)
    assert main(["predict", str(checkpoint_file), str(tmp_path / name)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / name}: ") and line.count("%") == 3


def test_bad_files_are_reported_and_the_others_still_processed(tmp_path, checkpoint_file, capsys):
    shoe_photo().save(tmp_path / "good.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not an image at all")
    files = [tmp_path / "empty.png", tmp_path / "notes.jpg", tmp_path / "good.png", tmp_path / "missing.png"]
    assert main(["predict", str(checkpoint_file), *map(str, files)]) == 1
    out, err = capsys.readouterr()
    assert "good.png: " in out
    assert "empty.png: the file is empty" in err
    assert "notes.jpg: not an image" in err
    assert "missing.png: no such file" in err
    assert all(line.startswith("fmnist-lab predict: error: ") for line in err.splitlines()), err  # as the others


def test_load_image_errors_are_image_errors(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "x.png")
