"""Refinement: a decomposer's layers (any working size) -> layers at the image's own size that add up to it.

`refine(stack, image)` is the last step of every decomposition (numpy, scipy and Pillow only):

1. **Upsample.** Each predicted layer is rendered on the working canvas; its straight colour is extended past
   its alpha (nearest present pixel) so that alpha growing at an edge finds a colour, then colour and alpha
   are resized to the image's size (bicubic; nearest for the support mask).
2. **Snap edges to the image.** Where the upsampled prediction does not already recompose the image (the
   residual gate) and the layer shows, alpha in the band around each predicted edge is re-estimated from the
   full-resolution image: the pixel (premultiplied RGBA) is projected onto the line between the layer's own
   colour F and the colour beneath it B, a = <I - B, F - B> / |F - B|^2, with F and B the image's local mean
   where the prediction is confidently inside / outside the layer (over-compositing is linear in alpha, so on
   flat designs this recovers the anti-aliased edge exactly; the classic method estimates edges the same way).
   Where F and B are close (low contrast, textures) the upsampled alpha is kept. A layer never gains alpha
   outside its predicted support dilated by `margin` working pixels, and a layer the snap would empty keeps
   its upsampled alpha.
3. **Exact alpha.** Pixels whose composite alpha is off by more than 0.6 levels get the missing coverage from
   the lowest layer that has support there (raising it changes nothing above it), then from the lowest layer
   whose region reaches the pixel (the bottom layer reaches everywhere); excess coverage (transparent parts of
   RGBA inputs) is removed bottom-up, background first. Each step solves the layer's alpha in closed form on
   the uint8 grid, so the composite alpha is within 1/255.
4. **Exact colour, minimal change.** With v_k the visibility of layer k (its alpha times the transmittance
   of the layers above), the composite is sum_k v_k c_k. The residual r to the image is removed by the colour
   change of least Euclidean norm, delta_k = v_k r / sum_j v_j^2 (closed form of min sum |delta_k|^2 subject
   to sum_k v_k delta_k = r): layers correct in proportion to how much they show, a hidden pixel (v = 0) keeps
   its predicted colour, and the correction fades continuously as a layer is covered. Clipping to [0, 1] is
   handled by iterating (water-filling): layers that hit a bound leave the active set and the residual is
   re-spread over the others, which is the exact solution of the box-constrained problem and always reaches
   the target (the target lies in [0, alpha] = the reachable range). Colours are solved against the uint8
   alphas the file will hold, so rounding the colours costs at most 0.5 level; pixels already within
   0.6 level are left alone, so a prediction that recomposes exactly comes back unchanged.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image
from scipy import ndimage

from layered.blocks import block_reduce
from layered.errors import InputError
from layered.fileio import to_rgba_array
from layered.pixels import alpha_bbox
from layered.stack import Layer, LayerStack

ASPECT_TOLERANCE = 0.1  # relative aspect-ratio difference allowed between the stack and the image
ROUNDING = 32  # pipelines round working sides to multiples of up to 32 pixels (diffusers' buckets)
MARGIN = 2  # working pixels a layer may grow past its predicted support
_LEVEL = 1.0 / 255.0
_SKIP = 0.6 * _LEVEL  # pixels within this of the target are left as predicted
_GATE_LOW, _GATE_SPAN = 1.5, 4.0  # residual (uint8 levels) where snapping starts, and the ramp to full strength
_CONTRAST = 16.0 / 255.0  # |F - B| at which the projected alpha is fully trusted
_OFF_LINE = 24.0 / 255.0  # distance from the F-B colour line at which it is not trusted at all


class AspectRatioError(InputError, ValueError):
    """The stack and the image do not have the same aspect ratio (so one cannot be resized onto the other)."""


@dataclasses.dataclass
class _Plane:
    """One visible predicted layer on the image's canvas, inside its region [y0:y1, x0:x1]."""

    layer: Layer
    x0: int
    y0: int
    x1: int
    y1: int
    alpha: np.ndarray  # pixel alpha, float32 [0, 1]
    colour: np.ndarray  # straight RGB, float32 3 x h x w in [0, 1]
    support: np.ndarray  # bool: where the layer may have alpha

    @property
    def region(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def effective(self) -> np.ndarray:
        """Alpha times opacity, computed as the compositor does (float32)."""
        return self.alpha * np.float32(self.layer.opacity)


def check_aspect(stack_size: tuple[int, int], image_size: tuple[int, int], tolerance: float = ASPECT_TOLERANCE):
    """Raise AspectRatioError (a ValueError) when the two (width, height) sizes differ in aspect ratio.

    Allowed: `tolerance` (relative), plus what rounding each working side to a multiple of ROUNDING can do.
    """
    (w0, h0), (w1, h1) = stack_size, image_size
    ratio = (w0 / h0) / (w1 / h1)
    if max(ratio, 1 / ratio) > 1 + tolerance + ROUNDING / min(w0, h0):
        raise AspectRatioError(
            f"the layers are {w0}x{h0} but the image is {w1}x{h1}: their aspect ratios differ "
            f"({w0 / h0:.3f} vs {w1 / h1:.3f}), so the layers cannot be refined to this image"
        )


def refine(
    stack: LayerStack,
    image,
    *,
    snap: bool = True,
    margin: int = MARGIN,
    aspect_tolerance: float = ASPECT_TOLERANCE,
) -> LayerStack:
    """Layers at `image`'s size whose composite equals `image` (within 1/255 per channel, alpha included).

    `stack`: predicted layers at any working size with the image's aspect ratio; `image`: PIL image or
    H x W x 3/4 uint8 array. Hidden and zero-opacity layers are only resized. See the module docstring.
    """
    target = _rgba(image)
    height, width = target.shape[:2]
    check_aspect(stack.size, (width, height), aspect_tolerance)
    sx, sy = width / stack.width, height / stack.height
    block = max(2, round(math.sqrt(sx * sy)))  # the grid on which edge colours are estimated
    renders = {i: _render(stack, i) for i, layer in enumerate(stack.layers) if _shows(layer)}
    active = [i for i, pixels in renders.items() if pixels[..., 3].any()]  # on the canvas, too

    out_layers = list(stack.layers)
    for i in range(len(stack)):
        if i not in active:
            out_layers[i] = _resized(stack, i, width, height)
    planes = [
        _upsample(stack, renders, i, width=width, height=height, block=block, margin=margin, whole=(i == active[0]))
        for i in active
    ]
    provenance = {"working_size": stack.working_size or stack.size, "refined": True}
    if not planes:  # nothing of the prediction shows: the image itself is the only exact answer
        return LayerStack(width, height, (*out_layers, Layer(target, 0, 0, "image")), **provenance)
    image_premul = _premultiplied(target)
    if snap:
        _snap_edges(planes, image_premul, block)
    for plane in planes:
        plane.alpha = np.round(plane.alpha * 255.0) / 255.0  # the alphas the file will hold
    _fit_alpha(planes, image_premul[3])
    _fit_colour(planes, image_premul)
    for i, plane in zip(active, planes, strict=True):
        out_layers[i] = _to_layer(plane)
    return LayerStack(width, height, tuple(out_layers), **provenance)


# ---- inputs and outputs -----------------------------------------------------------------------------


def _rgba(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return to_rgba_array(image)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"image must be a PIL image or an H x W x 3/4 uint8 array, got {array.dtype} {array.shape}")
    if array.shape[2] == 3:
        array = np.dstack([array, np.full(array.shape[:2], 255, np.uint8)])
    return array


def _shows(layer: Layer) -> bool:
    return layer.visible and layer.opacity > 0 and not layer.is_empty


def _premultiplied(rgba: np.ndarray) -> np.ndarray:
    """Planar float32 premultiplied RGBA (4 x H x W) in [0, 1]."""
    out = rgba.transpose(2, 0, 1).astype(np.float32) * np.float32(_LEVEL)
    out[:3] *= out[3]
    return out


def _render(stack: LayerStack, index: int) -> np.ndarray:
    """Layer `index` alone on the working canvas, opacity 1 (its own pixels, placed; no compositing pass)."""
    layer, out = stack.layers[index], np.zeros((stack.height, stack.width, 4), np.uint8)
    x0, y0 = max(layer.x, 0), max(layer.y, 0)
    x1, y1 = min(layer.x + layer.width, stack.width), min(layer.y + layer.height, stack.height)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = layer.pixels[y0 - layer.y : y1 - layer.y, x0 - layer.x : x1 - layer.x]
    return out


def _resized(stack: LayerStack, index: int, width: int, height: int) -> Layer:
    """A layer that does not show (hidden, opacity 0, empty): resized onto the image's canvas, nothing else."""
    layer = stack.layers[index]
    if (width, height) == stack.size or layer.is_empty:
        return layer
    from layered.pixels import resize_rgba

    return _cropped(resize_rgba(_render(stack, index), (width, height)), 0, 0, layer)


def _cropped(pixels: np.ndarray, x: int, y: int, like: Layer) -> Layer:
    box = alpha_bbox(pixels)
    if box is None:
        return like.replace(pixels=np.zeros((0, 0, 4), np.uint8), x=0, y=0)
    left, top, right, bottom = box
    return like.replace(pixels=pixels[top:bottom, left:right], x=x + left, y=y + top)


def _to_layer(plane: _Plane) -> Layer:
    pixels = np.empty((plane.y1 - plane.y0, plane.x1 - plane.x0, 4), np.uint8)
    pixels[..., :3] = (plane.colour * 255.0 + 0.5).clip(0, 255).astype(np.uint8).transpose(1, 2, 0)
    pixels[..., 3] = (plane.alpha * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return _cropped(pixels, plane.x0, plane.y0, plane.layer)


# ---- 1. upsampling ------------------------------------------------------------------------------------


def _upsample(
    stack: LayerStack, renders: dict, index: int, *, width: int, height: int, block: int, margin: int, whole: bool
):
    """The layer's alpha, spread colour and support on the image's canvas, inside its (block-aligned) region."""
    layer, pixels = stack.layers[index], renders[index]
    w0, h0 = stack.size
    if whole:
        wx0, wy0, wx1, wy1 = 0, 0, w0, h0
    else:
        left, top, right, bottom = alpha_bbox(pixels)
        wx0, wy0 = max(left - margin, 0), max(top - margin, 0)
        wx1, wy1 = min(right + margin, w0), min(bottom + margin, h0)
    sx, sy = width / w0, height / h0
    x0, y0 = int(wx0 * sx) // block * block, int(wy0 * sy) // block * block
    x1 = min(width, -(-math.ceil(wx1 * sx) // block) * block)
    y1 = min(height, -(-math.ceil(wy1 * sy) // block) * block)

    present = pixels[..., 3] > 0
    rgb, support = pixels[..., :3], present
    crop = (slice(wy0, wy1), slice(wx0, wx1))
    upscaled = (width, height) != (w0, h0)
    fill = (slice(None), slice(None)) if upscaled else crop  # resampling reads past the crop: fill it all
    if not present[fill].all():
        rgb = rgb.copy()
        rgb[fill] = _spread(rgb[fill], present[fill])
    if margin > 0:
        support = present.copy()
        support[crop] = ndimage.binary_dilation(present[crop], iterations=margin)
    alpha = pixels[..., 3].astype(np.float32) * np.float32(_LEVEL)
    if not upscaled:
        region = (slice(y0, y1), slice(x0, x1))
        alpha, rgb, support = alpha[region], rgb[region], support[region]
    else:
        size, box = (x1 - x0, y1 - y0), (x0 / sx, y0 / sy, x1 / sx, y1 / sy)
        alpha = np.asarray(Image.fromarray(alpha, "F").resize(size, Image.Resampling.BICUBIC, box=box)).clip(0, 1)
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.BICUBIC, box=box))
        mask = Image.fromarray(support.astype(np.uint8) * 255)
        support = np.asarray(mask.resize(size, Image.Resampling.NEAREST, box=box)) > 0
        alpha = alpha * support
    colour = rgb.transpose(2, 0, 1).astype(np.float32) * np.float32(_LEVEL)
    return _Plane(layer, x0, y0, x1, y1, np.array(alpha, np.float32), colour, np.ascontiguousarray(support))


def _spread(rgb: np.ndarray, present: np.ndarray) -> np.ndarray:
    """`rgb` with every pixel outside `present` given the colour of the nearest present pixel."""
    index = ndimage.distance_transform_edt(~present, return_distances=False, return_indices=True)
    return rgb[index[0], index[1]]


# ---- 2. edges from the image --------------------------------------------------------------------------


def _transmittance_above(planes: list[_Plane], height: int, width: int) -> list[np.ndarray]:
    """For each plane, the product of (1 - alpha) of the planes above it, inside its region."""
    through = np.ones((height, width), np.float32)
    above = [None] * len(planes)
    for k in range(len(planes) - 1, -1, -1):
        plane = planes[k]
        above[k] = through[plane.region].copy()
        through[plane.region] *= 1.0 - plane.effective()
    return above


def _composite(planes: list[_Plane], height: int, width: int) -> np.ndarray:
    """Premultiplied planar RGBA composite of the planes (float32, 4 x H x W)."""
    acc = np.zeros((4, height, width), np.float32)
    for plane in planes:
        a = plane.effective()
        dst = acc[(slice(None),) + plane.region]
        dst *= 1.0 - a
        dst[:3] += plane.colour * a
        dst[3] += a
    return acc


def _resize_map(values: np.ndarray, size: tuple[int, int], box: tuple, resample=Image.Resampling.BILINEAR):
    """Resize a float map (block grid -> pixels) over `box` of its own coordinates."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(values, np.float32), "F").resize(size, resample, box=box))


def _snap_edges(planes: list[_Plane], image: np.ndarray, block: int) -> None:
    """Re-estimate alpha near each predicted edge from the image (module docstring, step 2), in place."""
    height, width = image.shape[1:]
    residual = np.abs(_composite(planes, height, width) - image).max(axis=0) * 255.0
    gate = np.clip((block_reduce(residual, block, "max", pad="edge") - _GATE_LOW) / _GATE_SPAN, 0.0, 1.0)
    if not gate.any():
        return
    gate = ndimage.maximum_filter(gate, size=5)
    channels = image[:3] if bool(image[3].min() >= 1.0) else image  # opaque images: alpha carries nothing
    image_blocks = block_reduce(channels, block, "mean", axes=(-2, -1), pad="edge")
    through = np.ones((height, width), np.float32)  # top-down: each layer sees the snapped layers above it
    for plane in reversed(planes):
        _snap_plane(plane, through[plane.region], gate=gate, channels=channels, image_blocks=image_blocks, block=block)
        through[plane.region] *= 1.0 - plane.effective()


def _snap_plane(plane: _Plane, shown, *, gate, channels, image_blocks, block: int) -> None:
    """Step 2 for one layer; `shown` is the transmittance of the layers above it, inside its region."""
    by0, bx0 = plane.y0 // block, plane.x0 // block
    p = block_reduce(plane.alpha, block, "mean", pad="edge")
    vis = block_reduce(shown, block, "mean", pad="edge")
    rows, cols = slice(by0, by0 + p.shape[0]), slice(bx0, bx0 + p.shape[1])
    band = ndimage.maximum_filter(p, size=5) - ndimage.minimum_filter(p, size=5) > _LEVEL
    band &= (gate[rows, cols] > 0) & (vis > 0)
    if not band.any():
        return
    colours = image_blocks[:, rows, cols]
    fg = _nearest_colour(colours, (p > 0.9) & (vis > 0.9))
    bg = _nearest_colour(colours, (p < 0.1) & (vis > 0.9))
    if fg is None or bg is None:
        return
    contrast = np.sqrt(((fg - bg) ** 2).sum(axis=0))
    trust = np.clip(contrast / _CONTRAST, 0.0, 1.0) * band * gate[rows, cols]
    r, c = np.flatnonzero(trust.any(axis=1)), np.flatnonzero(trust.any(axis=0))
    if r.size == 0:
        return
    # the block rectangle holding the band (plus one block for the bilinear ramp of the weight), in pixels
    r0, r1, c0, c1 = max(r[0] - 1, 0), min(r[-1] + 2, p.shape[0]), max(c[0] - 1, 0), min(c[-1] + 2, p.shape[1])
    y0, y1 = r0 * block, min(r1 * block, plane.y1 - plane.y0)
    x0, x1 = c0 * block, min(c1 * block, plane.x1 - plane.x0)
    size, box = (x1 - x0, y1 - y0), (x0 / block, y0 / block, x1 / block, y1 / block)
    pixels = channels[:, plane.y0 + y0 : plane.y0 + y1, plane.x0 + x0 : plane.x0 + x1]
    along = np.zeros(size[::-1], np.float32)  # <I - B, F - B>
    length = np.zeros_like(along)  # |F - B|^2
    off = np.zeros_like(along)  # |I - B|^2
    for k in range(channels.shape[0]):
        f = _resize_map(fg[k], size, box, Image.Resampling.NEAREST)
        b = _resize_map(bg[k], size, box, Image.Resampling.NEAREST)
        d, e = f - b, pixels[k] - b
        along += e * d
        length += d * d
        off += e * e
    projected = np.divide(along, length, out=np.zeros_like(along), where=length > 1e-8)
    # distance of the pixel from the F-B line: far from it, the pixel is something else; keep the prediction
    apart = np.sqrt(np.maximum(off - projected * along, 0.0))
    weight = _resize_map(trust, size, box).clip(0.0, 1.0) * np.clip(1.0 - apart / _OFF_LINE, 0.0, 1.0)
    weight *= shown[y0:y1, x0:x1]
    current = plane.alpha[y0:y1, x0:x1]
    snapped = current + weight * (projected.clip(0.0, 1.0) * plane.support[y0:y1, x0:x1] - current)
    if snapped.max() * 255.0 < 0.5 and current.max() * 255.0 >= 0.5:
        return  # the image shows nothing of this layer here: keep the prediction rather than empty it
    plane.alpha[y0:y1, x0:x1] = snapped


def _nearest_colour(colours: np.ndarray, confident: np.ndarray) -> np.ndarray | None:
    """Per block, the colour of the nearest confident block (None when there is none)."""
    if not confident.any():
        return None
    if confident.all():
        return colours
    index = ndimage.distance_transform_edt(~confident, return_distances=False, return_indices=True)
    return colours[:, index[0], index[1]]


# ---- 3. exact alpha -----------------------------------------------------------------------------------


def _fit_alpha(planes: list[_Plane], target: np.ndarray) -> None:
    """Make the composite alpha equal `target` (H x W in [0, 1]) within 0.6 levels, in place (step 3)."""
    height, width = target.shape
    for supported_only in (True, False):
        through = np.ones((height, width), np.float32)
        for plane in planes:
            through[plane.region] *= 1.0 - plane.effective()
        todo = np.abs((1.0 - through) - target) > _SKIP
        if not todo.any():
            return
        if not supported_only and planes[0].layer.opacity < 1.0:
            # the bottom layer must be able to reach full coverage: fold its opacity into its pixels
            bottom = planes[0]
            bottom.alpha = np.round(bottom.effective() * 255.0) / 255.0
            bottom.layer = bottom.layer.replace(opacity=1.0)
        above = _transmittance_above(planes, height, width)
        below = np.ones((height, width), np.float32)
        for plane, over in zip(planes, above, strict=True):
            region = plane.region
            rest = below[region] * over
            alpha = 1.0 - (1.0 - plane.effective()) * rest
            want = target[region]
            fix = todo[region] & (np.abs(alpha - want) > _SKIP)
            if supported_only:
                fix &= (want < alpha) | plane.support
            if fix.any():
                # excess under an opaque layer above: this layer's coverage here is surplus, remove it
                opacity = np.float32(plane.layer.opacity)
                wanted = 1.0 - (1.0 - want[fix]) / np.maximum(rest[fix], 1e-12)
                levels = np.round(np.clip(wanted / opacity, 0.0, 1.0) * 255.0)
                plane.alpha[fix] = levels / 255.0
                todo[region] &= ~fix | (np.abs(1.0 - (1.0 - plane.effective()) * rest - want) > _SKIP)
            below[region] *= 1.0 - plane.effective()


# ---- 4. exact colour ----------------------------------------------------------------------------------


def _fit_colour(planes: list[_Plane], image: np.ndarray) -> None:
    """Least-norm colour correction so the composite equals `image` (premultiplied, 4 x H x W), in place.

    One closed-form step on the whole canvas; the few pixels where a colour clipped are then gathered and
    finished by water-filling (the clipped layers leave the active set, the rest share what is left).
    """
    height, width = image.shape[1:]
    above = _transmittance_above(planes, height, width)
    vis = [plane.effective() * over for plane, over in zip(planes, above, strict=True)]
    acc = np.zeros((3, height, width), np.float32)
    alpha = np.zeros((height, width), np.float32)
    norm = np.zeros((height, width), np.float32)
    for plane, v in zip(planes, vis, strict=True):
        acc[(slice(None),) + plane.region] += plane.colour * v
        alpha[plane.region] += v
        norm[plane.region] += v * v
    if image[3].min() >= 1.0:
        straight = image[:3]  # opaque: premultiplied is straight
    else:
        straight = np.divide(image[:3], np.maximum(image[3], 1e-12), out=np.zeros_like(image[:3]), where=image[3] > 0)
    residual = straight * alpha - acc  # the target keeps the image's colour at the composite's alpha
    todo = (alpha > 0) & (np.abs(residual).max(axis=0) > _SKIP * alpha)
    count = int(np.count_nonzero(todo))
    if count == 0:
        return
    if count * 8 < todo.size:  # few pixels to fix (a prediction that is nearly exact): work on those alone
        _water_fill(planes, vis, residual, todo)
        return
    step = np.divide(residual, norm, out=np.zeros_like(residual), where=todo & (norm > 0))
    for plane, v in zip(planes, vis, strict=True):
        region = (slice(None),) + plane.region
        moved = np.clip(plane.colour + step[region] * v, 0.0, 1.0)
        residual[region] -= (moved - plane.colour) * v
        plane.colour = moved
    left = todo & (np.abs(residual).max(axis=0) > 0.25 * _LEVEL * alpha)
    if left.any():
        _water_fill(planes, vis, residual, left)


def _water_fill(planes: list[_Plane], vis: list[np.ndarray], residual: np.ndarray, pixels: np.ndarray) -> None:
    """Finish the colour fit on the gathered `pixels` (bool H x W) where clipping left a residual, in place."""
    ys, xs = np.nonzero(pixels)
    count = len(planes)
    v = np.zeros((count, ys.size), np.float32)
    colour = np.zeros((count, 3, ys.size), np.float32)
    inside = []
    for k, plane in enumerate(planes):
        hit = (ys >= plane.y0) & (ys < plane.y1) & (xs >= plane.x0) & (xs < plane.x1)
        yy, xx = ys[hit] - plane.y0, xs[hit] - plane.x0
        v[k, hit] = vis[k][yy, xx]
        colour[k][:, hit] = plane.colour[:, yy, xx]
        inside.append((hit, yy, xx))
    r = residual[:, ys, xs]
    for _ in range(count):
        free = (v[:, None] > 0) & (((r > 0) & (colour < 1.0)) | ((r < 0) & (colour > 0.0)))
        norm = (free * (v * v)[:, None]).sum(axis=0)
        step = np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)
        moved = np.where(free, np.clip(colour + step * v[:, None], 0.0, 1.0), colour)
        r -= ((moved - colour) * v[:, None]).sum(axis=0)
        colour = moved
        if not free.any() or np.abs(r).max() <= 0.25 * _LEVEL * 1e-3:
            break
    for k, (hit, yy, xx) in enumerate(inside):
        planes[k].colour[:, yy, xx] = colour[k][:, hit]
