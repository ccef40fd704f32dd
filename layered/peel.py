"""The peel decomposer: lift off the topmost elements, fill in what they covered, repeat.

One round, on the current image C (what is left) at the working size:
  1. the network (`layered.peel_model.PeelNet`) predicts the top elements' alpha a, their kind at each pixel,
     the boxes of top text elements and where two top elements touch;
  2. the alpha is split into elements: text pixels by the text box they fall in (a line or a paragraph is one
     element), the others by connected component, cut where two elements touch;
  3. each element's colour is its unblending against what lies beneath, F = (C - (1 - a) B) / a;
  4. what the elements covered is filled in (`fill_beneath`): B = Telea inpainting, except under the body of a
     see-through element (one whose alpha stays low), where B = (C - a F) / (1 - a) with one flat colour F;
  5. C := B, and again, until the predicted alpha is empty or the layer budget is spent. What is left is the
     opaque background. Elements of one round are stacked by the layer-order convention (panels, objects,
     text; larger lower).
Refinement (`layered.refine`) runs last, as for every method, and makes the layers add up to the input.
"""

from __future__ import annotations

import numpy as np

EMPTY = 0.02  # alpha below this is nothing
OPAQUE = 0.97  # alpha at or above this hides what lies beneath
SEE_THROUGH = 0.9  # an element whose inner alpha stays below this (a panel) is unblended, not inpainted
MIN_INTERIOR = 24  # pixels: thinner elements (text strokes) are never taken for see-through ones
INPAINT_RADIUS = 3


def union_alpha(alphas: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The alpha of several non-overlapping or stacked elements together: 1 - prod(1 - a)."""
    clear = np.ones(shape, np.float32)
    for alpha in alphas:
        clear *= 1.0 - alpha
    return 1.0 - clear


def fill_beneath(rgb: np.ndarray, alphas: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """(what lies beneath the elements, each element's colour), H x W x 3 uint8 each, from the image and alphas."""
    import cv2
    from scipy import ndimage

    image = rgb.astype(np.float32)
    union = union_alpha(alphas, rgb.shape[:2])
    hole = ndimage.binary_dilation(union > EMPTY, iterations=1)
    inpainted = cv2.inpaint(np.ascontiguousarray(rgb), hole.astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)
    beneath = inpainted.astype(np.float32)
    colours = []
    for alpha in alphas:
        a = alpha[..., None]
        support = alpha > EMPTY
        colour = np.where(a > EMPTY, (image - (1.0 - a) * beneath) / np.maximum(a, EMPTY), image)
        interior = ndimage.binary_erosion(support, iterations=2)
        if interior.sum() >= MIN_INTERIOR and float(np.median(alpha[interior])) < SEE_THROUGH:
            flat = np.median(colour[alpha >= np.quantile(alpha[support], 0.5)], axis=0)
            see_through = alpha >= 0.5 * float(alpha.max())  # its body; a soft rim is inpainted
            under = (image - a * flat) / np.maximum(1.0 - a, 1.0 - OPAQUE)
            beneath[see_through] = under[see_through]
            colour = np.broadcast_to(flat, image.shape).copy()
        colours.append(np.clip(colour + 0.5, 0, 255).astype(np.uint8))
    return np.clip(beneath + 0.5, 0, 255).astype(np.uint8), colours
