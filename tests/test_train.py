import dataclasses
import io
import json
import math
import os
import stat
import subprocess
import sys
import warnings

import pytest
import torch

from fmnist_lab import checkpoint as checkpoint_module
from fmnist_lab import files
from fmnist_lab.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from fmnist_lab.config import RECIPES, TrainConfig, make_config
from fmnist_lab.data import Batches
from fmnist_lab.devices import bf16_is_native, keep_freed_memory, pick_device
from fmnist_lab.errors import ConfigError, TrainingDiverged
from fmnist_lab.experiment import pick_lr, resume, run
from fmnist_lab.files import atomic_write_text
from fmnist_lab.lr_finder import find_lr
from fmnist_lab.model import Net
from fmnist_lab.train import History, TrainingState, format_eval, make_optimizer, train_step

QUICK = dict(epochs=3, batch_size=64, val_size=200, lr=0.05, bf16=False, device="cpu")


def tiny_run(tiny_data, out_dir=None, **overrides):
    config = TrainConfig(**{**QUICK, **overrides})
    return run(config, tiny_data, out_dir=out_dir, progress=False, log=lambda line: None)


def without_seconds(history: History) -> dict:
    return {k: v for k, v in history.__dict__.items() if k != "seconds"}


def test_training_learns_the_tiny_task(tiny_data):
    result = tiny_run(tiny_data)
    assert result.history.val_accuracy[-1] > 0.8
    assert result.history.train_loss[-1] < result.history.train_loss[0]


@pytest.mark.filterwarnings("ignore:limit_train=256:fmnist_lab.errors.DegenerateRunWarning")
def test_same_seed_same_history_different_seed_different_history(tiny_data):
    small = dict(epochs=2, limit_train=256)  # 4 batches an epoch: enough to show a reshuffle
    a, b = tiny_run(tiny_data, seed=1, **small), tiny_run(tiny_data, seed=1, **small)  # two: a reshuffle between
    c = tiny_run(tiny_data, seed=2, **small)
    assert without_seconds(a.history) == without_seconds(b.history)
    assert without_seconds(a.history) != without_seconds(c.history)


def test_log_lines_follow_the_mnist_example(tiny_data):
    lines = []
    config = TrainConfig(**{**QUICK, "epochs": 1, "log_interval": 5})
    run(config, tiny_data, progress=False, log=lines.append)
    assert lines[1].startswith("Train Epoch: 1 [0/1000 (0%)]\tLoss: ")
    assert any(line.startswith("Train Epoch: 1 [320/1000 (31%)]\tLoss: ") for line in lines)
    assert any(line.startswith("Validation set: Average loss: ") and "/200 (" in line for line in lines)
    assert lines[-1].startswith("Test set: Average loss: ") and "/200 (" in lines[-1]


def test_format_eval_matches_the_report():
    from fmnist_lab.train import EvalResult

    result = EvalResult(0.34449, 0.8736, 8736, 10000, torch.zeros(1), torch.zeros(1), torch.zeros(1, 10))
    assert format_eval("Test", result) == "Test set: Average loss: 0.3445, Accuracy: 8736/10000 (87%)"


def test_metrics_json_and_checkpoints_are_written(tiny_data, tmp_path):
    tiny_run(tiny_data, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) >= {"test_accuracy", "test_loss", "history"}
    assert len(metrics["history"]) == 3
    assert set(metrics["history"][0]) == {"train_loss", "val_loss", "val_accuracy", "lr", "seconds"}
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.metrics["epoch"] == max(range(3), key=lambda i: metrics["history"][i]["val_accuracy"]) + 1
    assert best.config["batch_size"] == 64 and len(best.classes) == 10
    assert 0 < best.mean < 1 and 0 < best.std < 1


def test_checkpoint_round_trip_gives_the_same_predictions(tmp_path):
    torch.manual_seed(0)
    model = Net().eval()
    save_checkpoint(tmp_path / "m.pt", model, 0.28, 0.35, TrainConfig(), {"test_accuracy": 0.5})
    loaded = load_checkpoint(tmp_path / "m.pt")
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(loaded.model(x), model(x))
    assert (loaded.mean, loaded.std, loaded.metrics) == (0.28, 0.35, {"test_accuracy": 0.5})


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    model = Net()
    model.fc_1 = torch.nn.Linear(128 * 3 * 3, 256)
    model.fc_2 = torch.nn.Linear(256, 10)
    save_checkpoint(tmp_path / "other.pt", model, 0.28, 0.35, TrainConfig(), {})
    with pytest.raises(CheckpointError, match="different architecture") as err:
        load_checkpoint(tmp_path / "other.pt")
    assert "size mismatch for fc_1.weight" in str(err.value)


@pytest.mark.parametrize(
    "content, message",
    [(b"hello, I am a text file", "not a PyTorch checkpoint"), (b"", "the file is empty .0 bytes.")],
)
def test_not_a_checkpoint(tmp_path, content, message):
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "x.pt")


def test_truncated_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "m.pt", Net(), 0.28, 0.35, TrainConfig(), {})
    raw = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "m.pt")


def test_plain_state_dict_is_not_a_lab_checkpoint(tmp_path):
    torch.save(Net().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not an fmnist-lab checkpoint"):
        load_checkpoint(tmp_path / "weights.pt")


def test_a_model_saved_whole_is_not_called_corrupt(tmp_path):
    torch.save(Net(), tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="not an fmnist-lab checkpoint: it holds pickled Python objects"):
        load_checkpoint(tmp_path / "model.pt")


def test_a_file_that_cannot_be_written_is_named_not_its_temporary_file(tmp_path):
    target = tmp_path / ("x" * 250)  # a legal name, too long once the temporary file's parts are added
    with pytest.raises(OSError) as refused:
        atomic_write_text(target, "{}")
    assert refused.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_or_a_device_is_never_replaced_by_a_file(tmp_path):
    # `lr-find --plot /dev/full`, as root, replaced the device with a PNG (helper-86)
    (tmp_path / "plots").mkdir()
    targets = [tmp_path / "plots"]
    if hasattr(os, "mkfifo"):  # a named pipe stands for a device here: a test must not risk /dev/null
        os.mkfifo(tmp_path / "pipe")
        targets.append(tmp_path / "pipe")
    for target in targets:
        with pytest.raises(OSError, match="not a regular file") as refused:
            atomic_write_text(target, "{}")
        assert refused.value.filename == str(target)
    assert sorted(tmp_path.iterdir()) == sorted(targets)
    assert (tmp_path / "plots").is_dir() and all(not target.is_file() for target in targets)


class _InterruptedFile(io.RawIOBase):
    """A file whose third write is interrupted by Ctrl-C, as during a checkpoint's save."""

    def __init__(self, target):
        self.target, self.writes = target, 0

    def writable(self):
        return True

    def write(self, data):
        self.writes += 1
        if self.writes == 3:
            raise KeyboardInterrupt
        return self.target.write(data)


def test_ctrl_c_during_a_checkpoints_save_is_an_interrupt_not_a_runtime_error(tmp_path):
    # torch's zip writer turned it into "RuntimeError: [enforce fail at inline_container.cc]" (helper-86)
    with open(tmp_path / "ckpt.pt", "wb") as f, pytest.raises(KeyboardInterrupt):
        files._torch_save({"weights": torch.zeros(1000)}, _InterruptedFile(f))


@pytest.mark.skipif(os.name != "posix", reason="only POSIX can open a folder to flush it")
def test_the_file_then_its_folder_are_flushed_to_disk(tmp_path, monkeypatch):
    flushed = []  # (is a folder, the target's name is in the folder yet)
    real_fsync = os.fsync

    def fsync(fd):
        flushed.append((stat.S_ISDIR(os.fstat(fd).st_mode), (tmp_path / "metrics.json").exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_text(tmp_path / "metrics.json", "{}")
    assert flushed == [(False, False), (True, True)]  # the data before the rename, the rename after it


def test_a_folder_that_cannot_be_flushed_does_not_fail_a_write_that_is_done(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")  # what a VM's shared folder answers
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_text(tmp_path / "metrics.json", "{}")
    assert (tmp_path / "metrics.json").read_text() == "{}"


def test_the_test_set_is_scored_with_the_best_epochs_weights_as_evaluate_scores_best_pt(
    tiny_data, tmp_path, monkeypatch, capsys
):
    from fmnist_lab import train
    from fmnist_lab.cli import main

    accuracies, validate = iter([0.5, 0.9, 0.7]), train._validate_on_rank_zero  # the best epoch is not the last
    monkeypatch.setattr(
        train, "_validate_on_rank_zero", lambda *args: dataclasses.replace(validate(*args), accuracy=next(accuracies))
    )
    result = tiny_run(tiny_data, tmp_path)
    assert (result.history.best_epoch, len(result.history)) == (2, 3)
    best = load_checkpoint(tmp_path / "best.pt").model.state_dict()
    assert all(torch.equal(value, best[name]) for name, value in result.model.state_dict().items())
    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", lambda data_dir: tiny_data)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "best.pt"), "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    total = len(tiny_data.test_labels)
    line = f"Test set: Average loss: {metrics['test_loss']:.4f}, Accuracy: {round(metrics['test_accuracy'] * total)}/"
    assert line in capsys.readouterr().out  # the run's own test score, and evaluate's of best.pt, agree


def test_text_files_are_written_in_utf8_whatever_the_locale(tmp_path):
    # Windows' default code page, like this ASCII locale, cannot encode "≥" (speedrun.md holds one)
    target = tmp_path / "table.md"
    ascii_locale = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    code = f"from fmnist_lab.files import atomic_write_text; atomic_write_text({str(target)!r}, '\\u2265 92.54%')"
    subprocess.run([sys.executable, "-c", code], env=ascii_locale, check=True, capture_output=True)
    assert target.read_bytes() == "≥ 92.54%".encode()


def test_a_resume_restores_apples_gpu_generator_too(monkeypatch):
    # on Apple's MPS, dropout draws from torch.mps's own generator, not the CPU's
    batches = Batches(torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), 2, shuffle=True)
    state = TrainingState.begin(Net(), batches, TrainConfig(lr=0.1, device="cpu"))
    mps_generator = {"state": torch.tensor([1], dtype=torch.uint8)}
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda: mps_generator["state"].clone())
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda state: mps_generator.update(state=state))
    saved = state.state_dict()
    mps_generator["state"] = torch.tensor([2], dtype=torch.uint8)  # dropout drew numbers after the save
    state.load_state_dict(saved)
    assert mps_generator["state"].tolist() == [1]


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")


def test_crash_during_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    save_checkpoint(path, Net(), 0.1, 0.2, TrainConfig(), {"good": True})

    def crash(obj, f):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, Net(), 0.1, 0.2, TrainConfig(), {"good": False})
    monkeypatch.undo()
    assert load_checkpoint(path).metrics == {"good": True}
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary file left behind


def test_divergence_stops_at_once_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    config = TrainConfig(**{**QUICK, "epochs": 4, "lr": 0.05})
    run(config, tiny_data, out_dir=tmp_path / "good", progress=False, log=lambda line: None)
    before = (tmp_path / "good" / "best.pt").read_bytes()
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch \d+, at learning rate 1e\+06.*lower it"):
        run(
            TrainConfig(**{**QUICK, "lr": 1e6, "schedule": "constant"}),
            tiny_data,
            out_dir=tmp_path / "bad",
            progress=False,
            log=lambda line: None,
        )
    assert (tmp_path / "good" / "best.pt").read_bytes() == before
    assert not (tmp_path / "bad" / "best.pt").exists()


@pytest.mark.filterwarnings("ignore:limit_train=256:fmnist_lab.errors.DegenerateRunWarning")
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])  # the checkpoint carries momentum or Adam's moments
def test_interrupted_run_resumes_to_the_same_result(tiny_data, tmp_path, optimizer):
    # 4 batches an epoch; dropout stops after epoch 3, after the interruption
    extras = dict(epochs=4, limit_train=256, max_shift=2, flip=True, optimizer=optimizer, dropout_epochs=3)
    full = tiny_run(tiny_data, tmp_path / "full", **extras)

    class Interrupt:
        def __call__(self, state):
            if len(state.history) == 2:
                raise KeyboardInterrupt

    config = TrainConfig(**{**QUICK, **extras})
    with pytest.raises(KeyboardInterrupt):
        run(
            config, tiny_data, out_dir=tmp_path / "cut", progress=False, on_epoch_end=Interrupt(), log=lambda line: None
        )
    assert load_checkpoint(tmp_path / "cut" / "last.pt").metrics["epoch"] == 2
    saved = read_checkpoint(tmp_path / "cut" / "last.pt")["training_state"]
    # the wall time of the first session's 2 epochs: their training, validation and saving, not training alone
    assert saved["elapsed_seconds"] > sum(saved["history"]["seconds"])
    resumed = resume(tmp_path / "cut", tiny_data, progress=False, log=lambda line: None)
    assert without_seconds(resumed.history) == without_seconds(full.history)
    assert resumed.test_accuracy == full.test_accuracy
    # the minutes count the first session's wall time, then this one's epochs
    assert resumed.minutes * 60 > saved["elapsed_seconds"] + sum(resumed.history.seconds[2:])
    a, b = load_checkpoint(tmp_path / "full" / "best.pt"), load_checkpoint(tmp_path / "cut" / "best.pt")
    assert all(torch.equal(a.model.state_dict()[k], v) for k, v in b.model.state_dict().items())


def test_early_dropout_drops_in_its_first_epochs_only(tiny_data):
    """dropout_epochs=1: the dropout layers change what passes through them in epoch 1 only; BatchNorm trains on."""
    torch.manual_seed(0)
    model = Net()
    seen = []  # per training forward: (the dropout before the head changed its input, BatchNorm in training mode)

    def record(module, inputs, output):
        if model.training:  # not the validation passes
            seen.append((not torch.equal(inputs[0], output), model.b1.training))

    model.drop.register_forward_hook(record)
    run(TrainConfig(**{**QUICK, "dropout_epochs": 1}), tiny_data, progress=False, log=lambda line: None, model=model)
    per_epoch = len(seen) // QUICK["epochs"]
    assert seen == [(True, True)] * per_epoch + [(False, True)] * (len(seen) - per_epoch)


@pytest.mark.filterwarnings("ignore:limit_train=256:fmnist_lab.errors.DegenerateRunWarning")
def test_early_dropout_is_the_same_run_until_the_switch(tiny_data):
    """Notebook 05, section 7: the same weights, batches and masks until the switch; after it the runs part."""
    always = tiny_run(tiny_data, epochs=2, limit_train=256).history
    early = tiny_run(tiny_data, epochs=2, limit_train=256, dropout_epochs=1).history
    first, second = (without_seconds(h) for h in (always, early))
    assert {k: v[0] for k, v in first.items()} == {k: v[0] for k, v in second.items()}
    assert early.train_loss[1] != always.train_loss[1] and early.val_loss[1] != always.val_loss[1]


def test_early_stopping_stops_after_patience(tiny_data):
    result = tiny_run(tiny_data, epochs=30, patience=2, schedule="constant", lr=0.05)
    h = result.history
    assert len(h) < 30
    assert len(h) - h.best_epoch == 2


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 0, "epochs=0: must be at least 1"),
        ("batch_size", 0, "batch_size=0: must be at least 1"),
        ("lr", 0.0, "lr=0.0: must be a positive number"),
        ("lr", math.nan, "lr=nan: must be a positive"),
        ("limit_train", 60_000, "limit_train=60000: must be between 1 and 55000"),
        ("limit_test", 0, "limit_test=0: must be between 1 and 10000"),
        ("schedule", "cosine", "schedule='cosine': must be one of"),
        ("optimizer", "adam", "optimizer='adam': must be one of sgd, adamw"),
        ("weight_decay", -1.0, "weight_decay=-1.0: must be >= 0"),
        ("dropout_epochs", -1, "dropout_epochs=-1: must be >= 0"),
        ("report_sweep_batches", 0, "report_sweep_batches=0: must be at least 1"),
        # a value of the wrong type is named as such, before a comparison could end in a TypeError
        ("lr", "0.1", "lr='0.1': must be a number or None"),
        ("batch_size", 64.0, "batch_size=64.0: must be a whole number"),
        ("epochs", 2.5, "epochs=2.5: must be a whole number"),
        ("patience", True, "patience=True: must be a whole number or None"),
        ("bf16", 1, "bf16=1: must be True or False"),
        ("device", None, "device=None: must be a string"),
    ],
)
def test_bad_config_is_refused(field, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        TrainConfig(**{field: value})
    assert err.value.problems[0][0] == field  # the library names the argument; the CLI turns it into a flag


def test_numpy_numbers_become_pythons_own_so_that_run_json_and_checkpoints_take_them():
    import numpy as np

    config = make_config(batch_size=np.int64(64), lr=np.float64(0.1), epochs=np.arange(3)[2])
    assert (config.batch_size, config.lr, config.epochs) == (64, 0.1, 2)
    assert (type(config.batch_size), type(config.lr), type(config.epochs)) == (int, float, int)
    assert json.loads(json.dumps(dataclasses.asdict(config)))["batch_size"] == 64


def test_unknown_recipe():
    with pytest.raises(ConfigError, match="recipe='slow': unknown; choose one of default, fast, speedrun, report"):
        make_config("slow")


def test_report_recipe_is_the_reports():
    config = make_config("report")
    assert (config.epochs, config.batch_size, config.momentum, config.weight_decay, config.lr_rule) == (
        23,
        64,
        0.0,
        0.0,
        "report",
    )
    assert (config.bf16, config.nesterov, config.schedule) == (False, False, "constant")


def test_recipes_are_values_and_changes_do_not_leak():
    fast = make_config("fast", epochs=3)
    assert fast.epochs == 3 and RECIPES["fast"].epochs == 10
    assert make_config("fast", lr=None) == RECIPES["fast"]  # None means "keep the recipe's value"
    # what benchmarks/results/avx512/early_1 measured as fast-early-7-1
    assert RECIPES["speedrun"] == make_config("fast", epochs=7, dropout_epochs=1, lr=0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECIPES["default"].epochs = 1  # frozen: nobody changes a recipe by accident


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in {"cpu", "cuda", "mps"}
    for name in ("meta", "xpu"):  # devices PyTorch names but the lab does not train on (they used to crash later)
        with pytest.raises(ConfigError, match=f"device='{name}': not a device the lab trains on"):
            pick_device(name)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device='cuda': PyTorch sees no CUDA GPU"):
            pick_device("cuda")


def test_pick_device_refuses_a_gpu_index_the_machine_lacks(monkeypatch):
    # accepted, the run failed later in a bare .to() (helper 97); one GPU stands in here, as the CPU machine has none
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match=r"device='cuda:7': PyTorch sees 1 GPU\(s\) here, cuda:0 to cuda:0"):
        pick_device("cuda:7")


def test_history_records():
    h = History([1.0, 0.5], [0.9, 0.6], [0.5, 0.7], [0.1, 0.05], [2.0, 2.1])
    assert h.records()[1] == {"train_loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.7, "lr": 0.05, "seconds": 2.1}
    assert h.best_epoch == 2


@pytest.mark.parametrize(
    "schedule, changes, expected",
    [
        ("step", {"step_size": 1, "gamma": 0.7}, [0.1, 0.07, 0.049, 0.0343]),
        ("step", {"step_size": 2, "gamma": 0.5}, [0.1, 0.1, 0.05, 0.05]),
        ("exponential", {"gamma": 0.9}, [0.1, 0.09, 0.081, 0.0729]),
        ("constant", {}, [0.1, 0.1, 0.1, 0.1]),
    ],
)
def test_per_epoch_schedules(schedule, changes, expected):
    from fmnist_lab.train import make_optimizer, make_scheduler

    config = TrainConfig(schedule=schedule, lr=0.1, **changes)
    optimizer = make_optimizer(Net(), config)
    scheduler, per_batch = make_scheduler(optimizer, config, steps_per_epoch=10)
    assert not per_batch
    lrs = []
    for _ in expected:
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    assert lrs == pytest.approx(expected)


def test_adamw_takes_the_configs_lr_and_decoupled_weight_decay_and_one_cycle_cycles_its_beta1():
    from fmnist_lab.train import make_optimizer, make_scheduler

    config = TrainConfig(optimizer="adamw", lr=0.01, weight_decay=0.05, epochs=2)
    optimizer = make_optimizer(Net(), config)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert (optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (0.01, 0.05)
    scheduler, per_batch = make_scheduler(optimizer, config, steps_per_epoch=10)
    assert per_batch and optimizer.param_groups[0]["betas"][0] == pytest.approx(0.95)  # one-cycle's start
    for _ in range(10):  # to the peak (30% of the 20 steps) and past it
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["betas"][0] < 0.9


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_one_cycle_cycles_sgds_momentum_but_leaves_plain_sgd_plain(momentum):
    from fmnist_lab.train import make_optimizer, make_scheduler

    config = TrainConfig(lr=0.1, momentum=momentum, epochs=2)  # the default schedule: one-cycle
    optimizer = make_optimizer(Net(), config)
    scheduler, _ = make_scheduler(optimizer, config, steps_per_epoch=10)
    momenta = []
    for _ in range(20):
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        scheduler.step()
    if momentum:  # one-cycle's own: 0.95 down to 0.85 at the LR's peak (30% of the steps), then back
        assert momenta[0] == pytest.approx(0.95) and min(momenta) == pytest.approx(0.85)
    else:  # "0 for plain SGD", as the setting's help says
        assert set(momenta) == {0.0}


def test_sgd_is_the_default_optimizer_with_the_configs_momentum():
    from fmnist_lab.train import make_optimizer

    optimizer = make_optimizer(Net(), TrainConfig(lr=0.1, momentum=0.8, nesterov=False))
    assert type(optimizer) is torch.optim.SGD
    assert (optimizer.defaults["momentum"], optimizer.defaults["nesterov"]) == (0.8, False)


def test_bf16_only_where_the_gpu_runs_it_natively(monkeypatch):
    """Colab's T4 (compute capability 7.5) emulates bf16: slower than float32, so the lab trains in float32."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert not bf16_is_native(torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert bf16_is_native(torch.device("cuda"))


def test_bf16_off_switch_makes_every_device_float32(monkeypatch):
    """FMNIST_LAB_BF16=0 times what most laptops run, even on hardware with native bf16."""
    from fmnist_lab import devices as devices_module

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(devices_module, "_cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.delenv("FMNIST_LAB_BF16", raising=False)
    assert bf16_is_native(torch.device("cuda")) and bf16_is_native(torch.device("cpu"))
    monkeypatch.setenv("FMNIST_LAB_BF16", "0")
    assert not bf16_is_native(torch.device("cuda")) and not bf16_is_native(torch.device("cpu"))
    with devices_module.autocast(torch.device("cpu"), bf16=True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    monkeypatch.setenv("FMNIST_LAB_BF16", "1")
    with devices_module.autocast(torch.device("cpu"), bf16=True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_bf16_switch_refuses_other_values(monkeypatch):
    monkeypatch.setenv("FMNIST_LAB_BF16", "off")
    with pytest.raises(ConfigError, match="FMNIST_LAB_BF16='off': must be 0"):
        bf16_is_native(torch.device("cpu"))


def test_training_steps_reuse_the_memory_they_free():
    """The lab's import keeps glibc from returning a step's freed activations to the kernel.

    With glibc's defaults (``FMNIST_LAB_KEEP_MEMORY=0``) these steps page-fault 10,000-21,000 times
    each, taking their ~100 MB back from the kernel page by page; with the lab's settings, next to never.
    """
    if sys.platform != "linux":
        if os.environ.get("CI"):
            pytest.fail("CI runs on Linux, where the lab tunes glibc's malloc: this test must run there")
        pytest.skip("glibc's malloc is tuned on Linux only")
    import resource

    torch.manual_seed(0)
    config = TrainConfig(lr=0.01)
    model = Net().to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    x, y = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
    for _ in range(5):  # the first steps grow the heap to what a step needs
        train_step(model, x, y, optimizer, config)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        train_step(model, x, y, optimizer, config)
    faults_per_step = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
    assert faults_per_step < 2_000, f"{faults_per_step:.0f} page faults a step: freed memory went back to the kernel"


def test_keep_memory_switch(monkeypatch):
    monkeypatch.setenv("FMNIST_LAB_KEEP_MEMORY", "0")
    assert not keep_freed_memory()
    monkeypatch.setenv("FMNIST_LAB_KEEP_MEMORY", "yes")
    with pytest.raises(SystemExit, match="FMNIST_LAB_KEEP_MEMORY='yes': must be 0 .glibc's defaults. or 1"):
        keep_freed_memory()
    monkeypatch.delenv("FMNIST_LAB_KEEP_MEMORY")
    assert keep_freed_memory() == (sys.platform == "linux")


def test_from_dict_refuses_unknown_settings():
    values = {**dataclasses.asdict(TrainConfig()), "warmup": 3}
    with pytest.raises(ConfigError, match="warmup=3: not a setting of TrainConfig"):
        TrainConfig.from_dict(values)


def test_make_config_refuses_a_misspelt_setting_with_the_closest_names():
    # dataclasses' bare TypeError ("unexpected keyword argument 'epoch'") named no fix (helper 97)
    with pytest.raises(ConfigError, match=r"epoch=3: not a setting of TrainConfig; did you mean epochs\?"):
        make_config("fast", epoch=3)
    with pytest.raises(ConfigError, match="warmup=5: not a setting of TrainConfig; the settings: epochs, batch_size"):
        make_config(warmup=5)


def test_training_without_a_learning_rate_says_how_to_get_one(tiny_data):
    from fmnist_lab.data import make_splits
    from fmnist_lab.train import fit

    config = TrainConfig(epochs=1, val_size=200, device="cpu")
    with pytest.raises(
        ConfigError, match=r"training needs a learning rate: give one .*experiment.pick_lr\(config, data\)"
    ):
        fit(Net(), make_splits(tiny_data, config), config, progress=False, log=lambda line: None)


def test_run_without_a_learning_rate_is_refused_before_its_folder_is_made(tiny_data, tmp_path):
    config = TrainConfig(**{**QUICK, "lr": None})
    with pytest.raises(ConfigError, match=r"experiment.pick_lr\(config, data\)"):
        run(config, tiny_data, out_dir=tmp_path / "run", progress=False, log=lambda line: None)
    assert not (tmp_path / "run").exists()


def test_a_training_set_of_one_mini_batch_is_refused_by_the_lr_finder_with_what_to_do(tiny_data):
    # its sweep of one step used to end in a ValueError's traceback before the degenerate-run warning
    config = TrainConfig(**{**QUICK, "lr": None, "limit_train": 10})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before the warning that the sweep is capped
        with pytest.raises(ConfigError, match="from 10 training images: in mini-batches of 64 they feed 1 step of"):
            pick_lr(config, tiny_data)
    # find_lr itself, called on them, refuses a sweep of fewer than 2 steps
    batches = Batches(tiny_data.train_images[:10, None].float(), tiny_data.train_labels[:10], 64)
    with pytest.raises(ConfigError, match="batch_size=64: 10 training images in mini-batches of 64 feed too few"):
        find_lr(Net(), batches, config=config)


def test_pick_lr_keeps_a_given_lr_and_hands_on_the_seeded_network(tiny_data):
    lines = []
    config, model = pick_lr(TrainConfig(**QUICK), tiny_data, log=lines.append)
    torch.manual_seed(config.seed)
    fresh = Net()
    assert config == TrainConfig(**QUICK) and lines == []  # nothing swept
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))


@pytest.mark.filterwarnings("ignore::fmnist_lab.lr_finder.LRFinderWarning")  # 16 batches cap the finder's sweep
def test_the_lr_finders_pick_trains_as_if_it_had_been_given(tiny_data):
    """The finder restores the network and the random numbers: pick_lr then run = run with that LR given."""
    picked, model = pick_lr(TrainConfig(**{**QUICK, "lr": None}), tiny_data, log=lambda line: None)
    assert picked.lr is not None
    after_pick = run(picked, tiny_data, progress=False, log=lambda line: None, model=model)
    given = run(picked, tiny_data, progress=False, log=lambda line: None)  # seeds and makes its own network
    assert without_seconds(after_pick.history) == without_seconds(given.history)


def test_evaluation_in_channels_last_layout_scores_the_same(tiny_data):
    from fmnist_lab.data import Batches, make_splits
    from fmnist_lab.train import evaluate

    splits = make_splits(tiny_data, TrainConfig(val_size=200, device="cpu"))
    torch.manual_seed(0)
    model = Net().to(memory_format=torch.channels_last)
    batches = Batches(splits.val_x, splits.val_y, 50)
    plain = evaluate(model, batches, torch.device("cpu"), bf16=False)
    channels_last = evaluate(model, batches, torch.device("cpu"), bf16=False, channels_last=True)
    assert channels_last.loss == pytest.approx(plain.loss, rel=1e-5)
    assert torch.equal(channels_last.predictions, plain.predictions)
    named = evaluate(model, batches, "cpu")  # a device may be named, as load_checkpoint's may; bf16 allowed
    assert named.total == plain.total
    with pytest.raises(ConfigError, match="device='gpu': not a device name; use auto, cpu, cuda or mps"):
        evaluate(model, batches, "gpu")


def test_evaluation_in_batches_of_eval_batch_size_scores_as_one_batch(tiny_data):
    """EVAL_BATCH_SIZE is a matter of speed only: 600 images in 256 + 256 + 88 score as in one batch of 600."""
    from fmnist_lab.data import EVAL_BATCH_SIZE, Batches, make_splits
    from fmnist_lab.train import evaluate

    splits = make_splits(tiny_data, TrainConfig(val_size=600, device="cpu"))
    torch.manual_seed(0)
    model = Net()
    whole = evaluate(model, Batches(splits.val_x, splits.val_y, 600), torch.device("cpu"), bf16=False)
    batched = evaluate(model, Batches(splits.val_x, splits.val_y, EVAL_BATCH_SIZE), torch.device("cpu"), bf16=False)
    assert EVAL_BATCH_SIZE < 600 and batched.total == whole.total == 600
    assert batched.loss == pytest.approx(whole.loss, rel=1e-5)
    assert torch.equal(batched.predictions, whole.predictions)
