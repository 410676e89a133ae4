"""Data layer (numpy + OpenCV only): image IO, datasets, preprocessing, synthetic data."""

from __future__ import annotations

from edgeanomaly.data._convert import COLORS, to_rgb_uint8
from edgeanomaly.data._datasets import (Dataset, Sample, folder_dataset, load_dataset, mask_size_problem, mvtec_dataset, sample_labels,
                                        sample_masks)
from edgeanomaly.data._io import (IMAGE_EXTENSIONS, decode_image, file_sha256, header_size, is_image_file, max_image_pixels, read_image,
                                  read_mask)
from edgeanomaly.data._preprocess import (
    PreprocessConfig,
    preprocess,
    preprocess_batch,
    preprocess_mask,
    resize_and_crop,
    resize_image,
)
from edgeanomaly.data._synth import CATEGORIES, DEFECTS, generate_synthetic_dataset, render_sample

__all__ = [
    "CATEGORIES",
    "COLORS",
    "DEFECTS",
    "IMAGE_EXTENSIONS",
    "Dataset",
    "PreprocessConfig",
    "Sample",
    "decode_image",
    "folder_dataset",
    "generate_synthetic_dataset",
    "file_sha256",
    "header_size",
    "is_image_file",
    "load_dataset",
    "mvtec_dataset",
    "preprocess",
    "preprocess_batch",
    "preprocess_mask",
    "mask_size_problem",
    "max_image_pixels",
    "read_image",
    "read_mask",
    "render_sample",
    "resize_and_crop",
    "resize_image",
    "sample_labels",
    "sample_masks",
    "to_rgb_uint8",
]
