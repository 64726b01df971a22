import gzip
import os
import stat

import pytest
import torch

from fmnist_lab import dataset as dataset_module
from fmnist_lab import files as files_module
from fmnist_lab.config import TrainConfig
from fmnist_lab.data import Batches, augment_batch, make_splits, normalize, pixel_stats, train_val_split
from fmnist_lab.dataset import DataError, load_fashion_mnist, locate_files, read_idx
from fmnist_lab.errors import ConfigError
from fmnist_lab.quick import env_switch

from .conftest import idx_bytes, write_idx_set


def test_read_idx_round_trips_plain_and_gzipped(tmp_path):
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    (tmp_path / "a").write_bytes(idx_bytes(images))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(images)))
    assert torch.equal(read_idx(tmp_path / "a", 0x0803, 5), images)
    assert torch.equal(read_idx(tmp_path / "a.gz", 0x0803, 5), images)


def test_labels_are_int64(tmp_path):
    labels = torch.tensor([0, 9, 3], dtype=torch.uint8)
    (tmp_path / "l").write_bytes(idx_bytes(labels))
    out = read_idx(tmp_path / "l", 0x0801, 3)
    assert out.dtype == torch.int64 and out.tolist() == [0, 9, 3]


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda raw: raw[:-100], "3836 bytes, expected 3936"),
        (lambda raw: raw + bytes(3 * 2**20), "3149664 bytes, expected 3936"),  # past the end: counted, not kept
        (lambda raw: raw[:6], "too short"),
        (lambda raw: b"\x00\x00\x08\x01" + raw[4:], "magic number"),
        (lambda raw: raw[:4] + (7).to_bytes(4, "big") + raw[8:], "header says shape"),
    ],
    ids=["truncated", "too-long", "header-cut", "wrong-magic", "wrong-count"],
)
def test_broken_files_name_the_file(tmp_path, mangle, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(mangle(idx_bytes(torch.zeros(5, 28, 28, dtype=torch.uint8))))
    with pytest.raises(DataError, match=message) as err:
        read_idx(path, 0x0803, 5)
    assert str(path) in str(err.value) and "delete" in str(err.value)


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(torch.zeros(5, dtype=torch.uint8)))[:20])
    with pytest.raises(DataError, match="cannot be read") as err:
        read_idx(path, 0x0801, 5)
    assert str(path) in str(err.value)


def test_label_out_of_range(tmp_path):
    (tmp_path / "l").write_bytes(idx_bytes(torch.tensor([1, 12], dtype=torch.uint8)))
    with pytest.raises(DataError, match="label 12 outside 0-9"):
        read_idx(tmp_path / "l", 0x0801, 2)


def test_explicit_folder_comes_first(tiny_counts, isolated_sources, tmp_path):
    explicit = tmp_path / "mine"
    written = write_idx_set(explicit)
    write_idx_set(isolated_sources["project"] / "FashionMNIST" / "raw", seed=2)
    data = load_fashion_mnist(explicit, verbose=False)
    assert data.source.startswith("explicit folder")
    assert torch.equal(data.train_images, written["train-images-idx3-ubyte"])


def test_environment_variable_is_an_explicit_folder(tiny_counts, isolated_sources, tmp_path, monkeypatch):
    write_idx_set(tmp_path / "env", gz=True)
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path / "env"))
    assert locate_files()[1] == f"explicit folder {tmp_path / 'env'}"


@pytest.mark.parametrize("named_by", ["argument", "environment"])
def test_a_named_folder_that_does_not_exist_is_refused_not_passed_over(
    named_by, tiny_counts, isolated_sources, tmp_path, monkeypatch
):
    write_idx_set(isolated_sources["project"] / "FashionMNIST" / "raw")  # data the lab could fall back on
    typo = tmp_path / "no-such-folder"
    if named_by == "environment":
        monkeypatch.setenv("FMNIST_DATA_DIR", str(typo))
    with pytest.raises(DataError, match="no-such-folder, named by .* is not a folder. Correct the path") as err:
        locate_files(typo if named_by == "argument" else None)
    assert ("$FMNIST_DATA_DIR" in str(err.value)) == (named_by == "environment")
    assert not typo.exists()


def test_an_empty_named_folder_is_staged_into_not_passed_over(tiny_counts, isolated_sources, tmp_path):
    write_idx_set(isolated_sources["project"] / "FashionMNIST" / "raw", seed=2)  # another set, not to be read
    written = write_idx_set(isolated_sources["debian"], gz=True)
    (tmp_path / "mine").mkdir()
    data = load_fashion_mnist(tmp_path / "mine", verbose=False)
    assert (
        data.source
        == f"Debian package dataset-fashion-mnist ({isolated_sources['debian']}), staged into {tmp_path / 'mine'}"
    )
    assert torch.equal(data.train_images, written["train-images-idx3-ubyte"])


def test_project_folder_before_debian(tiny_counts, isolated_sources):
    write_idx_set(isolated_sources["project"] / "FashionMNIST" / "raw")
    write_idx_set(isolated_sources["debian"], gz=True)
    assert locate_files()[1].startswith("project data folder")


def test_debian_files_are_staged_into_the_data_folder(tiny_counts, isolated_sources, capsys):
    written = write_idx_set(isolated_sources["debian"], gz=True)
    data = load_fashion_mnist()
    assert "Debian package dataset-fashion-mnist" in capsys.readouterr().out
    raw = isolated_sources["project"] / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(dataset_module.FILES)
    assert torch.equal(data.test_labels, written["t10k-labels-idx1-ubyte"].long())
    assert load_fashion_mnist(verbose=False).source.startswith("project data folder")  # staged once


def test_torchvision_download_is_the_last_resort(tiny_counts, isolated_sources, monkeypatch):
    calls = []

    def fake_download(folder):
        calls.append(folder)
        write_idx_set(folder / "FashionMNIST" / "raw")
        return dataset_module._complete(folder)

    monkeypatch.setattr(dataset_module, "_download_with_torchvision", fake_download)
    assert locate_files()[1].startswith("torchvision download")
    assert calls == [isolated_sources["project"]]


def test_no_source_lists_all_four_ways(tiny_counts, isolated_sources, monkeypatch):
    def offline(folder):
        raise OSError("network unreachable")

    monkeypatch.setattr(dataset_module, "_download_with_torchvision", offline)
    with pytest.raises(DataError) as err:
        locate_files()
    text = str(err.value)
    for needle in (
        "FMNIST_DATA_DIR",
        str(isolated_sources["project"] / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz"),  # this install's
        "apt-get install -y dataset-fashion-mnist",
        "torchvision downloads",
        "network unreachable",
    ):
        assert needle in text


def test_partial_folder_names_the_missing_file(tiny_counts, isolated_sources, tmp_path):
    write_idx_set(tmp_path / "mine")
    (tmp_path / "mine" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_fashion_mnist(tmp_path / "mine")


def test_truncated_file_in_folder_is_an_error_not_a_partial_dataset(tiny_counts, isolated_sources, tmp_path):
    write_idx_set(tmp_path / "mine")
    path = tmp_path / "mine" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    # all four: the one file deleted alone was then refused as a partial set (helper-86)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*delete the four dataset files in .*mine"):
        load_fashion_mnist(tmp_path / "mine")


def test_unwritable_data_folder_says_so(tiny_counts, isolated_sources, tmp_path, monkeypatch):
    write_idx_set(isolated_sources["debian"], gz=True)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(dataset_module, "default_data_dir", lambda: blocker / "data")  # cannot be created
    with pytest.raises(DataError, match="is not writable"):
        load_fashion_mnist()


def test_pixel_stats_are_the_mean_and_std_of_all_pixels_at_once():
    images = torch.tensor([[[0, 255]], [[255, 255]]], dtype=torch.uint8)
    mean, std = pixel_stats(images)
    assert mean == pytest.approx(0.75)
    # one std over all four pixels (the sample std; over 47 million pixels the correction changes the 8th digit),
    # not the mean of the per-image stds (0.354 here), the report's statistic in our reading
    assert std == pytest.approx(torch.tensor([0.0, 1, 1, 1]).std().item())


def test_pixel_stats_equal_the_float64_computation_on_random_images_and_refuse_floats():
    images = torch.randint(0, 256, (50, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    pixels = images.double() / 255
    assert pixel_stats(images) == pytest.approx((pixels.mean().item(), pixels.std().item()), rel=1e-12)
    with pytest.raises(TypeError, match="uint8 from 0 to 255; got torch.float64"):
        pixel_stats(pixels)


def test_normalize_shape_and_values():
    x = normalize(torch.full((2, 28, 28), 255, dtype=torch.uint8), mean=0.5, std=0.25)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 2.0))
    floats = torch.full((2, 28, 28), 255.0)
    assert torch.equal(normalize(floats, mean=0.5, std=0.25), x) and bool((floats == 255).all())  # input kept


def test_validation_split_is_seeded_and_disjoint():
    train, val = train_val_split(1000, 100, seed=3)
    assert len(train) == 900 and len(val) == 100
    assert len(set(train.tolist()) | set(val.tolist())) == 1000
    assert torch.equal(train_val_split(1000, 100, seed=3)[1], val)
    assert not torch.equal(train_val_split(1000, 100, seed=4)[1], val)


def test_limits_keep_the_first_training_and_test_images_and_the_statistics_of_those_trained_on(tiny_data):
    whole = make_splits(tiny_data, TrainConfig(val_size=200, device="cpu"))
    limited = make_splits(tiny_data, TrainConfig(val_size=200, limit_train=300, limit_test=50, device="cpu"))
    assert torch.equal(limited.train_y, whole.train_y[:300]) and torch.equal(limited.val_y, whole.val_y)
    assert torch.equal(limited.test_y, tiny_data.test_labels[:50]) and len(whole.test_y) == len(tiny_data.test_labels)
    assert limited.mean != whole.mean  # normalised with the statistics of the 300 images it trains on


def test_batches_cover_every_sample_once_per_pass():
    x, y = torch.arange(10).float().view(10, 1, 1, 1), torch.arange(10)
    batches = Batches(x, y, batch_size=4, shuffle=True, seed=0)
    assert len(batches) == 3 and batches.dataset_size == 10
    seen = torch.cat([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    for xb, yb in batches:
        assert torch.equal(xb.view(-1).long(), yb)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        Batches(torch.zeros(1, 1, 28, 28), torch.zeros(1), batch_size=0)


def test_augmentation_flips_and_shifts_with_background():
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 10, 0] = 1.0
    g = torch.Generator().manual_seed(0)
    flips = [augment_batch(image, 0, True, -1.0, g) for _ in range(20)]
    assert any(torch.equal(f, image.flip(3)) for f in flips) and any(torch.equal(f, image) for f in flips)
    shifted = augment_batch(image.repeat(50, 1, 1, 1), 2, False, -1.0, g)
    assert shifted.shape == (50, 1, 28, 28)
    assert (shifted == 1.0).sum() <= 50  # the lit pixel moves (or leaves the frame), never duplicates
    assert (shifted == -1.0).any()  # padding uses the background value
    positions = {tuple((s[0] == 1.0).nonzero().tolist()[0]) for s in shifted if (s == 1.0).any()}
    assert len(positions) > 3 and all(abs(r - 10) <= 2 and c <= 2 for r, c in positions)


def zero_last_images(path, n):
    """Overwrite the last ``n`` images with zeros, keeping the header and the size."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) - n * 28 * 28 :] = bytes(n * 28 * 28)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("zeroed", [40, 120], ids=["last-third-zero", "all-zero"])
def test_well_formed_file_with_wrong_images_is_refused_by_checksum(tiny_counts, isolated_sources, tmp_path, zeroed):
    write_idx_set(tmp_path / "mine")
    path = tmp_path / "mine" / "train-images-idx3-ubyte"
    zero_last_images(path, zeroed)
    assert read_idx(path, 0x0803, 120).shape == (120, 28, 28)  # header, size and shape are all right
    with pytest.raises(DataError, match="not the original Fashion-MNIST file") as err:
        load_fashion_mnist(tmp_path / "mine", verbose=False)
    text = str(err.value)
    assert str(path) in text and f"expected {dataset_module.SHA256['train-images-idx3-ubyte']}" in text
    assert "Delete the dataset files" in text and "FMNIST_LAB_ALLOW_OTHER_DATA=1" in text


def test_gzipped_files_are_checked_on_their_decompressed_bytes(tiny_counts, isolated_sources, tmp_path):
    write_idx_set(tmp_path / "good", gz=True)
    assert load_fashion_mnist(tmp_path / "good", verbose=False).train_images.shape == (120, 28, 28)
    labels = tmp_path / "good" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(torch.zeros(40, dtype=torch.uint8))))  # all "T-shirt/top"
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: right format and size"):
        load_fashion_mnist(tmp_path / "good", verbose=False)


def test_a_different_dataset_needs_the_opt_out(tiny_counts, isolated_sources, tmp_path, monkeypatch):
    written = write_idx_set(tmp_path / "digits", seed=7)
    with pytest.raises(DataError, match="SHA-256"):
        load_fashion_mnist(tmp_path / "digits", verbose=False)
    data = load_fashion_mnist(tmp_path / "digits", verbose=False, verify_checksums=False)
    assert torch.equal(data.train_images, written["train-images-idx3-ubyte"])
    monkeypatch.setenv("FMNIST_LAB_ALLOW_OTHER_DATA", "1")
    assert torch.equal(
        load_fashion_mnist(tmp_path / "digits", verbose=False).test_images, written["t10k-images-idx3-ubyte"]
    )
    with pytest.raises(DataError, match="SHA-256"):  # the argument wins over the variable
        load_fashion_mnist(tmp_path / "digits", verbose=False, verify_checksums=True)
    monkeypatch.setenv("FMNIST_LAB_ALLOW_OTHER_DATA", "false")  # a truth test would read "false" as on
    with pytest.raises(ConfigError, match="FMNIST_LAB_ALLOW_OTHER_DATA='false': must be 0 .verify the checksums. or 1"):
        load_fashion_mnist(tmp_path / "digits", verbose=False)


@pytest.mark.parametrize("setting", ["false", "no", "2", "yes"])
def test_a_switch_in_the_environment_is_0_or_1(setting, monkeypatch):
    monkeypatch.setenv("FMNIST_LAB_QUICK", setting)
    with pytest.raises(ConfigError, match=f"FMNIST_LAB_QUICK='{setting}': must be 0 .full sizes. or 1"):
        env_switch("FMNIST_LAB_QUICK", False, "full sizes", "quick mode")
    for value, expected in (("0", False), ("1", True), (" 1 ", True)):
        monkeypatch.setenv("FMNIST_LAB_QUICK", value)
        assert env_switch("FMNIST_LAB_QUICK", not expected, "off", "on") is expected
    for default in (False, True):  # empty or unset: the default
        monkeypatch.setenv("FMNIST_LAB_QUICK", "")
        assert env_switch("FMNIST_LAB_QUICK", default, "off", "on") is default
        monkeypatch.delenv("FMNIST_LAB_QUICK")
        assert env_switch("FMNIST_LAB_QUICK", default, "off", "on") is default


def hidden_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_staging_refuses_a_corrupt_debian_file_before_it_lands(tiny_counts, isolated_sources):
    write_idx_set(isolated_sources["debian"], gz=True)
    other = write_idx_set(isolated_sources["project"].parent / "other", seed=3)["t10k-images-idx3-ubyte"]
    (isolated_sources["debian"] / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(other)))
    with pytest.raises(DataError, match="sudo apt-get install --reinstall dataset-fashion-mnist") as err:
        load_fashion_mnist(verbose=False)
    assert str(isolated_sources["debian"] / "t10k-images-idx3-ubyte.gz") in str(err.value)
    raw = isolated_sources["project"] / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]


def test_interrupted_staging_leaves_no_file_under_the_real_name_and_the_next_one_works(
    tiny_counts, isolated_sources, monkeypatch
):
    written = write_idx_set(isolated_sources["debian"], gz=True)
    raw = isolated_sources["project"] / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    # What an interrupted run of the old code left: its fixed temporary name, right header and size, zero images.
    stale = raw / ".train-images-idx3-ubyte.partial"
    stale.write_bytes(idx_bytes(torch.zeros(120, 28, 28, dtype=torch.uint8)))
    real_copy = dataset_module._copy_and_hash

    def interrupted_half_way(src, dst):
        dst.write(src.read(784 * 60 + 16))  # the header and half of the images
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset_module, "_copy_and_hash", interrupted_half_way)
    with pytest.raises(KeyboardInterrupt):
        load_fashion_mnist(verbose=False)
    assert list(raw.iterdir()) == [stale]  # nothing under a real name, and no new temporary file

    monkeypatch.setattr(dataset_module, "_copy_and_hash", real_copy)
    data = load_fashion_mnist(verbose=False)
    assert torch.equal(data.train_images, written["train-images-idx3-ubyte"])  # the stale file played no part
    assert stale.read_bytes()[16:] == bytes(120 * 784)


def test_two_stagings_at_once_write_separate_temporary_files(tiny_counts, isolated_sources, monkeypatch):
    written = write_idx_set(isolated_sources["debian"], gz=True)
    raw = isolated_sources["project"] / "FashionMNIST" / "raw"
    real_copy = dataset_module._copy_and_hash
    temporaries_seen = []

    def with_a_second_staging_in_between(src, dst):
        if not temporaries_seen:
            temporaries_seen.append(hidden_files(raw))
            dataset_module._stage_from_debian(isolated_sources["project"])  # runs while the first is mid-file
        elif len(temporaries_seen) == 1:
            temporaries_seen.append(hidden_files(raw))
        return real_copy(src, dst)

    monkeypatch.setattr(dataset_module, "_copy_and_hash", with_a_second_staging_in_between)
    dataset_module._stage_from_debian(isolated_sources["project"])
    first, second = temporaries_seen
    assert len(first) == 1 and len(second) == 2 and first[0] in second  # each staging had its own file
    assert first[0].startswith(".train-images-idx3-ubyte.") and first[0].endswith(".partial")
    assert hidden_files(raw) == []
    data = load_fashion_mnist(verbose=False)  # checksums included: both writers left whole files
    assert torch.equal(data.train_images, written["train-images-idx3-ubyte"])


def test_staging_never_writes_through_a_symlink(tiny_counts, isolated_sources, tmp_path):
    write_idx_set(isolated_sources["debian"], gz=True)
    raw = isolated_sources["project"] / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    victim = tmp_path / "precious.txt"
    victim.write_text("do not overwrite")
    (raw / ".train-images-idx3-ubyte.partial").symlink_to(victim)  # the old fixed temporary name
    (raw / "train-images-idx3-ubyte").symlink_to(victim)  # the real name
    dataset_module._stage_from_debian(isolated_sources["project"])
    assert victim.read_text() == "do not overwrite"
    staged = raw / "train-images-idx3-ubyte"
    assert not staged.is_symlink() and staged.stat().st_size == 16 + 120 * 784
    assert load_fashion_mnist(verbose=False).train_images.shape == (120, 28, 28)


def test_staged_files_follow_the_umask_not_mkstemps_0600(tiny_counts, isolated_sources, monkeypatch):
    write_idx_set(isolated_sources["debian"], gz=True)
    mask = os.umask(0o022)  # read the process's umask the only way there is
    os.umask(mask)
    assert files_module.UMASK == mask  # read once, at import
    monkeypatch.setattr(files_module, "UMASK", 0o022)
    dataset_module._stage_from_debian(isolated_sources["project"])
    raw = isolated_sources["project"] / "FashionMNIST" / "raw"
    assert {stat.S_IMODE(p.stat().st_mode) for p in raw.iterdir()} == {0o644}


def test_a_file_without_read_permission_is_told_to_fix_the_permission_not_to_delete(tmp_path, monkeypatch):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(torch.tensor([1, 2], dtype=torch.uint8)))

    def forbidden(*args, **kwargs):  # what open raises for a user without read access (root is never refused)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("builtins.open", forbidden)
    with pytest.raises(DataError, match="Permission denied.. Give yourself read access to it .chmod u.r.") as err:
        read_idx(path, 0x0801, 2)
    assert "Delete it" not in str(err.value)
