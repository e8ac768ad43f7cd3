"""Data sets by name: the embedded `digits`, torchvision's vision sets, `folder:PATH` and `npz:PATH`.

Every loader returns an `ImageData` held in memory as uint8, resized to `image_size` when one is given. Search uses
only the training split; the test split is the data set's own, or a fixed stratified holdout (seed 0, 20 %) where
the data set has none, so every run and method sees the same test images.

User files are checked before anything is allocated from them: labels must be integers; labels that are not
0..n-1 (say 0, 1000, 2000) are remapped to 0..n-1 in sorted order, and the data set's `notes` say so; a data set
needs at least 2 classes; sizes that cannot fit in memory are refused.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from run_kit import InputError
from run_kit.cli import option

from .data import IN_MEMORY, ImageData, check_image_size, resize, stratified_holdout

SPLITS = ("train", "test")


def _check_labels(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind == "f":
        raise InputError(f"{name}: labels are floating point ({y.dtype}); store integer class ids")
    if y.dtype.kind not in "iu":
        raise InputError(f"{name}: labels must be integers, got {y.dtype}")
    y = y.reshape(-1)
    if len(y) and y.min() < 0:
        raise InputError(f"{name}: labels must be non-negative integers, got {int(y.min())}")
    return y


def _from_arrays(x: np.ndarray, y: np.ndarray, name: str, class_names: Sequence[str] | None = None,
                 labels: np.ndarray | None = None, hflip: bool = False) -> ImageData:
    """Images [N,H,W] or [N,H,W,C] uint8 and integer labels -> ImageData with labels 0..n-1.

    `labels`: every label the data set uses (train and test together), so both splits map labels alike;
    `class_names[label]` names an original label where given."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise InputError(f"{name}: images must be uint8, got {x.dtype}")
    if x.ndim not in (3, 4):
        raise InputError(f"{name}: images must be [N,H,W] or [N,H,W,C], got shape {tuple(x.shape)}")
    y = _check_labels(y, name)
    if len(y) != len(x):
        raise InputError(f"{name}: {len(x)} images but {len(y)} labels")
    if len(y) == 0:
        raise InputError(f"{name}: no images")
    labels = np.unique(y) if labels is None else labels
    if len(labels) < 2:
        raise InputError(f"{name}: a classification data set needs at least 2 classes, got {len(labels)}")
    notes = []
    if not np.array_equal(labels, np.arange(len(labels))):
        shown = ", ".join(str(int(v)) for v in labels[:5]) + (", ..." if len(labels) > 5 else "")
        notes.append(f"{name}: labels {{{shown}}} are not 0..{len(labels) - 1}; remapped in sorted order")
    names = [str(class_names[int(v)]) if class_names is not None and int(v) < len(class_names) else str(int(v))
             for v in labels]
    images = torch.from_numpy(np.ascontiguousarray(x))
    images = images[:, None] if images.dim() == 3 else images.permute(0, 3, 1, 2)
    remapped = torch.from_numpy(np.searchsorted(labels, y).astype(np.int64))
    return ImageData(images.contiguous(), remapped, names, name, hflip, tuple(notes))


def _holdout_split(data: ImageData, split: str) -> ImageData:
    train, test = stratified_holdout(data.y)
    if len(test) == 0 or len(train) == 0:
        raise InputError(f"{data.name}: {len(data)} images are too few for a 20 % test holdout; give more images "
                         f"(or separate test images)")
    return data.subset(train if split == "train" else test)


def _digits(split: str, root: str, download: bool) -> ImageData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return _holdout_split(_from_arrays(x, digits.target, "digits"), split)


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
        return _from_arrays(np.asarray(x, dtype=np.uint8), np.asarray(labels), cls_name.lower(), classes,
                            labels=np.arange(len(classes)) if classes else None, hflip=hflip)

    return load


def _npz(path: str) -> Callable[[str, str, bool], ImageData]:
    def load(split: str, root: str, download: bool) -> ImageData:
        file = Path(path)
        if not file.is_file():
            raise InputError(f"npz data set {file} does not exist")
        try:
            with np.load(file, allow_pickle=False) as arrays:
                if "x" not in arrays or "y" not in arrays:
                    raise InputError(f"npz data set {file} needs arrays 'x' (uint8 [N,H,W] or [N,H,W,C]) and 'y' "
                                     f"(int)")
                has_test = "x_test" in arrays and "y_test" in arrays
                pairs = [("x", "y"), ("x_test", "y_test")] if has_test else [("x", "y")]
                loaded = {k: arrays[k] for pair in pairs for k in pair}
                names = arrays.get("class_names")
        except (OSError, ValueError, EOFError) as err:  # not a zip, a truncated one, object arrays (pickles)
            raise InputError(f"cannot read npz data set {file}: {str(err).splitlines()[0][:200]}") from None
        if names is not None and names.dtype.kind not in "US":
            names = None
        names = None if names is None else names.tolist()
        labels = np.unique(np.concatenate([_check_labels(loaded[y], file.stem) for _, y in pairs]))
        splits = [_from_arrays(loaded[x], loaded[y], f"{file.stem} ({x}, {y})" if has_test else file.stem, names,
                               labels) for x, y in pairs]  # both checked, whichever split is asked for
        return splits[SPLITS.index(split)] if has_test else _holdout_split(splits[0], split)

    return load


def _open_image(file: str):
    """A decoded PIL image; a file that is not a readable image is named in the error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.load()
            return image
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot read image {file}: {str(err).splitlines()[0][:200] or type(err).__name__}") from None


def _folder(path: str, image_size: int | None) -> Callable[[str, str, bool], ImageData]:
    def load(split: str, root: str, download: bool) -> ImageData:
        from torchvision.datasets import ImageFolder

        if not Path(path).is_dir():
            raise InputError(f"image folder {path} does not exist")
        try:
            folder = ImageFolder(path, loader=lambda file: file)  # finds classes and files; we decode them below
        except (FileNotFoundError, RuntimeError) as err:
            raise InputError(f"cannot read image folder {path}: {err}") from None
        images = [_open_image(file) for file, _ in folder.samples]
        grey = all(im.mode in ("L", "1", "I;16", "I") for im in images)
        mode = "L" if grey else "RGB"  # grey folders stay grey (one channel, no flips); anything else is RGB
        sizes = {im.size for im in images}
        if image_size is None and len(sizes) > 1:
            raise InputError(f"images in {path} differ in size ({len(sizes)} sizes); pass --image-size")
        size = (image_size, image_size) if image_size is not None else None
        arrays = [np.asarray(im.convert(mode).resize(size) if size and im.size != size else im.convert(mode))
                  for im in images]
        data = _from_arrays(np.stack(arrays), np.array([label for _, label in folder.samples]), Path(path).name,
                            list(folder.classes), labels=np.arange(len(folder.classes)), hflip=not grey)
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


@dataclass
class DataOptions:
    """Which data set a run reads: the options search, retrain and compare share (a base of their configs)."""

    dataset: str = option("digits", "digits | mnist | fashion_mnist | kmnist | cifar10 | cifar100 | svhn | "
                                    "folder:PATH | npz:PATH")
    data_root: str = option("data", "where torchvision data sets live")
    download: bool = option(False, "let torchvision download the set")
    image_size: int | None = option(None, "resize images to this square size (None: native)")

    def validate(self) -> None:
        if self.image_size is not None:
            check_image_size(self.image_size)

    def load(self, split: str) -> ImageData:
        if self.dataset.startswith(IN_MEMORY):
            raise InputError(f"this run's images were handed to it in memory ({self.dataset[len(IN_MEMORY):]}); they "
                             f"cannot be loaded by name: rerun the command that made it")
        return load_dataset(self.dataset, split, self.data_root, self.download, self.image_size)
