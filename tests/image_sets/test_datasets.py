import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from image_sets import Augment, BatchStream, ImageData, Preprocess, load_dataset, split_indices, stratified_holdout
from run_kit import InputError


def _write_idx(path, array: np.ndarray, gz: bool = False):
    """The MNIST IDX format: magic (0, 0, 0x08 = ubyte, ndim), big-endian int32 dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")])
def test_torchvision_mnist_family_reads_real_idx_files(tmp_path, name, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 12)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    train = load_dataset(name, "train", root=str(tmp_path))
    test = load_dataset(name, "test", root=str(tmp_path), image_size=16)
    assert train.x.shape == (30, 1, 28, 28) and train.x.dtype == torch.uint8
    assert test.x.shape == (12, 1, 16, 16) and test.num_classes == 10
    assert train.y.tolist() == [k % 10 for k in range(30)]


def test_missing_torchvision_data_says_how_to_get_it(tmp_path):
    with pytest.raises(InputError, match="--download"):
        load_dataset("cifar10", "train", root=str(tmp_path))


def test_digits_is_embedded_with_a_fixed_disjoint_holdout():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test", image_size=16)
    assert len(train) + len(test) == 1797 and train.x.shape[1:] == (1, 8, 8) and test.x.shape[1:] == (1, 16, 16)
    assert train.num_classes == 10 and test.y.bincount().min() >= 30
    again = load_dataset("digits", "test", image_size=16)
    assert torch.equal(test.x, again.x)


def test_npz_with_and_without_test_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (50, 10, 10, 3), dtype=np.uint8), np.arange(50) % 5
    np.savez(tmp_path / "holdout.npz", x=x, y=y)
    spec = f"npz:{tmp_path}/holdout.npz"
    train, test = load_dataset(spec, "train"), load_dataset(spec, "test")
    assert train.x.shape == (40, 3, 10, 10) and len(test) == 10 and train.num_classes == 5
    assert not set(map(tuple, train.x.flatten(1).tolist())) & set(map(tuple, test.x.flatten(1).tolist()))
    np.savez(tmp_path / "split.npz", x=x[:, :, :, 0], y=y, x_test=x[:7, :, :, 0], y_test=y[:7])
    assert load_dataset(f"npz:{tmp_path}/split.npz", "test").x.shape == (7, 1, 10, 10)


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 8, 8), np.float32), "y": np.zeros(4, int)}, "uint8"),
    ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(3, int)}, "4 images but 3 labels"),
    ({"images": np.zeros((4, 8, 8), np.uint8)}, "needs arrays 'x'"),
])
def test_bad_npz_files_are_clear_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=message):
        load_dataset(f"npz:{tmp_path}/bad.npz")
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(f"npz:{tmp_path}/missing.npz")


def test_image_folder_class_per_directory(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog", "eel"):
        (tmp_path / label).mkdir()
        for k in range(10):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / label / f"{k}.png")
    train = load_dataset(f"folder:{tmp_path}", "train")
    test = load_dataset(f"folder:{tmp_path}", "test", image_size=8)
    assert train.classes == ["cat", "dog", "eel"] and train.x.shape == (24, 3, 12, 12)
    assert test.x.shape == (6, 3, 8, 8) and train.hflip
    Image.fromarray(rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(tmp_path / "cat" / "odd.png")
    with pytest.raises(InputError, match="--image-size"):
        load_dataset(f"folder:{tmp_path}", "train")
    assert load_dataset(f"folder:{tmp_path}", "train", image_size=12).x.shape[1:] == (3, 12, 12)


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(InputError, match="known: digits, mnist"):
        load_dataset("imagenet")


def test_stratified_holdout_is_fixed_and_disjoint():
    y = torch.arange(100) % 4
    train, test = stratified_holdout(y)
    assert len(test) == 20 and not set(train.tolist()) & set(test.tolist())
    assert torch.equal(test, stratified_holdout(y)[1]) and test.numel() == y[test].bincount().sum()


def _data(n=40):
    return ImageData(torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8), torch.arange(n) % 4, list("abcd"))


def test_batch_stream_resumes_at_the_exact_next_batch():
    data = _data()
    pre = Preprocess(torch.tensor([0.5]), torch.tensor([0.25]), Augment(crop_padding=1, hflip=True, cutout=4))
    stream = BatchStream(data, torch.arange(40), 16, seed=3, preprocess=pre)
    for _ in range(5):  # 2 batches per pass: crosses into a new permutation
        next(stream)
    state = stream.state_dict()
    expected = [next(stream) for _ in range(3)]
    again = BatchStream(data, torch.arange(40), 16, seed=3, preprocess=pre)
    again.load_state_dict(state)
    for (x1, y1), (x2, y2) in zip(expected, [next(again) for _ in range(3)]):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_batch_stream_visits_every_index_once_per_pass():
    data = _data()
    stream = BatchStream(data, torch.arange(0, 40, 2), 5, seed=0, preprocess=Preprocess(torch.zeros(1), torch.ones(1)),
                         augment=False)
    seen = torch.cat([next(stream)[0].flatten(1) for _ in range(4)])
    assert torch.equal(seen.sort(0).values, (data.x[::2].float() / 255).flatten(1).sort(0).values)


def test_cutout_zeroes_a_square_of_the_given_length():
    pre = Preprocess(torch.zeros(1), torch.ones(1), Augment(cutout=4))
    x = pre(torch.full((200, 1, 16, 16), 255, dtype=torch.uint8), torch.Generator().manual_seed(0))
    holes = (x == 0).flatten(1).sum(1)
    assert holes.max() == 16 and holes.min() >= 4  # 4x4 inside, clipped at the border


def test_split_indices_is_a_seeded_partition():
    a, b = split_indices(11, [0.5, 0.5], seed=1)
    assert sorted(torch.cat([a, b]).tolist()) == list(range(11)) and len(a) in (5, 6)
    assert torch.equal(a, split_indices(11, [0.5, 0.5], seed=1)[0])
