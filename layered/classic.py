"""The non-learned decomposer (`--method classic`): colour clustering + connected components + background fill.

Good on flat graphics (solid fills, anti-aliased edges, semi-transparent shapes over solid colours); on
photographs and painted illustrations it is a posterisation into colour layers that still recomposes exactly.

How it works (numpy, scipy and Pillow):
1. Input alpha is flattened over white. Large images are analysed on a box-downscaled copy (long side
   <= `analysis_size`); the layers themselves are built at full resolution.
2. Palette: colours of *flat* pixels (equal to their neighbours) are histogrammed and the most frequent
   distinct colours become the palette; anti-aliased edge pixels take the palette colour of the closest
   flat neighbour, so edge mixes do not become colours of their own.
3. Regions: 4-connected components of equal palette colour; specks smaller than `min_area` merge into
   the neighbour they share the longest border with. A group is the set of regions of one colour.
4. Semi-transparent shapes: two adjacent groups X, Y lying on two other groups U, V with
   X - Y = k (U - V) are one shape of opacity 1 - k over U and V (merged into one layer).
5. Count: "auto" merges groups (Ward's criterion: area-weighted colour distance) while the cheapest merge
   is small or there are more than `max_layers`; an int N merges (or splits) to exactly N.
6. Order (bottom-first): the background is the group with the most image-border pixels. Between two
   touching groups, the one whose convex hull reaches into the other is occluded, so it goes lower;
   ties and unconstrained groups go larger-first. A semi-transparent shape goes above what it covers.
7. Layers: the background is a whole opaque plate (holes under everything filled by push-pull
   interpolation of its visible colours); every other layer is filled under the upper layers that its
   convex hull reaches into (amodal completion of occluded convex shapes). Along each edge, alpha is
   estimated by projecting the pixel onto the line between the layer colour and the composite beneath,
   and the layer colour is solved so that the recomposition reproduces the input.

Generic steps: connected components are `scipy.ndimage.label`, convex hulls `scipy.spatial.ConvexHull`, block
sums `layered.blocks`; the layer-order convention is `layered.layer_tools.occlusion_order`. Two stay our own:
the square dilation (the same pixels as `ndimage.binary_dilation`, 5-9x faster on these masks: classic is
10-25 % slower end to end with ndimage's; `benchmarks/bench_classic.py --helpers`) and the push-pull fill
(ndimage has none; its nearest-pixel fill is another operation and gives other layers).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import ConvexHull

from layered.blocks import block_reduce
from layered.errors import InputError
from layered.layer_tools import occlusion_order
from layered.limits import CLASSIC_AUTO_LAYERS, parse_layers
from layered.pixels import composite_over
from layered.stack import Layer, LayerStack

MAX_AUTO_LAYERS = CLASSIC_AUTO_LAYERS  # "auto" ends with at most this many layers (layered.limits)
_FLAT_TOL = 10  # max channel difference (0-255) to every 4-neighbour for a pixel to count as flat
_PALETTE_MERGE = 28.0  # palette colours closer than this (0-255 RGB Euclidean) are one colour
_MAX_PALETTE = 64
_SOFT_JUMP = 5.0  # groups meeting along a border where the image changes by at most this (mean max-channel) unite
_CLUSTER_GAP = 0.02  # when splitting a colour group, pieces closer than this (share of the long side) stay together
_AUTO_WARD = 1.5e-4  # auto mode stops merging when the cheapest merge costs more (area fraction x colour^2)


def decompose_classic(
    image: np.ndarray | Image.Image,
    layers: int | str = "auto",
    *,
    max_layers: int = MAX_AUTO_LAYERS,
    min_area: float = 0.0004,
    analysis_size: int = 512,
) -> LayerStack:
    """Decompose an image into a bottom-first LayerStack: an opaque background plate + one layer per colour group.

    `layers` is "auto" (at most `max_layers`) or an exact count N (N = 1: the opaque image), by the one
    layer-count rule of `layered.limits.parse_layers` (1 to 20).
    `min_area` is the speck size as a fraction of the image; images with alpha are flattened over white.
    """
    count = parse_layers(layers)
    count = None if count == "auto" else count
    rgb = _to_rgb(image)
    height, width = rgb.shape[:2]
    if count == 1:
        opaque = np.dstack([rgb, np.full((height, width), 255, np.uint8)])
        return LayerStack(width, height, (Layer(opaque, 0, 0, "background"),))

    factor = max(1, math.ceil(max(height, width) / analysis_size))
    small = np.asarray(Image.fromarray(rgb).reduce(factor)) if factor > 1 else rgb
    flat = _flat_mask(small)
    speck = max(2, int(min_area * small.shape[0] * small.shape[1]))
    groups = _analyse(small, flat, speck, _PALETTE_MERGE)
    if count is not None and len(groups.alive) < count:  # more layers asked for than colours found: look closer
        groups = _analyse(small, flat, 2, _PALETTE_MERGE / 3)
    groups.merge_soft_borders(small)
    if count is None:
        groups.merge(target=None, max_layers=max_layers)
    else:
        groups.merge(target=count, max_layers=count)
    order = groups.order()
    owner = groups.owner_map()
    fills = groups.fills()
    if count is not None and len(order) < count:
        owner, order = _split_to(owner, order, count, groups)
    stack = _synthesise(rgb, owner, order, fills, groups=groups, factor=factor)
    # layers that do not overlap can go in any order without changing the composite: larger lower
    return stack.replace(layers=tuple(stack[i] for i in occlusion_order(stack)))


def _analyse(small: np.ndarray, flat: np.ndarray, speck: int, palette_merge: float) -> _Groups:
    """Palette, edge settling, regions and colour groups (with translucent shapes found) of the analysis image."""
    palette, pal_map = _palette(small, flat, palette_merge)
    pal_map = _settle_edges(small, flat, pal_map, palette)
    groups = _Groups(_regions(pal_map, speck), pal_map, palette, small, flat)
    groups.detect_semi_transparent()
    return groups


def _to_rgb(image: np.ndarray | Image.Image) -> np.ndarray:
    """H x W x 3 uint8; alpha is flattened over white (a transparent pixel reads as white paper)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGBA") if image.mode not in ("RGB", "L") else image.convert("RGB"))
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"image must be H x W, H x W x 3 or H x W x 4, got shape {image.shape}")
    if image.shape[2] == 4:
        image = composite_over(image)
    return np.ascontiguousarray(image)


def _flat_mask(img: np.ndarray) -> np.ndarray:
    """Pixels whose colour equals (within _FLAT_TOL per channel) every 4-neighbour's."""
    img = img.astype(np.int16)
    diff = np.zeros(img.shape[:2], np.int16)
    dx = np.abs(img[:, 1:] - img[:, :-1]).max(axis=2)
    dy = np.abs(img[1:] - img[:-1]).max(axis=2)
    np.maximum(diff[:, 1:], dx, out=diff[:, 1:])
    np.maximum(diff[:, :-1], dx, out=diff[:, :-1])
    np.maximum(diff[1:], dy, out=diff[1:])
    np.maximum(diff[:-1], dy, out=diff[:-1])
    return diff <= _FLAT_TOL


def _palette(img: np.ndarray, flat: np.ndarray, merge: float = _PALETTE_MERGE) -> tuple[np.ndarray, np.ndarray]:
    """(K x 3 float palette, H x W palette index): frequent distinct colours of flat pixels, nearest-colour map."""
    bins = ((img[..., 0].astype(np.int32) >> 3) << 10) | ((img[..., 1].astype(np.int32) >> 3) << 5) | (img[..., 2] >> 3)
    sample = bins[flat] if flat.sum() >= 0.02 * flat.size else bins.ravel()
    pixels = img[flat] if flat.sum() >= 0.02 * flat.size else img.reshape(-1, 3)
    counts = np.bincount(sample, minlength=32768).astype(np.float64)
    sums = np.stack([np.bincount(sample, pixels[:, c].astype(np.float64), minlength=32768) for c in range(3)], 1)
    used = np.flatnonzero(counts)
    means = sums[used] / counts[used, None]
    min_count = max(2.0, 2e-4 * img.shape[0] * img.shape[1])
    centres: list[np.ndarray] = []
    for i in np.argsort(-counts[used], kind="stable"):
        if counts[used[i]] < min_count or len(centres) >= _MAX_PALETTE:
            break
        if not centres or np.min(np.linalg.norm(np.asarray(centres) - means[i], axis=1)) > merge:
            centres.append(means[i])
    if not centres:
        centres.append(pixels.reshape(-1, 3).mean(axis=0))
    palette = np.asarray(centres)
    for _ in range(2):  # k-means refinement on the histogram of flat colours
        nearest = _nearest(means, palette)
        weight = np.bincount(nearest, counts[used], minlength=len(palette))
        acc = np.stack([np.bincount(nearest, sums[used][:, c], minlength=len(palette)) for c in range(3)], 1)
        palette = np.where(weight[:, None] > 0, acc / np.maximum(weight, 1)[:, None], palette)
    centre_of_bin = ((np.arange(32768)[:, None] >> np.array([10, 5, 0])) & 31) * 8 + 4.0
    centre_of_bin[used] = means
    lut = _nearest(centre_of_bin, palette).astype(np.int32)
    return palette, lut[bins]


def _nearest(colours: np.ndarray, palette: np.ndarray) -> np.ndarray:
    d = ((colours[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


def _settle_edges(img: np.ndarray, flat: np.ndarray, pal_map: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Edge (non-flat) pixels take the palette colour of the settled neighbour closest in colour, in 2 sweeps."""
    out = pal_map.copy()
    settled = flat.copy()
    colour = img.astype(np.float32)
    pal = palette.astype(np.float32)
    for _ in range(2):
        best = np.full(out.shape, np.inf, np.float32)
        choice = out.copy()
        for axis, step in ((0, 1), (0, -1), (1, 1), (1, -1)):
            lab = _shift(out, axis, step, -1)
            ok = _shift(settled, axis, step, False) & ~settled
            d = ((colour - pal[np.maximum(lab, 0)]) ** 2).sum(axis=2)
            take = ok & (d < best)
            best[take] = d[take]
            choice[take] = lab[take]
        newly = np.isfinite(best)
        out = np.where(newly, choice, out)
        settled |= newly
    return out


def _shift(a: np.ndarray, axis: int, step: int, fill) -> np.ndarray:
    """a shifted by `step` along `axis` (out[i] = a[i - step]), padded with `fill`."""
    out = np.full_like(a, fill)
    if axis == 0:
        if step > 0:
            out[step:] = a[:-step]
        else:
            out[:step] = a[-step:]
    elif step > 0:
        out[:, step:] = a[:, :-step]
    else:
        out[:, :step] = a[:, -step:]
    return out


def label_components(values: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of equal values: (H x W int ids 0..n-1, n), numbered in raster order of each
    component's first pixel (the order classic's tie-breaks follow). One `ndimage.label` per value."""
    h, w = values.shape
    _, index = np.unique(values, return_inverse=True)
    index = index.reshape(h, w)
    labels = np.zeros((h, w), np.int64)
    n = 0
    for k, box in enumerate(ndimage.find_objects(index + 1)):  # the bounding box of each value
        mask = index[box] == k
        part, count = ndimage.label(mask)
        labels[box][mask] = part[mask] + n - 1
        n += count
    first = ndimage.minimum(np.arange(h * w).reshape(h, w), labels, np.arange(n))
    rank = np.empty(n, np.int64)
    rank[np.argsort(first)] = np.arange(n)
    return rank[labels], n


def _adjacency(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, border length) for every pair a < b of 4-adjacent labels."""
    keys = []
    for x, y in ((labels[:, 1:], labels[:, :-1]), (labels[1:], labels[:-1])):
        diff = x != y
        lo, hi = np.minimum(x[diff], y[diff]), np.maximum(x[diff], y[diff])
        keys.append(lo.astype(np.int64) * n + hi)
    keys, counts = np.unique(np.concatenate(keys), return_counts=True)
    return keys // n, keys % n, counts


def _regions(pal_map: np.ndarray, speck: int) -> np.ndarray:
    """Region ids (H x W): colour components, specks (< `speck` px) merged into their longest-border neighbour."""
    labels, n = label_components(pal_map)
    for _ in range(12):
        area = np.bincount(labels.ravel(), minlength=n)
        small = area < speck
        if not small[area > 0].any() or n == 1:
            break
        a, b, length = _adjacency(labels, n)
        if a.size == 0:
            break
        # candidate targets for each small region: a larger neighbour (ties by id), longest border wins
        src = np.concatenate([a, b])
        dst = np.concatenate([b, a])
        cnt = np.concatenate([length, length])
        ok = small[src] & ((area[dst] > area[src]) | ((area[dst] == area[src]) & (dst > src)))
        src, dst, cnt = src[ok], dst[ok], cnt[ok]
        if src.size == 0:
            break
        order = np.lexsort((-area[dst], -cnt, src))
        src, dst = src[order], dst[order]
        first = np.ones(src.size, bool)
        first[1:] = src[1:] != src[:-1]
        lut = np.arange(n)
        lut[src[first]] = dst[first]
        for _ in range(32):  # follow chains speck -> speck -> region
            nxt = lut[lut]
            if np.array_equal(nxt, lut):
                break
            lut = nxt
        labels = lut[labels]
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(pal_map.shape)


class _Groups:
    """Colour groups of regions at analysis resolution: merging, semi-transparency, order and fills."""

    def __init__(
        self, regions: np.ndarray, pal_map: np.ndarray, palette: np.ndarray, img: np.ndarray, flat: np.ndarray
    ) -> None:
        self.regions = regions
        self.n_regions = int(regions.max()) + 1
        flat_regions = regions.ravel()
        self.region_area = np.bincount(flat_regions, minlength=self.n_regions)
        # the colour of a region is the palette colour most of its pixels carry
        pal_count = np.bincount(flat_regions * len(palette) + pal_map.ravel(), minlength=self.n_regions * len(palette))
        region_pal = pal_count.reshape(self.n_regions, len(palette)).argmax(axis=1)
        border = np.zeros(regions.shape, bool)
        border[0] = border[-1] = True
        border[:, 0] = border[:, -1] = True
        self.region_border = np.bincount(regions[border], minlength=self.n_regions)
        self.adj = _adjacency(regions, self.n_regions)
        # groups: one per palette colour present; union-find over groups for merges
        used, self.region_group = np.unique(region_pal, return_inverse=True)
        self.n = len(used)
        self.colour = palette[used] / 255.0
        self.area = np.bincount(self.region_group, self.region_area, minlength=self.n).astype(np.float64)
        self.border = np.bincount(self.region_group, self.region_border, minlength=self.n)
        self.parent = list(range(self.n))
        self.alive = set(range(self.n))
        self.semi: dict[int, tuple[float, dict[int, int]]] = {}  # group -> (opacity, {member group: under group})
        self.total = float(regions.size)
        # colour spread of the flat pixels of each group (RMS distance to the mean, 0..1): translucency is only
        # fitted on flat fills
        flat_px = flat.ravel()
        pix = img.reshape(-1, 3)[flat_px].astype(np.float64) / 255.0
        gid = self.region_group[flat_regions[flat_px]]
        n = np.maximum(np.bincount(gid, minlength=self.n), 1)
        mean = np.stack([np.bincount(gid, pix[:, c], minlength=self.n) for c in range(3)], 1) / n[:, None]
        sq = np.bincount(gid, (pix**2).sum(axis=1), minlength=self.n) / n
        self.spread = np.sqrt(np.maximum(sq - (mean**2).sum(axis=1), 0.0))
        self.bg = max(range(self.n), key=lambda g: (self.border[g], self.area[g]))

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def _group_adjacency(self) -> dict[tuple[int, int], int]:
        a, b, length = self.adj
        out: dict[tuple[int, int], int] = {}
        ga, gb = self.region_group[a], self.region_group[b]
        for x, y, n in zip(ga.tolist(), gb.tolist(), length.tolist(), strict=True):
            x, y = self.find(x), self.find(y)
            if x != y:
                key = (min(x, y), max(x, y))
                out[key] = out.get(key, 0) + n
        return out

    def background(self) -> int:
        """The group with the most image-border pixels (chosen before any merge; merges keep it)."""
        return self.find(self.bg)

    def _union(self, keep: int, gone: int) -> None:
        area = self.area[keep] + self.area[gone]
        self.colour[keep] = (self.colour[keep] * self.area[keep] + self.colour[gone] * self.area[gone]) / area
        self.area[keep] = area
        self.border[keep] += self.border[gone]
        self.parent[gone] = keep
        self.alive.discard(gone)
        semi = self.semi.pop(gone, None)
        if semi is not None and keep in self.semi:
            self.semi[keep][1].update(semi[1])
        elif keep in self.semi:
            del self.semi[keep]  # an opaque group merged into a semi-transparent one: no longer one opacity

    def detect_semi_transparent(self) -> None:
        """Find pairs X, Y of adjacent groups that are one translucent shape over two touching groups U, V."""
        taken: dict[int, float] = {}
        bg = self.background()
        for _, opacity, gx, gy, u, v in self._translucent_candidates():
            gx, gy = self.find(gx), self.find(gy)
            if gx == gy or bg in (gx, gy):
                continue
            if any(g in taken and abs(taken[g] - opacity) > 0.06 for g in (gx, gy)):
                continue
            if gx in self.semi or gy in self.semi:
                members = {**self.semi.get(gx, (0, {}))[1], **self.semi.get(gy, (0, {}))[1]}
            else:
                members = {}
            members.setdefault(gx, u)
            members.setdefault(gy, v)
            self.semi.pop(gx, None)
            self.semi.pop(gy, None)
            self._union(gx, gy)
            self.semi[gx] = (opacity, members)
            taken[gx] = taken[gy] = opacity

    def _translucent_candidates(self) -> list[tuple[float, float, int, int, int, int]]:
        """(fit error, opacity, X, Y, U, V) for every flat X, Y, U, V that fit X - Y = k (U - V), best first."""
        adj = self._group_adjacency()
        neighbours: dict[int, set[int]] = {g: set() for g in self.alive}
        for x, y in adj:
            neighbours[x].add(y)
            neighbours[y].add(x)
        min_border = max(3, int(0.002 * math.sqrt(self.total) * 4))
        candidates = []
        flat = {g for g in self.alive if self.spread[g] < 0.04}
        for (x, y), length in adj.items():
            if length < min_border or x not in flat or y not in flat:
                continue
            for gx, gy in ((x, y), (y, x)):
                for u in (neighbours[gx] & flat) - {gx, gy}:
                    for v in (neighbours[gy] & flat) - {gx, gy, u}:
                        if (min(u, v), max(u, v)) not in adj:
                            continue
                        fit = _fit_translucent(self.colour[gx], self.colour[gy], self.colour[u], self.colour[v])
                        if fit is not None:
                            candidates.append((fit[1], fit[0], gx, gy, u, v))
        return sorted(candidates)

    def merge_soft_borders(self, img: np.ndarray) -> None:
        """Unite groups whose shared border is no edge: the image changes across it by at most _SOFT_JUMP
        on average (a gradient or a smooth texture cut into palette bands is one surface)."""
        jump_sum: dict[tuple[int, int], float] = {}
        jump_n: dict[tuple[int, int], int] = {}
        pixels = img.astype(np.int16)
        for x, y, px, py in (
            (self.regions[:, 1:], self.regions[:, :-1], pixels[:, 1:], pixels[:, :-1]),
            (self.regions[1:], self.regions[:-1], pixels[1:], pixels[:-1]),
        ):
            cut = x != y
            ga, gb = self.region_group[x[cut]], self.region_group[y[cut]]
            jump = np.abs(px[cut] - py[cut]).max(axis=1)
            lo, hi = np.minimum(ga, gb), np.maximum(ga, gb)
            keep = lo != hi
            keys = lo[keep].astype(np.int64) * self.n + hi[keep]
            uniq, inverse = np.unique(keys, return_inverse=True)
            sums = np.bincount(inverse, jump[keep].astype(np.float64))
            counts = np.bincount(inverse)
            for key, total, n in zip(uniq.tolist(), sums.tolist(), counts.tolist(), strict=True):
                pair = divmod(key, self.n)
                jump_sum[pair] = jump_sum.get(pair, 0.0) + total
                jump_n[pair] = jump_n.get(pair, 0) + n
        semi = {m for _, members in self.semi.values() for m in members} | set(self.semi)
        min_border = max(4, int(0.01 * math.sqrt(self.total)))
        soft = sorted((jump_sum[p] / jump_n[p], p) for p in jump_sum if jump_n[p] >= min_border and not set(p) & semi)
        for mean_jump, (g, h) in soft:
            if mean_jump > _SOFT_JUMP:
                break
            g, h = self.find(g), self.find(h)
            if g == h or g in self.semi or h in self.semi:
                continue
            bg = self.background()
            keep, gone = (g, h) if (g == bg or (h != bg and self.area[g] >= self.area[h])) else (h, g)
            self._union(keep, gone)

    def merge(self, target: int | None, max_layers: int) -> None:
        """Ward merging of groups: to exactly `target`, or (auto) while cheap or above `max_layers`."""
        while len(self.alive) > 1:
            ids = np.array(sorted(self.alive))
            frac = self.area[ids] / self.total
            d2 = ((self.colour[ids][:, None, :] - self.colour[ids][None, :, :]) ** 2).sum(axis=2)
            cost = frac[:, None] * frac[None, :] / (frac[:, None] + frac[None, :]) * d2
            cost[np.arange(len(ids)), np.arange(len(ids))] = np.inf
            i, j = np.unravel_index(np.argmin(cost), cost.shape)
            if target is not None:
                if len(self.alive) <= target:
                    break
            elif len(self.alive) <= max_layers and cost[i, j] > _AUTO_WARD:
                break
            g, h = int(ids[i]), int(ids[j])
            bg = self.background()
            keep, gone = (g, h) if (g == bg or (h != bg and self.area[g] >= self.area[h])) else (h, g)
            self._union(keep, gone)

    def final_region_group(self) -> np.ndarray:
        return np.array([self.find(g) for g in self.region_group.tolist()], dtype=np.int64)

    def owner_map(self) -> np.ndarray:
        return self.final_region_group()[self.regions]

    def order(self) -> list[int]:
        """Groups bottom-first: background, then by occlusion votes (hull intrusion), larger first when free."""
        bg = self.background()
        rg = self.final_region_group()
        a, b, length = self.adj
        votes: dict[tuple[int, int], float] = {}  # (lower, upper) -> weight
        hulls: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
        for ra, rb, n in zip(a.tolist(), b.tolist(), length.tolist(), strict=True):
            ga, gb = int(rg[ra]), int(rg[rb])
            if ga == gb or bg in (ga, gb):
                continue
            ia = self._intrusion(ra, rb, hulls)  # share of rb inside hull(ra): ra is occluded by rb
            ib = self._intrusion(rb, ra, hulls)
            if abs(ia - ib) < 0.02:
                continue
            lower, upper = (ga, gb) if ia > ib else (gb, ga)
            votes[(lower, upper)] = votes.get((lower, upper), 0.0) + n * abs(ia - ib)
        for s, (_, members) in self.semi.items():
            for under in members.values():
                u = self.find(under)
                if u != s:
                    votes[(u, s)] = votes.get((u, s), 0.0) + 1e9
        edges: dict[int, dict[int, float]] = {g: {} for g in self.alive}
        for (lo, up), w in votes.items():
            back = votes.get((up, lo), 0.0)
            if w > back:
                edges[up][lo] = w - back  # up needs lo placed first
        placed = [bg]
        remaining = set(self.alive) - {bg}
        while remaining:
            free = [g for g in remaining if all(lo not in remaining for lo in edges[g])]
            if not free:  # cycle: drop the weakest constraint set
                free = [min(remaining, key=lambda g: sum(w for lo, w in edges[g].items() if lo in remaining))]
            nxt = max(free, key=lambda g: (self.area[g], -g))
            placed.append(nxt)
            remaining.discard(nxt)
        self._rank = {g: i for i, g in enumerate(placed)}
        self._hulls = hulls
        return placed

    def _hull(self, r: int, hulls: dict) -> tuple[np.ndarray, tuple[int, int]]:
        if r not in hulls:
            hulls[r] = _hull_mask(*self._region_pixels(r))
        return hulls[r]

    def _region_pixels(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "_pixels_of"):
            order = np.argsort(self.regions.ravel(), kind="stable")
            bounds = np.concatenate([[0], np.cumsum(self.region_area)])
            self._pixels_of = (order, bounds)
        order, bounds = self._pixels_of
        idx = order[bounds[r] : bounds[r + 1]]
        return np.divmod(idx, self.regions.shape[1])

    def _intrusion(self, r: int, s: int, hulls: dict) -> float:
        """Share of region s lying inside the convex hull of region r."""
        mask, (top, left) = self._hull(r, hulls)
        ys, xs = self._region_pixels(s)
        ys, xs = ys - top, xs - left
        inside = (ys >= 0) & (ys < mask.shape[0]) & (xs >= 0) & (xs < mask.shape[1])
        hit = mask[ys[inside], xs[inside]].sum()
        return float(hit) / max(1, len(ys))

    def fills(self) -> dict[int, np.ndarray]:
        """Analysis-resolution masks each group covers beyond its own pixels (amodal fill under upper groups),
        by the ranks of the last `order()`."""
        rank = self._rank
        rg = self.final_region_group()
        h, w = self.regions.shape
        out: dict[int, np.ndarray] = {}
        shapes: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
        a, b, _ = self.adj
        for ra, rb in zip(a.tolist(), b.tolist(), strict=True):
            for r, s in ((ra, rb), (rb, ra)):
                g, gs = int(rg[r]), int(rg[s])
                if g == gs or rank[gs] < rank[g] or rank[g] == 0:
                    continue
                mask, (top, left) = self._completion(r, rank, rg, shapes)
                ys, xs = self._region_pixels(s)
                yy, xx = ys - top, xs - left
                inside = (yy >= 0) & (yy < mask.shape[0]) & (xx >= 0) & (xx < mask.shape[1])
                sel = np.zeros(len(ys), bool)
                sel[inside] = mask[yy[inside], xx[inside]]
                if sel.any():
                    fill = out.setdefault(g, np.zeros((h, w), bool))
                    fill[ys[sel], xs[sel]] = True
        owner = self.owner_map()
        for s, (_, members) in self.semi.items():  # what a translucent shape covers must exist below it
            for member, under in members.items():
                u = self.find(under)
                if u == s or rank.get(u, 0) == 0:
                    continue
                covered = np.isin(self.regions, np.flatnonzero(self.region_group == member)) & (owner == s)
                fill = out.setdefault(u, np.zeros((h, w), bool))
                fill |= covered
        return out

    def _completion(self, r: int, rank: dict, rg: np.ndarray, shapes: dict) -> tuple[np.ndarray, tuple[int, int]]:
        """The full shape of region r under its occluders: its bounding box when nothing lower shows inside that
        box (a rectangle), else its convex hull."""
        if r not in shapes:
            ys, xs = self._region_pixels(r)
            top, left, bottom, right = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
            inside = self.regions[top:bottom, left:right]
            lut = np.array([rank[int(g)] for g in rg.tolist()])
            own_rank = lut[r]
            lower = int((lut[inside] < own_rank).sum())
            h, w = bottom - top, right - left
            if lower <= 0.01 * h * w + (h + w):
                shapes[r] = (np.ones((h, w), bool), (int(top), int(left)))
            else:
                shapes[r] = self._hull(r, self._hulls)
        return shapes[r]

    def opacity(self, g: int) -> float:
        return self.semi[g][0] if g in self.semi else 1.0


def _fit_translucent(x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[float, float] | None:
    """(opacity, residual) when x = a c + (1-a) u and y = a c + (1-a) v for one colour c and 0 < a < 1."""
    duv = u - v
    norm2 = float(duv @ duv)
    if norm2 < 0.15**2:
        return None
    dxy = x - y
    k = float(dxy @ duv) / norm2
    residual = float(np.linalg.norm(dxy - k * duv))
    if not 0.08 <= k <= 0.92 or residual > 0.035:
        return None
    opacity = 1.0 - k
    c = (x - k * u) / opacity
    if (c < -0.03).any() or (c > 1.03).any():
        return None
    return opacity, residual


def _hull_mask(ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Filled convex hull of pixel coordinates: (bool mask, (top, left) of the mask)."""
    top, left = int(ys.min()), int(xs.min())
    h, w = int(ys.max()) - top + 1, int(xs.max()) - left + 1
    yy, xx = ys - top, xs - left
    # the corners of each row's extreme pixels are enough for the hull (never collinear: a pixel is a square)
    row_min = np.full(h, w, np.int64)
    row_max = np.full(h, -1, np.int64)
    np.minimum.at(row_min, yy, xx)
    np.maximum.at(row_max, yy, xx)
    rows = np.flatnonzero(row_max >= 0)
    x0, x1 = row_min[rows], row_max[rows] + 1
    corners = np.concatenate([np.stack([x, y], axis=1) for x in (x0, x1) for y in (rows, rows + 1)])
    hull = corners[ConvexHull(corners).vertices]
    canvas = Image.new("L", (w, h), 0)
    # pixel (x, y) covers [x, x+1) x [y, y+1); draw at pixel centres: shrink the corner polygon by half a pixel
    ImageDraw.Draw(canvas).polygon([(px - 0.5, py - 0.5) for px, py in hull.tolist()], fill=1)
    mask = np.asarray(canvas, bool).copy()
    mask[yy, xx] = True
    return mask, (top, left)


def _split_to(owner: np.ndarray, order: list[int], count: int, groups: _Groups) -> tuple[np.ndarray, list[int]]:
    """More layers asked for than colour groups found: split the largest layer (a foreground one first) into
    clusters of nearby pieces, or into halves along its longer side; each part goes just above its origin."""
    owner = owner.copy()
    order = list(order)
    while len(order) < count:
        areas = {g: int((owner == g).sum()) for g in order}
        splittable = [g for g in order if areas[g] >= 2]
        if not splittable:
            break
        foreground = [g for g in splittable if g != order[0]]
        g = max(foreground or splittable, key=lambda k: areas[k])
        ys, xs = np.nonzero(owner == g)
        # pieces closer than `gap` are one thing (the glyphs of a word, the parts of an icon)
        gap = max(1, round(_CLUSTER_GAP * max(owner.shape)))
        piece = ndimage.label(_dilate(owner == g, gap))[0][ys, xs]
        ids, sizes = np.unique(piece, return_counts=True)
        if len(ids) > 1:  # several separate clusters of pieces: the smallest becomes a layer of its own
            cut = piece == ids[np.argmin(sizes)]
        elif np.ptp(xs) >= np.ptp(ys):
            cut = xs >= xs.min() + (np.ptp(xs) + 1) // 2
        else:
            cut = ys >= ys.min() + (np.ptp(ys) + 1) // 2
        if cut.all() or not cut.any():
            cut = np.arange(len(xs)) >= len(xs) // 2
        new = len(groups.colour)
        groups.colour = np.vstack([groups.colour, groups.colour[g : g + 1]])
        owner[ys[cut], xs[cut]] = new
        order.insert(order.index(g) + 1, new)
    return owner, order


def _upsample(mask: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    if factor == 1:
        return mask
    return np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)[: shape[0], : shape[1]]


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square dilation (side 2 * radius + 1) of a bool mask by shifted ORs, one axis at a time: the pixels of
    `ndimage.binary_dilation` with a square, several times faster on bool masks (module docstring)."""
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        for step in range(1, radius + 1):
            if axis == 0:
                out[step:] |= src[:-step]
                out[:-step] |= src[step:]
            else:
                out[:, step:] |= src[:, :-step]
                out[:, :-step] |= src[:, step:]
    return out


def _fill(values: np.ndarray, known: np.ndarray, first: int = 1) -> np.ndarray:
    """`values` (H x W x C float) with unknown pixels filled by push-pull interpolation of the known ones: a
    hidden pixel takes the mean of the known pixels in the smallest enclosing 2^k block holding any.

    The first pyramid step reduces by `first` (speed), so known pixels get their block's mean: callers copy
    the pixels they show from the image.
    """
    h, w = known.shape
    v = block_reduce(values * known[..., None], first)
    wgt = block_reduce(known.astype(np.float32), first)
    levels = []
    while True:
        levels.append((v, wgt))
        if wgt.all() or not wgt.any() or (v.shape[0] == 1 and v.shape[1] == 1):
            break
        v, wgt = block_reduce(v, 2), block_reduce(wgt, 2)
    v, wgt = levels[-1]
    filled = v / np.maximum(wgt, 1e-12)[..., None]
    for v, wgt in reversed(levels[:-1]):
        up = np.repeat(np.repeat(filled, 2, axis=0), 2, axis=1)[: wgt.shape[0], : wgt.shape[1]]
        filled = np.where((wgt > 0)[..., None], v / np.maximum(wgt, 1e-12)[..., None], up)
    if first > 1:
        fh, fw, c = filled.shape
        filled = np.broadcast_to(filled[:, None, :, None, :], (fh, first, fw, first, c)).reshape(fh * first, -1, c)
    return np.ascontiguousarray(filled[:h, :w], dtype=np.float32)


def _synthesise(rgb, owner_small, order, fills, *, groups, factor) -> LayerStack:
    """Build the full-resolution layers bottom-first; edge alpha by projection, colours solved to recompose."""
    height, width = rgb.shape[:2]
    image = rgb.astype(np.float32) * (1.0 / 255.0)
    rank_lut = np.zeros(int(owner_small.max()) + 1, np.int16)
    for i, g in enumerate(order):
        rank_lut[g] = i
    rank = _upsample(rank_lut[owner_small], factor, (height, width))
    radius = max(2, factor + 1)
    below = np.zeros_like(image)
    out_layers: list[Layer] = []
    for i, g in enumerate(order):
        own = rank == i
        if not own.any():
            continue
        fill = fills.get(g)
        fill = _upsample(fill, factor, (height, width)) if fill is not None else None
        if i == 0:
            sl = (slice(0, height), slice(0, width))
        else:  # work inside the bounding box of everything this layer can touch
            reach = _dilate(own, radius) if fill is None else _dilate(own, radius) | fill
            rows, cols = np.flatnonzero(reach.any(axis=1)), np.flatnonzero(reach.any(axis=0))
            sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        own_c, rank_c, img_c, below_c = own[sl], rank[sl], image[sl], below[sl]
        upper, lower = rank_c > i, rank_c < i
        grown = _dilate(own_c, radius)
        near_upper = own_c & _dilate(upper, radius)
        band_in = own_c & _dilate(lower, radius) if i else np.zeros_like(own_c)
        band_out = grown & lower
        core = own_c & ~band_in & ~near_upper
        if not core.any():
            core = own_c
        opacity = groups.opacity(g)
        if opacity < 1.0:  # a translucent layer has one colour: solve it from what lies beneath its core
            solved = (img_c[core] - (1.0 - opacity) * below_c[core]) / opacity
            plate = np.empty_like(img_c)
            plate[:] = np.clip(np.median(solved, axis=0), 0.0, 1.0)
        else:
            plate = _fill(img_c, core, first=max(1, factor))
        support = own_c | (grown & upper) if i else np.ones_like(own_c)
        if fill is not None:
            support |= fill[sl]
        alpha = support.astype(np.float32)
        alpha *= opacity
        colour = plate
        # pixels this layer shows: its own (except where an upper layer's edge will blend in) and its outer band
        shown = own_c & ~near_upper
        colour[shown] = img_c[shown]
        edge = np.flatnonzero(own_c & near_upper)
        close = np.abs(img_c.reshape(-1, 3)[edge] - plate.reshape(-1, 3)[edge]).max(axis=1) <= 3.0 / 255.0
        colour.reshape(-1, 3)[edge[close]] = img_c.reshape(-1, 3)[edge[close]]
        project = band_out | band_in | (own_c if opacity < 1.0 else False)
        idx = np.flatnonzero(project)
        if idx.size:
            px, pb, pc = img_c.reshape(-1, 3)[idx], below_c.reshape(-1, 3)[idx], plate.reshape(-1, 3)[idx]
            diff = pc - pb
            norm2 = (diff * diff).sum(axis=1)
            est = np.clip(((px - pb) * diff).sum(axis=1) / np.maximum(norm2, 1e-6), 0.0, opacity)
            est = np.where(norm2 < 1e-4, np.where(own_c.reshape(-1)[idx], opacity, 0.0), est)
            solved = (px - (1.0 - est[:, None]) * pb) / np.maximum(est, 1e-6)[:, None]
            sol = np.where((est > 0.02)[:, None], np.clip(solved, 0.0, 1.0), pc)
            # where the two-colour model does not explain the pixel, raise alpha to the least value whose solved
            # colour is in gamut: the recomposition stays exact
            err = np.abs(est[:, None] * sol + (1.0 - est[:, None]) * pb - px).max(axis=1)
            bad = np.flatnonzero(err > 1.5 / 255.0)
            if bad.size:
                xb, bb = px[bad], pb[bad]
                need = np.where(xb > bb, (xb - bb) / np.maximum(1.0 - bb, 1e-6), (bb - xb) / np.maximum(bb, 1e-6))
                fixed = np.clip(np.maximum(need.max(axis=1), est[bad]), 1e-3, 1.0)
                est[bad] = fixed
                sol[bad] = np.clip(bb + (xb - bb) / fixed[:, None], 0.0, 1.0)
            alpha.reshape(-1)[idx] = est
            colour.reshape(-1, 3)[idx] = sol
        a3 = alpha[..., None]
        if i == 0:
            below = colour.copy()
        else:
            blend = colour - below_c
            blend *= a3
            below_c += blend
        name = "background" if i == 0 else _name(len(out_layers), groups, g, opacity)
        layer = _layer_from_crop(colour, alpha, sl, name)
        if not layer.is_empty:
            out_layers.append(layer)
    return LayerStack(width, height, tuple(out_layers))


def _layer_from_crop(colour: np.ndarray, alpha: np.ndarray, sl: tuple[slice, slice], name: str) -> Layer:
    """A Layer from crop-sized float colour and alpha, cropped to its content and placed on the canvas."""
    a8 = _to_uint8(alpha)
    rows, cols = np.flatnonzero(a8.any(axis=1)), np.flatnonzero(a8.any(axis=0))
    if rows.size == 0:
        return Layer(np.zeros((0, 0, 4), np.uint8), 0, 0, name)
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    pixels = np.empty((rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0], 4), np.uint8)
    pixels[..., 3] = a8[box]
    pixels[..., :3] = _to_uint8(colour[box])
    pixels[..., :3] *= (pixels[..., 3:] > 0).astype(np.uint8)  # RGB 0 where fully transparent
    return Layer(pixels, sl[1].start + box[1].start, sl[0].start + box[0].start, name)


def _name(index: int, groups: _Groups, g: int, opacity: float) -> str:
    colour = groups.colour[g] if g < len(groups.colour) else np.zeros(3)
    hexcode = "#" + "".join(f"{int(round(c * 255)):02x}" for c in np.clip(colour, 0, 1))
    suffix = f" {round(opacity * 100)}%" if opacity < 1.0 else ""
    return f"element {index} {hexcode}{suffix}"


def _to_uint8(values: np.ndarray) -> np.ndarray:
    out = values * 255.0
    out += 0.5
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)
