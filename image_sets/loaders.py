"""Data sets by name: the embedded `digits`, torchvision's vision sets, `folder:PATH` and `npz:PATH`.

Every loader returns an `ImageData` held in memory as uint8, resized to `image_size` when one is given. Search uses
only the training split; the test split is the data set's own, or a fixed stratified holdout (seed 0, 20 %) where
the data set has none, so every run and method sees the same test images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from run_kit import InputError

from .data import ImageData, resize, stratified_holdout

SPLITS = ("train", "test")


def _from_arrays(x: np.ndarray | torch.Tensor, y, classes: list[str] | None, name: str, hflip: bool = False
                 ) -> ImageData:
    x = torch.as_tensor(np.asarray(x))
    if x.dtype != torch.uint8:
        raise InputError(f"{name}: images must be uint8, got {x.dtype}")
    if x.dim() == 3:
        x = x[:, None]
    elif x.dim() == 4:
        x = x.permute(0, 3, 1, 2)
    else:
        raise InputError(f"{name}: images must be [N,H,W] or [N,H,W,C], got shape {tuple(x.shape)}")
    y = torch.as_tensor(np.asarray(y)).long().flatten()
    if len(y) != len(x):
        raise InputError(f"{name}: {len(x)} images but {len(y)} labels")
    if len(y) == 0:
        raise InputError(f"{name}: no images")
    if y.min() < 0:
        raise InputError(f"{name}: labels must be non-negative integers")
    num_classes = int(y.max()) + 1
    classes = classes or [str(k) for k in range(num_classes)]
    return ImageData(x.contiguous(), y, list(classes), name, hflip)


def _holdout_split(data: ImageData, split: str) -> ImageData:
    train, test = stratified_holdout(data.y)
    return data.subset(train if split == "train" else test)


def _digits(split: str, root: str, download: bool) -> ImageData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return _holdout_split(_from_arrays(x, digits.target, [str(k) for k in range(10)], "digits"), split)


def _torchvision(cls_name: str, hflip: bool) -> Callable[[str, str, bool], ImageData]:
    def load(split: str, root: str, download: bool) -> ImageData:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        kwargs = {"split": split} if cls_name == "SVHN" else {"train": split == "train"}
        try:
            dataset = cls(root=root, download=download, **kwargs)
        except RuntimeError as err:
            hint = "" if download else "; pass --download to fetch it"
            raise InputError(f"{cls_name} not found under --data-root {root} ({err}){hint}") from None
        x = dataset.data
        if cls_name == "SVHN":
            x = np.asarray(x).transpose(0, 2, 3, 1)
            labels = dataset.labels
        else:
            labels = dataset.targets
        if isinstance(x, torch.Tensor):
            x = x.numpy()
        classes = [str(c) for c in getattr(dataset, "classes", [])] or None
        return _from_arrays(np.asarray(x, dtype=np.uint8), labels, classes, cls_name.lower(), hflip)

    return load


def _npz(path: str) -> Callable[[str, str, bool], ImageData]:
    def load(split: str, root: str, download: bool) -> ImageData:
        file = Path(path)
        if not file.is_file():
            raise InputError(f"npz data set {file} does not exist")
        try:
            arrays = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read npz data set {file}: {err}") from None
        if "x" not in arrays or "y" not in arrays:
            raise InputError(f"npz data set {file} needs arrays 'x' (uint8 [N,H,W] or [N,H,W,C]) and 'y' (int)")
        if "x_test" in arrays and "y_test" in arrays:
            keys = ("x", "y") if split == "train" else ("x_test", "y_test")
            return _from_arrays(arrays[keys[0]], arrays[keys[1]], None, file.stem)
        return _holdout_split(_from_arrays(arrays["x"], arrays["y"], None, file.stem), split)

    return load


def _folder(path: str, image_size: int | None) -> Callable[[str, str, bool], ImageData]:
    def load(split: str, root: str, download: bool) -> ImageData:
        from torchvision.datasets import ImageFolder

        if not Path(path).is_dir():
            raise InputError(f"image folder {path} does not exist")
        try:
            folder = ImageFolder(path)
        except (FileNotFoundError, RuntimeError) as err:
            raise InputError(f"cannot read image folder {path}: {err}") from None
        images = [folder.loader(file) for file, _ in folder.samples]
        mode = "L" if all(im.mode in ("L", "1") for im in images) else "RGB"
        sizes = {im.size for im in images}
        if image_size is None and len(sizes) > 1:
            raise InputError(f"images in {path} differ in size ({len(sizes)} sizes); pass --image-size")
        size = (image_size, image_size) if image_size is not None else None
        arrays = [np.asarray(im.convert(mode).resize(size) if size and im.size != size else im.convert(mode))
                  for im in images]
        data = _from_arrays(np.stack(arrays), [label for _, label in folder.samples], list(folder.classes),
                            Path(path).name, hflip=mode == "RGB")
        return _holdout_split(data, split)

    return load


TORCHVISION_SETS = {"mnist": ("MNIST", False), "fashion_mnist": ("FashionMNIST", False), "kmnist": ("KMNIST", False),
                    "cifar10": ("CIFAR10", True), "cifar100": ("CIFAR100", True), "svhn": ("SVHN", False)}
DATASET_NAMES = ("digits", *TORCHVISION_SETS, "folder:PATH", "npz:PATH")


def load_dataset(spec: str, split: str = "train", root: str = "data", download: bool = False,
                 image_size: int | None = None) -> ImageData:
    """Load one split of a data set named by `spec` (see DATASET_NAMES), resized to `image_size` if given."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    if spec == "digits":
        loader = _digits
    elif spec in TORCHVISION_SETS:
        loader = _torchvision(*TORCHVISION_SETS[spec])
    elif spec.startswith("npz:"):
        loader = _npz(spec[4:])
    elif spec.startswith("folder:"):
        loader = _folder(spec[7:], image_size)
    else:
        raise InputError(f"unknown data set '{spec}'; known: {', '.join(DATASET_NAMES)}")
    return resize(loader(split, root, download), image_size)
