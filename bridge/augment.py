"""Data augmentation on raw image features, applied before binarisation.

Augmenting raw pixels and then encoding with the model's ThresholdEncoder
keeps the input bits on the same rule the deployed model uses.
"""

from __future__ import annotations

import numpy as np


def shift_images(features: np.ndarray, image_shape: tuple[int, int], max_shift: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Translate each image by a random (dy, dx) in [-max_shift, max_shift]^2, filling with 0.

    `features` has shape (B, H*W) with row-major pixels; the result has the
    same shape and dtype. Zero is the background of MNIST-style images.
    """
    if max_shift <= 0:
        return features
    n_samples = features.shape[0]
    rows, cols = image_shape
    images = features.reshape(n_samples, rows, cols)
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))  # (B, H+2s, W+2s)

    # Offsets into the padded image; max_shift is the unshifted position.
    dy = rng.integers(0, 2 * max_shift + 1, size=n_samples)
    dx = rng.integers(0, 2 * max_shift + 1, size=n_samples)
    row_index = dy[:, None, None] + np.arange(rows)[None, :, None]  # (B, H, 1)
    col_index = dx[:, None, None] + np.arange(cols)[None, None, :]  # (B, 1, W)
    shifted = padded[np.arange(n_samples)[:, None, None], row_index, col_index]  # (B, H, W)
    return shifted.reshape(n_samples, rows * cols)
