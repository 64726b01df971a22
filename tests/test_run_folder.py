"""A run folder holds one run: nothing overwritten or mixed without being asked, nothing half-written."""

import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from fmnist_lab import files, run_folder
from fmnist_lab.checkpoint import CheckpointError, load_checkpoint
from fmnist_lab.cli import main
from fmnist_lab.config import TrainConfig
from fmnist_lab.dataset import DataError
from fmnist_lab.errors import DegenerateRunWarning, TrainingDiverged
from fmnist_lab.experiment import degenerate_settings, resume, run
from fmnist_lab.run_folder import RunFolder, RunFolderError, latest_run, new_run_folder

# runs to hold, not to learn: two batches an epoch
QUICK = dict(epochs=2, batch_size=64, limit_train=128, val_size=200, lr=0.05, bf16=False, device="cpu")
pytestmark = pytest.mark.filterwarnings("ignore:limit_train=128:fmnist_lab.errors.DegenerateRunWarning")


def quiet_run(data, out_dir, config, **kwargs):
    return run(config, data, out_dir, progress=False, log=lambda line: None, **kwargs)


def test_a_folder_holding_a_run_is_refused_and_kept(tiny_data, tmp_path):
    quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    before = {name: (tmp_path / name).read_bytes() for name in ("best.pt", "last.pt", "metrics.json", "run.json")}
    # a finished run cannot be resumed: the message once offered it
    with pytest.raises(RunFolderError, match="already holds a finished run .*; replace it .*overwrite=True") as err:
        quiet_run(tiny_data, tmp_path, TrainConfig(**{**QUICK, "seed": 1}))
    assert "resume" not in str(err.value)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert not (tmp_path / ".lock").exists()


def test_overwrite_replaces_the_whole_run(tiny_data, tmp_path):
    first = quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    second = quiet_run(tiny_data, tmp_path, TrainConfig(**{**QUICK, "seed": 1, "epochs": 1}), overwrite=True)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["run_id"] == second.metrics["run_id"] != first.metrics["run_id"]
    assert load_checkpoint(tmp_path / "best.pt").metrics["run_id"] == second.metrics["run_id"]
    assert metrics["epochs_run"] == 1
    assert not (tmp_path / run_folder.REPLACED).exists()  # the old run, set aside, went with the first epoch


@pytest.mark.parametrize("stop", ["diverges", "interrupted"])
def test_a_replacing_run_that_stops_before_its_first_epoch_puts_the_old_run_back(
    tiny_data, tmp_path, stop, monkeypatch
):
    quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    before = {name: (tmp_path / name).read_bytes() for name in run_folder.RUN_FILES}
    if stop == "interrupted":

        def interrupted(*args):
            assert not (tmp_path / "best.pt").exists()  # set aside while the new run trains
            raise KeyboardInterrupt  # Ctrl+C in the first epoch

        monkeypatch.setattr("fmnist_lab.train.train_step", interrupted)
    lines = []
    with pytest.raises(TrainingDiverged if stop == "diverges" else KeyboardInterrupt):
        config = TrainConfig(**{**QUICK, "lr": 1e6, "batch_size": 16})  # 8 steps in the first epoch: it diverges
        run(config, tiny_data, tmp_path, overwrite=True, progress=False, log=lines.append)
    assert {name: (tmp_path / name).read_bytes() for name in run_folder.RUN_FILES} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(run_folder.RUN_FILES)  # no lock, nothing aside
    assert f"{tmp_path} holds the run you meant to replace again" in lines[-1]


@pytest.mark.parametrize("new_run_saved_an_epoch", [False, True])
def test_an_overwrite_that_was_killed_is_settled_when_the_folder_is_next_used(
    tiny_data, tmp_path, new_run_saved_an_epoch
):
    quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    old = {name: (tmp_path / name).read_bytes() for name in run_folder.RUN_FILES}
    killed = RunFolder(tmp_path)
    killed.claim(overwrite=True)  # then killed (no exception reached Python): its lock stays, the old run aside
    (tmp_path / "run.json").write_text("{}")  # the new run's first file
    if new_run_saved_an_epoch:
        (tmp_path / "last.pt").write_bytes(b"the new run's first epoch")
    (tmp_path / ".lock").write_text(json.dumps({"pid": 2**22 + 1, "host": os.uname().nodename}))  # a dead process
    if new_run_saved_an_epoch:  # the new run had replaced the old one: what was set aside goes
        with pytest.raises(RunFolderError, match="already holds an interrupted run .*resume it"):
            quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
        assert (tmp_path / "last.pt").read_bytes() == b"the new run's first epoch"
    else:  # the old run is back, and refused as any run is without overwrite
        with pytest.raises(
            RunFolderError, match="already holds a finished run .run.json, last.pt, best.pt, metrics.json"
        ):
            quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
        assert {name: (tmp_path / name).read_bytes() for name in run_folder.RUN_FILES} == old
    assert not (tmp_path / run_folder.REPLACED).exists()


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_first(tiny_data, tmp_path):
    holder = RunFolder(tmp_path)
    holder.claim()  # as a run that is still writing would
    with pytest.raises(RunFolderError, match=f"another run \\(process {os.getpid()} on .*\\) is writing to"):
        quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    holder.release()
    quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))  # free again
    assert not (tmp_path / ".lock").exists()


def test_a_lock_taken_between_the_check_and_the_claim_is_refused_with_what_to_do(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path)
    real_check = folder.check

    def check_then_lose_the_race(resume=False, overwrite=False):
        real_check(resume, overwrite)
        dead = subprocess.Popen(["true"])
        dead.wait()  # the other run took the lock, then died: its holder reads as no one
        (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": "x"}))

    monkeypatch.setattr(folder, "check", check_then_lose_the_race)
    with pytest.raises(RunFolderError) as refused:
        folder.claim()
    assert "None" not in str(refused.value) and "wait for it to finish, or choose another output folder" in str(
        refused.value
    )


def test_the_lock_of_a_killed_run_is_taken_over(tiny_data, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no process
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": "then"}))
    quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    assert (tmp_path / "metrics.json").is_file() and not (tmp_path / ".lock").exists()


def test_on_windows_a_lock_holder_is_looked_up_not_signalled(monkeypatch):
    # os.kill(pid, 0) is no liveness check on Windows: signal 0 is CTRL_C_EVENT there
    looked_up = []
    windows_os = SimpleNamespace(name="nt", kill=lambda *args: pytest.fail("os.kill called on Windows"))
    monkeypatch.setattr(run_folder, "os", windows_os)
    monkeypatch.setattr(run_folder, "_windows_process_alive", lambda pid: looked_up.append(pid) or False)
    assert not run_folder._process_alive(4321)
    assert looked_up == [4321]


def test_the_lock_is_released_when_training_is_interrupted(tiny_data, tmp_path):
    def interrupt(state):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK), on_epoch_end=interrupt)
    assert not (tmp_path / ".lock").exists() and (tmp_path / "last.pt").is_file()


def interrupted_run(data, folder, **changes):
    def stop_after_first_epoch(state):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quiet_run(data, folder, TrainConfig(**{**QUICK, "epochs": 3, **changes}), on_epoch_end=stop_after_first_epoch)


def test_resume_keeps_the_runs_own_resolved_settings(tiny_data, tmp_path):
    interrupted_run(tiny_data, tmp_path)
    settings = json.loads((tmp_path / "run.json").read_text())
    assert set(settings) == {"run_id", "config"}  # the LR and the device are in the config, resolved
    assert settings["config"]["lr"] == QUICK["lr"] and settings["config"]["device"] == "cpu"
    resumed = resume(tmp_path, tiny_data, progress=False, log=lambda line: None)
    assert len(resumed.history) == 3 and resumed.config == TrainConfig.from_dict(settings["config"])
    assert json.loads((tmp_path / "metrics.json").read_text())["config"] == settings["config"]


def test_a_resume_from_the_command_line_reads_run_json_once(tiny_data, tmp_path, monkeypatch, capsys):
    interrupted_run(tiny_data, tmp_path)
    reads = []
    read_settings = RunFolder.read_settings
    monkeypatch.setattr(RunFolder, "read_settings", lambda folder: reads.append(folder.path) or read_settings(folder))
    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", lambda data_dir: tiny_data)
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 0
    assert reads == [tmp_path]
    out = capsys.readouterr().out
    assert f"Resuming {tmp_path} after epoch 1" in out and "best epoch" in out
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs_run"] == 3


def test_a_run_folder_of_an_earlier_version_is_refused_with_what_to_do(tiny_data, tmp_path):
    interrupted_run(tiny_data, tmp_path)
    path = tmp_path / "run.json"
    settings = json.loads(path.read_text())
    path.write_text(json.dumps({**settings, "lr": 0.1, "config": {**settings["config"], "lr": None}}))
    with pytest.raises(RunFolderError, match="earlier version of the lab.* best.pt still loads.* start a new run"):
        resume(tmp_path, tiny_data, progress=False, log=lambda line: None)


def test_a_new_run_folder_under_a_file_is_refused_in_a_sentence(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(RunFolderError, match="cannot create a run folder in .*runs: .*; choose another parent folder"):
        new_run_folder(tmp_path / "runs")


def test_resuming_a_folder_that_does_not_exist_creates_nothing(tiny_data, tmp_path):
    typo = tmp_path / "typo" / "deeper"
    with pytest.raises(RunFolderError, match="typo/deeper is not the output folder of an interrupted fmnist-lab run"):
        resume(typo, tiny_data, progress=False, log=lambda line: None)
    assert list(tmp_path.iterdir()) == []


def test_resume_refuses_a_best_pt_copied_over_last_pt(tiny_data, tmp_path):
    interrupted_run(tiny_data, tmp_path)
    (tmp_path / "best.pt").replace(tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="last.pt holds no training state .a best.pt copied over it"):
        resume(tmp_path, tiny_data, progress=False, log=lambda line: None)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda state: {**state, "history": {}}, "its history is not the train_loss, val_loss"),
        (lambda state: {k: v for k, v in state.items() if k != "model"}, "no model"),
        (lambda state: {**state, "history": {**state["history"], "lr": []}}, "its history.s lists are not one entry"),
        (lambda state: ["not", "a", "dict"], "a list, not a dict"),
    ],
    ids=["empty-history", "no-model", "short-history", "a-list"],
)
def test_resume_refuses_a_damaged_training_state_naming_it(tiny_data, tmp_path, damage, problem):
    interrupted_run(tiny_data, tmp_path)
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    torch.save({**payload, "training_state": damage(payload["training_state"])}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=f"last.pt holds a damaged training state \\({problem}.*train again"):
        resume(tmp_path, tiny_data, progress=False, log=lambda line: None)
    assert main(["train", "--resume", str(tmp_path)]) == 1  # the command line says the same, in one line


def test_resume_refuses_a_last_pt_from_another_run(tiny_data, tmp_path):
    interrupted_run(tiny_data, tmp_path / "a")
    interrupted_run(tiny_data, tmp_path / "b")
    (tmp_path / "b" / "last.pt").replace(tmp_path / "a" / "last.pt")
    with pytest.raises(CheckpointError, match="does not belong to the run in run.json .*mixes two runs"):
        resume(tmp_path / "a", tiny_data, progress=False, log=lambda line: None)


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: "{ not json",
        lambda s: json.dumps({**json.loads(s), "config": {**json.loads(s)["config"], "lr": "fast"}}),
        lambda s: json.dumps({**json.loads(s), "config": {**json.loads(s)["config"], "lr": float("nan")}}),
        lambda s: json.dumps({**json.loads(s), "config": {**json.loads(s)["config"], "lr": None}}),
        lambda s: json.dumps({**json.loads(s), "config": {**json.loads(s)["config"], "warmup": 3}}),
        lambda s: json.dumps({**json.loads(s), "config": {**json.loads(s)["config"], "schedule": "cosine"}}),
        lambda s: json.dumps({**json.loads(s), "config": ["not", "a", "dict"]}),
        lambda s: json.dumps({k: v for k, v in json.loads(s).items() if k != "run_id"}),
    ],
    ids=["not-json", "lr-text", "lr-nan", "no-lr", "unknown-setting", "bad-schedule", "config-list", "no-run-id"],
)
def test_a_damaged_run_json_is_refused_with_a_message(tiny_data, tmp_path, edit):
    interrupted_run(tiny_data, tmp_path)
    path = tmp_path / "run.json"
    path.write_text(edit(path.read_text()))
    with pytest.raises(RunFolderError, match="run.json is damaged .* cannot be resumed"):
        resume(tmp_path, tiny_data, progress=False, log=lambda line: None)
    assert main(["train", "--resume", str(tmp_path)]) == 1  # the command line says the same, in one line


def test_a_finished_run_is_not_resumed(tiny_data, tmp_path):
    quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    before = (tmp_path / "metrics.json").read_text()
    with pytest.raises(RunFolderError, match="holds a finished run .* nothing to resume: score it with"):
        resume(tmp_path, tiny_data, progress=False, log=lambda line: None)
    assert (tmp_path / "metrics.json").read_text() == before  # it used to be rewritten by a second test pass
    assert main(["train", "--resume", str(tmp_path)]) == 1  # the command line refuses it too, before the data loads
    assert RunFolder(tmp_path).read_settings().config.epochs == QUICK["epochs"]  # its settings can still be read


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without Apple's MPS")
def test_a_run_on_a_device_this_machine_lacks_is_not_called_damaged(tiny_data, tmp_path):
    interrupted_run(tiny_data, tmp_path)
    path = tmp_path / "run.json"
    settings = json.loads(path.read_text())
    path.write_text(json.dumps({**settings, "config": {**settings["config"], "device": "mps"}}))
    with pytest.raises(RunFolderError, match="is a run on device 'mps', and Apple's MPS is not available here: .*"):
        resume(tmp_path, tiny_data, progress=False, log=lambda line: None)


def test_cli_refuses_an_existing_run_before_loading_data(tiny_data, tmp_path, monkeypatch, capsys):
    quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", lambda *a: pytest.fail("the data loaded first"))
    assert main(["train", "--out", str(tmp_path)]) == 1
    assert "already holds a finished run" in capsys.readouterr().err


def test_cli_removes_the_folder_it_made_when_it_stops_before_writing_in_it(tmp_path, monkeypatch, capsys):
    # `train --data-dir /missing --out DIR` left an empty DIR behind (helper-86); a folder that was there stays
    def no_data(*args):
        raise DataError("no Fashion-MNIST in /missing")

    monkeypatch.setattr("fmnist_lab.dataset.load_fashion_mnist", no_data)
    assert main(["train", "--out", str(tmp_path / "new" / "run")]) == 1
    assert "no Fashion-MNIST in /missing" in capsys.readouterr().err
    assert not (tmp_path / "new" / "run").exists()
    (tmp_path / "mine").mkdir()
    assert main(["train", "--out", str(tmp_path / "mine")]) == 1
    assert (tmp_path / "mine").is_dir()


def test_a_run_stopped_before_its_first_epoch_is_told_to_start_again_both_ways(tiny_data, tmp_path):
    # run.json without last.pt: train said "resume it", resume said "not an interrupted run" (helper-86)
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(RunFolderError, match="stopped before it saved its first epoch .*replace it") as err:
        quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    assert "resume it" not in str(err.value)
    with pytest.raises(RunFolderError, match="stopped before it saved its first epoch .*nothing to resume"):
        resume(tmp_path, tiny_data, progress=False, log=lambda line: None)


def test_a_file_a_killed_run_was_writing_is_removed_when_the_folder_is_next_used(tiny_data, tmp_path):
    # SIGKILL during a save left an 8.7 MB .last.pt.<random>.partial that nothing removed (helper-86)
    partial = tmp_path / ".last.pt.x1y2z3.partial"
    partial.write_bytes(b"half a checkpoint")
    quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    assert not partial.exists()
    assert (tmp_path / "best.pt").is_file()


def test_files_get_the_usual_permissions(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "UMASK", 0o022)  # what the process's umask was at import
    quiet_run(tiny_data, tmp_path, TrainConfig(**QUICK))
    for name in ("best.pt", "last.pt", "metrics.json", "run.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_degenerate_settings_are_named():
    config = TrainConfig(epochs=30, patience=1, batch_size=512, max_shift=10)
    problems = [str(problem) for problem in degenerate_settings(config, train_size=1)]
    assert len(problems) == 4
    assert problems[0].startswith("val_size=5000: only 1 training images")  # no limit: the split left so few
    assert problems[1] == "batch_size=512: not smaller than the 1 training images: one step per epoch"
    assert problems[2].startswith("max_shift=10: shifts that large can push much of a garment out")
    assert problems[3].startswith("patience=1: shorter than the one-cycle warm-up (9 of 30 epochs)")
    assert degenerate_settings(TrainConfig(patience=10, max_shift=4), train_size=55_000) == []
    assert "the LR finder's pick is a guess" in problems[0]  # no LR given: the finder picks one
    limited = degenerate_settings(TrainConfig(lr=0.01, limit_train=500), train_size=500)[0]
    assert limited.problem[:2] == ("limit_train", 500) and "LR finder" not in str(limited)  # given: no finder runs


def test_a_degenerate_run_warns(tiny_data):
    with pytest.warns(DegenerateRunWarning, match="one step per epoch"):
        quiet_run(tiny_data, None, TrainConfig(**{**QUICK, "epochs": 1, "batch_size": 1024}))


def test_new_run_folders_never_collide_and_latest_finds_the_newest_finished(tiny_data, tmp_path):
    first = new_run_folder(tmp_path)
    assert first.is_dir() and not any(first.iterdir())  # created, empty: a run can use it
    second = new_run_folder(tmp_path)
    assert second != first and second.is_dir()
    assert latest_run(tmp_path) is None
    quiet_run(tiny_data, first, TrainConfig(**QUICK))
    quiet_run(tiny_data, second, TrainConfig(**QUICK))
    os.utime(first / "metrics.json", (1, 1))  # an old run
    assert latest_run(tmp_path) == second
    interrupted_run(tiny_data, tmp_path / "unfinished")
    assert latest_run(tmp_path) == second  # no metrics.json: not finished


def test_a_folder_name_taken_by_someone_else_is_skipped_not_shared(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101-120000")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "20260101-120000").mkdir()  # another notebook claimed this second's name first
    (tmp_path / "runs" / "20260101-120000-1").mkdir()
    assert new_run_folder(tmp_path / "runs") == tmp_path / "runs" / "20260101-120000-2"


def test_runs_started_at_once_in_many_threads_each_get_a_folder_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101-120000")  # all in the same second
    start = threading.Barrier(8)

    def claim(_):
        start.wait()
        return new_run_folder(tmp_path / "runs")

    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(claim, range(8)))
    assert len(set(folders)) == 8 and all(folder.is_dir() for folder in folders)


def test_latest_run_reads_only_finished_runs_of_its_own_parent(tmp_path):
    def finished(folder: Path, mtime: int) -> Path:
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text("{}")
        os.utime(folder / "metrics.json", (mtime, mtime))
        return folder

    own = finished(tmp_path / "notebook03" / "a", 100)
    finished(tmp_path / "notebook06-fallback" / "b", 200)  # newer, but another notebook's fallback
    finished(tmp_path / "notebook03" / "a" / "nested", 300)  # not a run folder of notebook03 itself
    rerun = finished(tmp_path / "notebook03" / "c", 400)
    (rerun / ".lock").write_text("{}")  # an --overwrite rerun is writing there now
    assert latest_run(tmp_path / "notebook03") == own
    assert latest_run(tmp_path / "notebook05") is None
