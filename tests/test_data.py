import gzip

import pytest
import torch

from fmnist_lab import data as data_module
from fmnist_lab.data import (
    Batches, DataError, augment_batch, load_fashion_mnist, locate_files, normalize, pixel_stats, read_idx,
    train_val_split,
)

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
        (lambda raw: raw[:-100], "bytes, expected"),
        (lambda raw: raw[:6], "too short"),
        (lambda raw: b"\x00\x00\x08\x01" + raw[4:], "magic number"),
        (lambda raw: raw[:4] + (7).to_bytes(4, "big") + raw[8:], "header says shape"),
    ],
    ids=["truncated", "header-cut", "wrong-magic", "wrong-count"],
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


def test_project_folder_before_debian(tiny_counts, isolated_sources):
    write_idx_set(isolated_sources["project"] / "FashionMNIST" / "raw")
    write_idx_set(isolated_sources["debian"], gz=True)
    assert locate_files()[1].startswith("project data folder")


def test_debian_files_are_staged_into_the_data_folder(tiny_counts, isolated_sources, capsys):
    written = write_idx_set(isolated_sources["debian"], gz=True)
    data = load_fashion_mnist()
    assert "Debian package dataset-fashion-mnist" in capsys.readouterr().out
    raw = isolated_sources["project"] / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(data_module.FILES)
    assert torch.equal(data.test_labels, written["t10k-labels-idx1-ubyte"].long())
    assert load_fashion_mnist(verbose=False).source.startswith("project data folder")  # staged once


def test_torchvision_download_is_the_last_resort(tiny_counts, isolated_sources, monkeypatch):
    calls = []

    def fake_download(folder):
        calls.append(folder)
        write_idx_set(folder / "FashionMNIST" / "raw")
        return data_module._complete(folder)

    monkeypatch.setattr(data_module, "_download_with_torchvision", fake_download)
    assert locate_files()[1].startswith("torchvision download")
    assert calls == [isolated_sources["project"]]


def test_no_source_lists_all_four_ways(tiny_counts, isolated_sources, monkeypatch):
    def offline(folder):
        raise OSError("network unreachable")

    monkeypatch.setattr(data_module, "_download_with_torchvision", offline)
    with pytest.raises(DataError) as err:
        locate_files()
    text = str(err.value)
    for needle in ("FMNIST_DATA_DIR", "data/FashionMNIST/raw", "apt-get install -y dataset-fashion-mnist", "torchvision downloads", "network unreachable"):
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
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_fashion_mnist(tmp_path / "mine")


def test_unwritable_data_folder_says_so(tiny_counts, isolated_sources, tmp_path):
    write_idx_set(isolated_sources["debian"], gz=True)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="is not writable"):
        load_fashion_mnist(blocker / "data")


def test_pixel_stats_are_population_pixel_statistics():
    images = torch.tensor([[[0, 255]], [[255, 255]]], dtype=torch.uint8)
    mean, std = pixel_stats(images)
    assert mean == pytest.approx(0.75)
    assert std == pytest.approx(torch.tensor([0.0, 1, 1, 1]).std().item())


def test_normalize_shape_and_values():
    x = normalize(torch.full((2, 28, 28), 255, dtype=torch.uint8), mean=0.5, std=0.25)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 2.0))


def test_validation_split_is_seeded_and_disjoint():
    train, val = train_val_split(1000, 100, seed=3)
    assert len(train) == 900 and len(val) == 100
    assert len(set(train.tolist()) | set(val.tolist())) == 1000
    assert torch.equal(train_val_split(1000, 100, seed=3)[1], val)
    assert not torch.equal(train_val_split(1000, 100, seed=4)[1], val)


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
