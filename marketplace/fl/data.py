"""Loading a trainer's local data and partitioning the digits data set into shards.

All loaders return a :class:`LocalData` with ``x`` float32 of shape (n, features) and
``y`` int64 of shape (n,). The built-in models expect 64 features in [0, 1]
(an 8x8 grey image); the digits partitions are scaled that way (raw pixel / 16).

Supported local formats:

* CSV: one sample per row, last column the integer label; an optional non-numeric
  header row is skipped.
* NPZ: arrays ``x`` and ``y``.
* Image folder: one sub-folder per class, images inside. Sub-folder names that are all
  integers are used as labels directly, otherwise labels are the sorted-name index.
  Images are converted to grey, resized to 8x8 and scaled to [0, 1]. Needs Pillow;
  when it is not installed this format raises :class:`UnsupportedFormatError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # Pillow is optional: only the image-folder format needs it.
    from PIL import Image
except ImportError:  # pragma: no cover - exercised only without Pillow
    Image = None

IMAGE_SIZE = (8, 8)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
VALIDATION_FILE = "validation.npz"
TEST_FILE = "test.npz"


class UnsupportedFormatError(ValueError):
    """The path's format is unknown, or needs an optional dependency that is missing."""


@dataclass(frozen=True)
class LocalData:
    """A labelled data set: ``x`` float32 (n, features), ``y`` int64 (n,)."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.ndim != 1 or len(self.x) != len(self.y):
            raise ValueError(f"bad shapes x{self.x.shape} y{self.y.shape}")

    def __len__(self) -> int:
        return len(self.y)

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> LocalData:
        """Build from array-likes, coercing to float32 / int64 and flattening samples."""
        xa = np.asarray(x, dtype=np.float32)
        return cls(xa.reshape(len(xa), -1), np.asarray(y, dtype=np.int64).reshape(-1))

    def save(self, path: str | Path) -> Path:
        """Write as NPZ with arrays ``x`` and ``y``; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez(fh, x=self.x, y=self.y)
        return path


def load_csv(path: str | Path) -> LocalData:
    """Load a CSV whose last column is the label (a non-numeric header row is skipped)."""
    path = Path(path)
    with path.open() as fh:
        first = fh.readline()
    try:
        [float(v) for v in first.strip().split(",")]
        skip = 0
    except ValueError:
        skip = 1
    arr = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    if arr.shape[1] < 2:
        raise ValueError(f"{path}: need at least one feature column and a label column")
    labels = arr[:, -1]
    if not np.all(labels == np.round(labels)):
        raise ValueError(f"{path}: last column must hold integer labels")
    return LocalData.of(arr[:, :-1], labels.astype(np.int64))


def load_npz(path: str | Path) -> LocalData:
    """Load an NPZ file holding arrays ``x`` and ``y``."""
    with np.load(Path(path), allow_pickle=False) as npz:
        missing = {"x", "y"} - set(npz.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        return LocalData.of(npz["x"], npz["y"])


def load_image_folder(path: str | Path, size: tuple[int, int] = IMAGE_SIZE) -> LocalData:
    """Load an image folder (one sub-folder per class) as grey ``size`` images in [0, 1]."""
    if Image is None:
        raise UnsupportedFormatError("image folders need Pillow, which is not installed")
    root = Path(path)
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root}: no class sub-folders")
    numeric = all(p.name.isdigit() for p in classes)
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for index, cls_dir in enumerate(classes):
        label = int(cls_dir.name) if numeric else index
        for img_path in sorted(cls_dir.iterdir()):
            if img_path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(img_path) as img:
                grey = img.convert("L").resize(size)
                xs.append(np.asarray(grey, dtype=np.float32).reshape(-1) / 255.0)
            ys.append(label)
    if not xs:
        raise ValueError(f"{root}: no images found")
    return LocalData.of(np.stack(xs), np.asarray(ys))


def load_local_data(path: str | Path) -> LocalData:
    """Dispatch on the path: ``.csv``, ``.npz`` or a directory (image folder)."""
    path = Path(path)
    if path.is_dir():
        return load_image_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_csv(path)
    if suffix == ".npz":
        return load_npz(path)
    raise UnsupportedFormatError(f"{path}: unsupported format {suffix!r} (csv, npz or image folder)")


def load_digits_data() -> LocalData:
    """scikit-learn's bundled 8x8 digits (1797 samples), pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return LocalData.of(bunch.data / 16.0, bunch.target)


def _dirichlet_split(
    y: np.ndarray, n_trainers: int, alpha: float, rng: np.random.Generator, min_size: int
) -> list[np.ndarray]:
    """Per-class Dirichlet(alpha) proportions; resample until every shard has ``min_size``."""
    classes = np.unique(y)
    for _ in range(1000):
        shards: list[list[int]] = [[] for _ in range(n_trainers)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            props = rng.dirichlet(np.full(n_trainers, alpha))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for t, part in enumerate(np.split(idx, cuts)):
                shards[t].extend(part.tolist())
        if min(len(s) for s in shards) >= min_size:
            return [rng.permutation(np.asarray(s, dtype=np.int64)) for s in shards]
    raise ValueError(f"could not give every trainer {min_size} samples with alpha={alpha}")


def partition_digits(
    n_trainers: int,
    scheme: str = "iid",
    alpha: float = 0.5,
    seed: int = 0,
    out_dir: str | Path = "shards",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    min_size: int = 10,
) -> list[Path]:
    """Split the digits data into trainer shards plus validation and test sets.

    The data are shuffled with ``seed``; ``val_fraction`` and ``test_fraction`` of them go
    to ``out_dir/validation.npz`` (the aggregator's held-out set) and ``out_dir/test.npz``
    (the owner's). The rest is split among ``n_trainers`` either uniformly at random
    (``scheme="iid"``) or label-skewed with per-class Dirichlet(``alpha``) proportions
    (``scheme="dirichlet"``; smaller alpha = more skew). Identical arguments always give
    identical array contents.

    Returns:
        The trainer shard paths ``out_dir/trainer_{i:03d}.npz``, in trainer order.
    """
    if n_trainers < 1:
        raise ValueError("n_trainers must be >= 1")
    if scheme not in ("iid", "dirichlet"):
        raise ValueError(f"unknown scheme {scheme!r} (iid or dirichlet)")
    data = load_digits_data()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    n_val = round(val_fraction * len(order))
    n_test = round(test_fraction * len(order))
    val_idx, test_idx, pool = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
    out = Path(out_dir)
    LocalData(data.x[val_idx], data.y[val_idx]).save(out / VALIDATION_FILE)
    LocalData(data.x[test_idx], data.y[test_idx]).save(out / TEST_FILE)
    if scheme == "iid":
        parts = np.array_split(pool, n_trainers)
    else:
        local = _dirichlet_split(data.y[pool], n_trainers, alpha, rng, min_size)
        parts = [pool[p] for p in local]
    return [LocalData(data.x[p], data.y[p]).save(out / f"trainer_{i:03d}.npz") for i, p in enumerate(parts)]
