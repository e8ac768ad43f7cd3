"""Image data sets and the batch streams that feed search, retraining and meta-learning.

`load_dataset(spec, split)` reads a data set by name into an in-memory `ImageData`; `BatchStream` hands out seeded,
resumable, augmented batches of it; `ordered_batches` one pass in order, for evaluation.
"""
from .batches import Augment, BatchStream, Preprocess, ordered_batches
from .data import ImageData, channel_stats, in_memory, resize, split_indices, stratified_holdout
from .loaders import DATASET_NAMES, DataOptions, load_dataset

__all__ = ["Augment", "BatchStream", "Preprocess", "ordered_batches", "DataOptions", "ImageData", "channel_stats",
           "in_memory", "resize", "split_indices", "stratified_holdout", "DATASET_NAMES", "load_dataset"]
