"""Intensity augmentations: Shuffle Remap (paper section 3.3, Algorithm 1, Eq. 8), a Bezier shift, and
appearance changes within one modality (bias field, gamma, blur, resolution, noise).

Shuffle Remap is hand-written because no library has it. ``shuffle_remap`` is Algorithm 1 applied
to a batch ``(B, C, ...)`` of images in [-1, 1]:

1. ``N`` control points, ``N`` uniform over the integers ``[r_min, r_max]`` (inclusive), the points
   uniform in [-1, 1] (``torch.rand * 2 - 1``, float32, as Algorithm 1), sorted, with the endpoints
   ``p_0 = -1`` and ``p_{N+1} = 1`` added: ``N + 1`` segments.
2. A random permutation ``perm`` of the ``N + 1`` segments.
3. A voxel ``x`` in source segment ``i`` (``p_i <= x < p_{i+1}``) goes to segment ``j = perm[i]``
   by Eq. 8: ``x' = (x - p_i) / (p_{i+1} - p_i) * (p_{j+1} - p_j) + p_j``.

Choices (documented deviations):

* One independent remap per SAMPLE: every channel of a sample shares the sample's control points
  and permutation (the authors apply it to single-channel images).
* ``x == 1`` exactly belongs to the last segment. Algorithm 1's test ``(min1 <= X) & (X < max1)``
  never selects ``X == 1``, so the authors' code leaves such voxels at 0 (``torch.zeros_like``);
  here they map like their neighbours. On inputs in [-1, 1) the two agree.
* Inputs may exceed [-1, 1] by at most 1e-3 (rounding in a normalisation); they are clamped first.
  NaN, inf or anything further out raises ``ValueError``. The output is clamped to [-1, 1] (Eq. 8
  in float32 can overshoot a target endpoint by one ulp).
* Off by default, ``invert_prob``: negate the remapped sample with that probability. The authors'
  code does this with probability 0.2 (and, with probability 0.2 each, adds a random histogram shift
  and MONAI noise/bias/contrast transforms, which are not part of this function; compose
  ``bezier_shift`` or MONAI transforms for those).

Speed. Algorithm 1 makes one masked pass over the image per segment (N + 1 passes). Here every
voxel is looked up once, in a table of uniform bins over [-1, 1] per sample (``M`` bins, a power of
two chosen from the image size, plus a spare row):

* bin position ``t = x * M/2 + M/2 + b * (M + 2)`` for sample ``b``, row ``r = trunc(t)``. This is
  a monotone function of ``x`` computed identically for voxels and control points (``x * M/2`` is
  exact, then one correctly rounded add), which is all the exactness argument needs: a control
  point in a lower row is ``<= x``, one in a higher row is ``> x``.
* each row stores the Eq. 8 piece of the segment containing its lower edge ``e_r`` (its value at
  ``e_r`` and its slope) and the control point inside the bin, if any (``thr``, else +inf). A voxel
  with ``x >= thr[r]`` moves to row ``r + 1``, which starts with the next segment; then
  ``x' = value[r] + (x - e_r) * slope[r]``, with ``(x - e_r) * M/2`` computed exactly from ``t``.
  That is four gathers and eight arithmetic passes per voxel, on cache-sized chunks (a loop over
  chunks of voxels, never over samples or segments).
* a bin holding two or more control points (two points closer than 2/M: with N near 50 and
  M = 2048 about a third of the samples have one such bin) gets NaN; its few voxels are found
  afterwards (sums over groups of voxels) and recomputed exactly by walking the sorted control
  points.

The result equals Algorithm 1 up to float32 rounding of Eq. 8 (about one ulp), with the same
segment for every voxel; the tests compare them, including voxels on and one ulp beside every
control point. ``benchmarks/shuffle_remap.py`` measures the speed against the plain loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from imse_study.modalities import is_ct

__all__ = [
    "ShuffleRemapParams",
    "sample_shuffle_remap_params",
    "apply_shuffle_remap",
    "shuffle_remap",
    "bezier_shift",
    "APPEARANCE_LEVELS",
    "AppearanceRange",
    "appearance_range",
    "randomise_appearance",
    "acquisition_noise",
]

_TOLERANCE = 1e-3  # how far outside [-1, 1] an input may be (then clamped)
_PAD = 2.0  # stored in the padding slots of ``points``: above every real point and every input
_CHUNK = 65536  # voxels per chunk (all samples together): about 1.3 MB of work, within L2
_GROUP = 64  # voxels per group when searching the NaN voxels
_MAX_ROW_ID = 2**24  # bin ids stay exactly representable in float32


@dataclass(frozen=True)
class ShuffleRemapParams:
    """The random draw of Algorithm 1 for a batch, padded to a common length.

    Attributes:
        n_points: ``(B,)`` int64, ``N`` per sample.
        points: ``(B, R)`` float32, each row sorted; ``points[b, :N_b]`` are the control points in
            [-1, 1), the rest is padding (2.0). ``R >= max(N)``.
        perm: ``(B, R + 1)`` int64; ``perm[b, :N_b + 1]`` is the permutation of the ``N_b + 1``
            segments (source segment ``i`` goes to target segment ``perm[b, i]``); the padding
            slots hold the identity.
        invert: ``(B,)`` bool, whether the remapped sample is negated (``invert_prob``).
    """

    n_points: torch.Tensor
    points: torch.Tensor
    perm: torch.Tensor
    invert: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.n_points.shape[0])

    def control_points(self, b: int) -> torch.Tensor:
        """The ``N_b + 2`` control points of sample ``b``: ``[-1, p_1, ..., p_N, 1]`` (float32)."""
        n = int(self.n_points[b])
        one = torch.ones(1, dtype=self.points.dtype, device=self.points.device)
        return torch.cat([-one, self.points[b, :n], one])

    def permutation(self, b: int) -> torch.Tensor:
        """The permutation of the ``N_b + 1`` segments of sample ``b``."""
        return self.perm[b, : int(self.n_points[b]) + 1]

    def to(self, device: torch.device | str) -> "ShuffleRemapParams":
        return ShuffleRemapParams(self.n_points.to(device), self.points.to(device),
                                  self.perm.to(device), self.invert.to(device))

    @classmethod
    def from_lists(
        cls,
        points: Sequence[torch.Tensor | Sequence[float]],
        perms: Sequence[torch.Tensor | Sequence[int]],
        invert: Sequence[bool] | None = None,
    ) -> "ShuffleRemapParams":
        """Build parameters from explicit per-sample interior control points and permutations.

        ``points[b]`` are the ``N_b`` interior points (any order, in [-1, 1)), ``perms[b]`` a
        permutation of ``range(N_b + 1)``.
        """
        if len(points) != len(perms) or len(points) == 0:
            raise ValueError("points and perms must be non-empty and of the same length (the batch)")
        pts = [torch.as_tensor(p, dtype=torch.float32).reshape(-1) for p in points]
        prm = [torch.as_tensor(p, dtype=torch.int64).reshape(-1) for p in perms]
        width = max(1, max(p.numel() for p in pts))
        out_pts = torch.full((len(pts), width), _PAD)
        out_perm = torch.arange(width + 1).repeat(len(pts), 1)
        for b, (p, q) in enumerate(zip(pts, prm)):
            n = p.numel()
            if q.numel() != n + 1 or not torch.equal(q.sort().values, torch.arange(n + 1)):
                raise ValueError(f"perms[{b}] must be a permutation of range({n + 1}), got {q.tolist()}")
            if n and (not torch.isfinite(p).all() or p.min() < -1 or p.max() >= 1):
                raise ValueError(f"points[{b}] must lie in [-1, 1), got {p.tolist()}")
            out_pts[b, :n] = p.sort().values
            out_perm[b, : n + 1] = q
        n_points = torch.tensor([p.numel() for p in pts], dtype=torch.int64)
        flags = torch.zeros(len(pts), dtype=torch.bool) if invert is None else torch.as_tensor(
            invert, dtype=torch.bool)
        return cls(n_points, out_pts, out_perm, flags)


def _check_n_range(n_range: tuple[int, int]) -> tuple[int, int]:
    try:
        r_min, r_max = (int(v) for v in n_range)
    except (TypeError, ValueError):
        raise ValueError(f"n_range must be two integers (r_min, r_max), got {n_range!r}") from None
    if r_min < 0 or r_max < r_min or (r_min, r_max) != tuple(n_range):
        raise ValueError(f"n_range must be integers with 0 <= r_min <= r_max, got {n_range!r}")
    return r_min, r_max


def sample_shuffle_remap_params(
    batch: int,
    n_range: tuple[int, int] = (2, 50),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    invert_prob: float = 0.0,
) -> ShuffleRemapParams:
    """Draw Algorithm 1's random numbers for ``batch`` samples at once (no loop over samples).

    Per sample: ``N`` uniform in ``[r_min, r_max]``; ``N`` points ``torch.rand * 2 - 1`` sorted; a
    uniform random permutation of ``N + 1`` segments (the argsort of iid uniform keys); with
    ``invert_prob > 0`` (only then, so the stream is unchanged otherwise) an inversion flag. Drawn
    on the generator's device (default: ``device``), returned on ``device``.
    """
    r_min, r_max = _check_n_range(n_range)
    if int(batch) < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if not 0.0 <= invert_prob <= 1.0:
        raise ValueError(f"invert_prob must be in [0, 1], got {invert_prob}")
    out_device = torch.device(device) if device is not None else (
        generator.device if generator is not None else torch.device("cpu"))
    dev = generator.device if generator is not None else out_device
    width = max(r_max, 1)
    n = torch.randint(r_min, r_max + 1, (batch,), generator=generator, device=dev)
    raw = torch.rand((batch, width), generator=generator, device=dev).mul_(1 - (-1)).add_(-1)
    padding = torch.arange(width + 1, device=dev) > n[:, None]  # (B, R + 1): slots beyond N
    points = raw.masked_fill_(padding[:, 1:], _PAD).sort(dim=1).values
    keys = torch.rand((batch, width + 1), generator=generator, device=dev).masked_fill_(padding, 2.0)
    perm = keys.argsort(dim=1, stable=True)  # padding slots keep their place
    if invert_prob > 0:
        invert = torch.rand((batch,), generator=generator, device=dev) < invert_prob
    else:
        invert = torch.zeros(batch, dtype=torch.bool, device=dev)
    return ShuffleRemapParams(n, points, perm, invert).to(out_device)


@dataclass(frozen=True)
class _Tables:
    """Per-segment tables (flat, ``(B * (R + 1),)``) and per-bin rows (flat, ``(B * (M + 2),)``).

    Row ``r`` (bin ``[e_r, e_r + 2/M)``) holds the Eq. 8 piece of the segment that contains ``e_r``
    as ``value`` (the piece at ``e_r``) and ``scaled_slope`` (slope / (M/2)), and ``thr``, the
    control point inside the bin (+inf if none): a voxel at or above it uses row ``r + 1``, whose
    piece is the next segment's. Bins with two or more points get a NaN value and ``thr = +inf``.
    """

    seg_lo: torch.Tensor
    seg_slope: torch.Tensor
    seg_target: torch.Tensor
    seg_hi: torch.Tensor  # upper end of each source segment; +inf for the last one (x == 1 included)
    row_value: torch.Tensor
    row_scaled_slope: torch.Tensor
    row_thr: torch.Tensor
    row_seg: torch.Tensor  # global segment index of the bin's lower edge
    has_nan: bool
    max_points_per_row: int
    half: float  # M / 2
    offsets: torch.Tensor  # (B, 1): M / 2 + b * (M + 2)


def _segment_tables(params: ShuffleRemapParams, dtype: torch.dtype):
    """Eq. 8 per segment: lower end ``p_i``, slope ``(p_{j+1}-p_j)/(p_{i+1}-p_i)``, target ``p_j``.

    Returns ``(lo, slope, target, hi)``, each ``(B, R + 1)``; ``hi`` is the next control point and
    +inf for each sample's last segment (so ``x == 1`` belongs to it). Empty source segments
    (duplicate points, padding) get slope 0.
    """
    batch, width = params.points.shape
    knots = torch.nn.functional.pad(params.points.to(dtype).clamp(max=1.0), (1, 1), value=-1.0)
    knots[:, -1] = 1.0
    lo = knots[:, :-1]
    target = knots.gather(1, params.perm)
    slope = torch.nan_to_num((knots.gather(1, params.perm + 1) - target) / (knots[:, 1:] - lo),
                             nan=0.0, posinf=0.0, neginf=0.0)
    if bool(params.invert.any()):
        sign = 1.0 - 2.0 * params.invert.to(dtype).unsqueeze(1)
        slope, target = slope * sign, target * sign
    last = torch.arange(width + 1, device=knots.device) >= params.n_points[:, None]
    hi = knots[:, 1:].masked_fill(last, math.inf)
    return lo, slope, target, hi


def _bins(offsets: torch.Tensor, x: torch.Tensor, half: float) -> torch.Tensor:
    """The float bin position ``x * M/2 + M/2 + b * (M + 2)`` (exact product, one rounding)."""
    return torch.add(offsets, x, alpha=half)


def _build_tables(params: ShuffleRemapParams, bins: int, dtype: torch.dtype) -> _Tables:
    """Vectorised over the batch: per-segment Eq. 8 tables and the per-bin lookup rows.

    Each sample has ``M + 2`` rows: the ``M + 1`` bins a voxel can land in and one more that only
    the step past a point in the last bin reaches. The segment of row ``r`` of sample ``b`` is the
    number of the sample's control points in lower rows (a running count over all rows of all
    samples, less the points of earlier samples, plus the sample's first segment index).
    ``value = target + (e_r - lo) * slope`` is accurate to about one ulp: ``e_r - lo`` is at most a
    segment plus a bin wide, so its rounding error times the slope is at most an ulp of the
    target span.
    """
    lo, slope, target, hi = (t.reshape(-1) for t in _segment_tables(params, dtype))
    batch, width = params.points.shape
    n_seg = width + 1
    device = lo.device
    stride = bins + 2
    half = bins / 2.0
    offsets = torch.arange(half, half + batch * stride, stride, dtype=dtype, device=device)
    points = params.points.to(dtype)
    n_rows = batch * stride  # plus one dump row (index n_rows) for the padding slots
    real = torch.arange(width, device=device) < params.n_points[:, None]
    marked = _bins(offsets.unsqueeze(1), points.clamp(max=1.0), half).long()
    marked = torch.where(real, marked, n_rows).view(-1)  # sorted within each sample
    earlier = params.n_points.cumsum(0) - params.n_points  # points of the samples before
    first_seg = torch.arange(0, batch * n_seg, n_seg, device=device) - earlier
    row_seg = torch.bincount(marked + 1, minlength=n_rows + 2)[:n_rows].cumsum_(0)  # points below
    row_seg = row_seg.view(batch, stride).add_(first_seg.unsqueeze(1)).view(-1)
    shared = (marked[1:] == marked[:-1]) & (marked[1:] < n_rows)  # two points in one bin
    bad = marked[1:].masked_select(shared)
    most = 1
    if bad.numel():
        bad = bad.unique()
        rows, counts = torch.unique_consecutive(marked, return_counts=True)
        most = int(counts.masked_fill(rows == n_rows, 0).max())
    thr = torch.full((n_rows + 1,), math.inf, dtype=dtype, device=device)
    thr = thr.index_put_((marked,), points.view(-1))[:n_rows].index_fill_(0, bad, math.inf)
    edge = torch.arange(-1.0, -1.0 + (stride - 0.5) / half, 1.0 / half, dtype=dtype, device=device)
    offset = lo.index_select(0, row_seg).view(batch, stride).neg_().add_(edge)  # e_r - lo
    value = target.index_select(0, row_seg)
    row_slope = slope.index_select(0, row_seg)
    value.view(batch, stride).addcmul_(offset, row_slope.view(batch, stride))
    return _Tables(
        seg_lo=lo, seg_slope=slope, seg_target=target, seg_hi=hi,
        row_value=value.index_fill_(0, bad, math.nan), row_scaled_slope=row_slope.div_(half),
        row_thr=thr, row_seg=row_seg, has_nan=bad.numel() > 0, max_points_per_row=most,
        half=half, offsets=offsets.unsqueeze(1),
    )


def _choose_bins(batch: int, per_sample: int) -> int:
    """A power of two ``M``: about one bin per 16-32 voxels, between 256 and 16384 (measured: more
    bins cost more to build than they save in bins holding two points), ids below 2**24."""
    bins = 1 << max(8, min(14, (max(per_sample, 1) // 32).bit_length()))
    while bins > 2 and batch * (bins + 2) > _MAX_ROW_ID:
        bins //= 2
    return bins


def _chunk_buffers(batch: int, cols: int, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Work buffers for one chunk: two float ``(B, cols)`` with flat views, one index."""
    floats = [torch.empty(batch, cols, dtype=like.dtype, device=like.device) for _ in range(2)]
    index = torch.empty(batch * cols, dtype=torch.int64 if like.is_cuda else torch.int32,
                        device=like.device)
    return (*floats, *(f.view(-1) for f in floats), index, index.view(batch, cols))


def _remap_rows(xf: torch.Tensor, out: torch.Tensor, tables: _Tables) -> None:
    """Eq. 8 through the bin rows, chunk by chunk (NaN where a bin holds two points).

    Per voxel (``c`` the sample's offset): ``t = x*M/2 + c``; ``t += x >= thr[trunc(t)]``;
    ``r = trunc(t)``; ``u = x*M/2 - (r - c)`` (exact: M/2 (x - e_r)); ``out = value[r] +
    u * scaled_slope[r]``. The chunk of ``out`` itself holds ``t`` and ``u`` (less memory to touch).
    """
    batch, length = xf.shape
    width = min(length, max(_CHUNK // batch, 256))
    full = _chunk_buffers(batch, width, xf)
    half, offsets = tables.half, tables.offsets
    row_thr, row_value, row_slope = tables.row_thr, tables.row_value, tables.row_scaled_slope
    for start in range(0, length, width):
        xs = xf[:, start:start + width]
        cols = xs.shape[1]
        value, slope, value_flat, slope_flat, idx, idx2d = (
            full if cols == width else _chunk_buffers(batch, cols, xf))
        pos = out[:, start:start + cols]
        torch.add(offsets, xs, alpha=half, out=pos)
        idx2d.copy_(pos)  # truncation = floor, positions are >= 0
        torch.index_select(row_thr, 0, idx, out=value_flat)
        torch.ge(xs, value, out=slope)
        pos.add_(slope)  # exact: adding 1.0 cannot cross an integer
        idx2d.copy_(pos)
        torch.index_select(row_value, 0, idx, out=value_flat)
        torch.index_select(row_slope, 0, idx, out=slope_flat)
        torch.sub(offsets, pos.trunc_(), out=pos)
        torch.add(pos, xs, alpha=half, out=pos)  # u, exact
        torch.addcmul(value, pos, slope, out=pos)


def _nan_voxels(out: torch.Tensor) -> torch.Tensor:
    """Flat indices of the NaN voxels of ``out`` (B, L).

    One sum over strided groups of ``_GROUP`` voxels (voxel ``j + k * (L // _GROUP)`` of a sample,
    ``k < _GROUP``) finds the groups holding NaN; only their voxels, and the ``L % _GROUP`` voxels
    left over at the end of each sample, are then tested one by one.
    """
    batch, length = out.shape
    device = out.device
    stride = length // _GROUP
    candidates = []
    if stride:
        sums = out[:, : stride * _GROUP].reshape(batch, _GROUP, stride).sum(1)
        hit = torch.isnan(sums.view(-1)).nonzero().squeeze(1)
        sample = torch.div(hit, stride, rounding_mode="floor")
        base = hit + sample * (length - stride)  # b * L + j
        steps = torch.arange(0, _GROUP * stride, stride, device=device)
        candidates.append((base.unsqueeze(1) + steps).view(-1))
    if stride * _GROUP < length:
        rows = torch.arange(batch, device=device).unsqueeze(1) * length
        candidates.append((rows + torch.arange(stride * _GROUP, length, device=device)).view(-1))
    flat = torch.cat(candidates) if len(candidates) > 1 else candidates[0]
    return flat.masked_select(torch.isnan(out.view(-1).index_select(0, flat)))


def _fix_voxels(xf: torch.Tensor, out: torch.Tensor, flat: torch.Tensor, tables: _Tables) -> None:
    """Recompute exactly the voxels ``flat``: walk the control points of their bin (Eq. 8)."""
    if flat.numel() == 0:
        return
    x = xf.reshape(-1).index_select(0, flat)
    sample = torch.div(flat, xf.shape[1], rounding_mode="floor")
    offsets = tables.offsets.reshape(-1).index_select(0, sample)
    seg = tables.row_seg.index_select(0, _bins(offsets, x, tables.half).long())
    for _ in range(tables.max_points_per_row):
        seg += x >= tables.seg_hi.index_select(0, seg)
    lo = tables.seg_lo.index_select(0, seg)
    value = torch.addcmul(tables.seg_target.index_select(0, seg), x - lo,
                          tables.seg_slope.index_select(0, seg))
    out.view(-1).index_copy_(0, flat, value)


def _validate_image(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError("expected a floating-point torch tensor (B, C, ...) with values in [-1, 1]")
    if x.ndim < 2:
        raise ValueError(f"expected a batch (B, C, ...), got shape {tuple(x.shape)}")


def _checked_range(x: torch.Tensor) -> torch.Tensor:
    """Raise on NaN/inf or values beyond [-1 - 1e-3, 1 + 1e-3]; clamp the tolerated excess."""
    if x.numel() == 0:
        return x
    lo, hi = (float(v) for v in torch.aminmax(x))
    if not (lo >= -1.0 - _TOLERANCE and hi <= 1.0 + _TOLERANCE):
        if not bool(torch.isfinite(x).all()):
            raise ValueError("the image holds NaN or inf values; intensities must be finite in [-1, 1]")
        raise ValueError(
            f"intensities must lie in [-1, 1] (normalise first), got range [{lo:.6g}, {hi:.6g}]"
        )
    if lo < -1.0 or hi > 1.0:
        return x.clamp(-1.0, 1.0)
    return x


def apply_shuffle_remap(x: torch.Tensor, params: ShuffleRemapParams) -> torch.Tensor:
    """Apply drawn (or hand-made) parameters to ``x`` (B, C, ...) in [-1, 1]: Eq. 8 per sample."""
    _validate_image(x)
    if params.batch_size != x.shape[0]:
        raise ValueError(f"params are for a batch of {params.batch_size}, the image batch is {x.shape[0]}")
    x = _checked_range(x)
    if x.numel() == 0:
        return x.clone()
    work_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    params = params.to(x.device)
    batch = x.shape[0]
    xf = x.to(work_dtype).reshape(batch, -1)
    bins = _choose_bins(batch, xf.shape[1])
    if batch * (bins + 2) > _MAX_ROW_ID:  # only for batches of more than ~5.5 million samples
        half = batch // 2
        first = ShuffleRemapParams(*(t[:half] for t in (params.n_points, params.points,
                                                          params.perm, params.invert)))
        second = ShuffleRemapParams(*(t[half:] for t in (params.n_points, params.points,
                                                           params.perm, params.invert)))
        return torch.cat([apply_shuffle_remap(x[:half], first), apply_shuffle_remap(x[half:], second)])
    tables = _build_tables(params, bins, work_dtype)
    out = torch.empty_like(xf)
    _remap_rows(xf, out, tables)
    if tables.has_nan:
        _fix_voxels(xf, out, _nan_voxels(out), tables)
    return out.clamp_(-1.0, 1.0).reshape(x.shape).to(x.dtype)


def shuffle_remap(
    x: torch.Tensor,
    n_range: tuple[int, int] = (2, 50),
    generator: torch.Generator | None = None,
    *,
    invert_prob: float = 0.0,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, ShuffleRemapParams]:
    """Shuffle Remap (Algorithm 1, Eq. 8), one independent remap per sample of ``x`` (B, C, ...).

    Args:
        x: intensities in [-1, 1] (see the module docstring for the tolerance and ``x == 1``).
        n_range: ``(r_min, r_max)``, inclusive range of the number of control points (the paper uses
            (2, 50); Table 3 varies the upper end).
        generator: a ``torch.Generator`` for reproducibility (its device is where numbers are drawn).
        invert_prob: probability of negating a remapped sample (authors' code: 0.2; default off).
        return_params: also return the ``ShuffleRemapParams`` that were drawn.
    """
    _validate_image(x)
    params = sample_shuffle_remap_params(x.shape[0], n_range, generator, x.device, invert_prob)
    out = apply_shuffle_remap(x, params)
    return (out, params) if return_params else out


def _bezier_tables(batch: int, generator: torch.Generator | None, device: torch.device,
                   flip_prob: float, samples: int, grid: int) -> torch.Tensor:
    """Per-sample curve values on a uniform grid of ``grid`` knots over [-1, 1]: ``(B, grid)``."""
    dev = generator.device if generator is not None else device
    ctrl = torch.rand((batch, 2, 2), generator=generator, device=dev, dtype=torch.float64) * 2 - 1
    flip = torch.rand((batch,), generator=generator, device=dev) < flip_prob
    ctrl, flip = ctrl.to(device), flip.to(device)
    t = torch.linspace(0.0, 1.0, samples, dtype=torch.float64, device=device)
    basis = torch.stack([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t**2 * (1 - t), t**3])  # (4, T)
    ends = torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=torch.float64, device=device)
    pts = torch.cat([ends[:1].expand(batch, 1, 2), ctrl, ends[1:].expand(batch, 1, 2)], dim=1)
    curve = torch.einsum("kt,bkc->bct", basis, pts)  # (B, 2, T): x(t), y(t)
    xs = curve[:, 0].sort(dim=1).values
    ys = torch.where(flip[:, None], curve[:, 1].flip(1), curve[:, 1].sort(dim=1).values)
    knots = torch.linspace(-1.0, 1.0, grid, dtype=torch.float64, device=device).expand(batch, grid)
    right = torch.searchsorted(xs, knots.contiguous()).clamp(1, samples - 1)
    x0, x1 = xs.gather(1, right - 1), xs.gather(1, right)
    y0, y1 = ys.gather(1, right - 1), ys.gather(1, right)
    w = ((knots - x0) / torch.where(x1 > x0, x1 - x0, torch.ones_like(x0))).clamp(0, 1)
    return y0 + w * (y1 - y0)


def bezier_shift(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    flip_prob: float = 0.5,
    samples: int = 1000,
    grid: int = 16385,
) -> torch.Tensor:
    """Bezier-curve intensity shift (the IMSE(BC) baseline; Models Genesis' non-linear transform).

    Per sample: a cubic Bezier curve with end points (-1, -1) and (1, 1) and two control points
    uniform in [-1, 1]^2, sampled at ``samples`` values of t. As in Models Genesis'
    ``nonlinear_transformation``: with probability ``1 - flip_prob`` both coordinate lists are
    sorted (a monotonic curve); otherwise only x is sorted and y is taken in reversed t order, a
    mirrored curve that inverts the contrast and may be non-monotonic. Intensities go through the
    curve by linear interpolation (``np.interp``); the curve is tabulated once per sample on a
    uniform grid of ``grid`` knots over [-1, 1] so the per-voxel work is one lookup and a lerp
    (deviation from interpolating the ``samples`` points directly: median 2e-7, below 1e-3 even
    where the curve is nearly vertical, for the default sizes). Vectorised over the batch; every
    channel of a sample shares its curve. Hand-written: no library has this curve in [-1, 1] on
    torch tensors.
    """
    _validate_image(x)
    if not 0.0 <= flip_prob <= 1.0:
        raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
    if samples < 2 or grid < 2:
        raise ValueError("samples and grid must be >= 2")
    x = _checked_range(x)
    if x.numel() == 0:
        return x.clone()
    work_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    batch = x.shape[0]
    table = _bezier_tables(batch, generator, x.device, flip_prob, samples, grid)
    values = table.to(work_dtype)
    slopes = torch.diff(values, dim=1, append=values[:, -1:])
    xf = x.to(work_dtype).reshape(batch, -1)
    half = (grid - 1) / 2.0
    pos = xf * half + half  # in [0, grid - 1]
    cell = pos.floor().clamp(max=grid - 1)
    frac = pos - cell
    flat = (cell.long() + torch.arange(batch, device=x.device).unsqueeze(1) * grid).reshape(-1)
    base = values.reshape(-1).index_select(0, flat).view_as(xf)
    step = slopes.reshape(-1).index_select(0, flat).view_as(xf)
    out = torch.addcmul(base, frac, step).clamp_(-1.0, 1.0)
    return out.reshape(x.shape).to(x.dtype)


# --------------------------------------------------------------------------------------------
# Appearance within one modality (scanner, protocol, reconstruction)

APPEARANCE_LEVELS = ("none", "mild", "strong")


@dataclass(frozen=True)
class AppearanceRange:
    """How far :func:`randomise_appearance` and :func:`acquisition_noise` vary one modality's look.

    Each change is applied to a sample with probability ``prob``, its strength uniform in its range.
    Intensities are in [-1, 1]; ``shift`` says that -1 is "no signal" (MR), so the bias field and
    gamma act on ``(x + 1) / 2`` in [0, 1] and the result is rescaled as :mod:`imse_study.data.normalise`
    would (its 99.5th percentile to 1). CT keeps its Hounsfield window: ``bias``/``gamma`` are off.
    """

    prob: float
    bias_coeff: float  # Legendre coefficients (degree 3) of the log bias field, uniform in [-c, c]; 0: off
    gamma: tuple[float, float]  # (1, 1): off
    blur_sigma: tuple[float, float]  # Gaussian sigma in pixels, per axis; (0, 0): off
    zoom: tuple[float, float]  # down-sampling factor of the low-resolution simulation; (1, 1): off
    noise_std: float  # the largest standard deviation of additive Gaussian noise (in [-1, 1] units); 0: off
    shift: bool = True


_LEVELS = {
    "mild": AppearanceRange(prob=0.5, bias_coeff=0.15, gamma=(0.75, 1.35), blur_sigma=(0.25, 1.0),
                            zoom=(0.6, 1.0), noise_std=0.03),
    "strong": AppearanceRange(prob=0.7, bias_coeff=0.3, gamma=(0.5, 2.0), blur_sigma=(0.25, 1.75),
                              zoom=(0.35, 1.0), noise_std=0.08),
}


def appearance_range(level: str, modality: str = "mr") -> AppearanceRange | None:
    """The appearance changes of ``level`` (``none``, ``mild``, ``strong``) for ``modality``.

    ``none`` gives ``None`` (no change). MR gets every change; CT (calibrated Hounsfield units: no bias
    field, no free contrast curve) only blur, resolution and noise, as from another reconstruction
    kernel, slice thickness or dose (noise at half MR's level).
    """
    if level not in APPEARANCE_LEVELS:
        raise ValueError(f"unknown appearance level {level!r}: choose one of {', '.join(APPEARANCE_LEVELS)}")
    if level == "none":
        return None
    spec = _LEVELS[level]
    if is_ct(modality):
        # noise halved: 0.08 of the window's half-width is 100 HU, beyond a diagnostic scan's noise
        spec = AppearanceRange(spec.prob, 0.0, (1.0, 1.0), spec.blur_sigma, spec.zoom, spec.noise_std / 2,
                               shift=False)
    return spec


def randomise_appearance(
    x: torch.Tensor, spec: AppearanceRange, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per sample of ``x`` (B, C, *S) in [-1, 1]: bias field, gamma, blur, lower resolution (in this order).

    MONAI's ``RandBiasField``, ``RandAdjustContrast``, ``RandGaussianSmooth`` and
    ``RandSimulateLowResolution`` do the work, one sample at a time (they take one channel-first
    image). They draw from numpy ``RandomState``s, not from a torch generator, so each sample's
    transforms are seeded from one integer drawn from ``generator``: the result is a function of the
    generator's state, and a training step seeded by its number repeats exactly on resume. Every
    channel of a sample shares its draw. The output is in [-1, 1].
    """
    _validate_image(x)
    x = _checked_range(x)
    if x.numel() == 0:
        return x.clone()
    dev = generator.device if generator is not None else torch.device("cpu")
    seeds = torch.randint(0, 2**31 - 1, (x.shape[0],), generator=generator, device=dev).tolist()
    return torch.stack([_appearance_of_one(sample, spec, seed) for sample, seed in zip(x, seeds)])


def acquisition_noise(
    x: torch.Tensor, spec: AppearanceRange, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x`` (B, C, *S) plus Gaussian noise: per sample, with probability ``spec.prob``, a standard
    deviation uniform in [0, ``spec.noise_std``]; clamped to [-1, 1].

    Written with torch (one draw for the batch from ``generator``, where MONAI's ``RandGaussianNoise``
    would draw per sample from numpy): the noise of a step repeats exactly on resume.
    """
    _validate_image(x)
    if spec.noise_std <= 0 or x.numel() == 0:
        return x.clone()
    dev = generator.device if generator is not None else x.device
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    on = torch.rand(shape, generator=generator, device=dev) < spec.prob
    std = torch.rand(shape, generator=generator, device=dev) * spec.noise_std * on
    noise = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
    return (x + noise.to(x.device) * std.to(x.device, x.dtype)).clamp_(-1.0, 1.0)


def _appearance_of_one(img: torch.Tensor, spec: AppearanceRange, seed: int) -> torch.Tensor:
    """One channel-first sample through the MONAI transforms of ``spec``, seeded by ``seed``."""
    from monai.transforms import (
        RandAdjustContrast,
        RandBiasField,
        RandGaussianSmooth,
        RandSimulateLowResolution,
    )
    from monai.utils import convert_to_tensor

    state = np.random.RandomState(seed)
    y = (img + 1.0) / 2.0 if spec.shift else img
    if spec.bias_coeff > 0:
        bias = RandBiasField(degree=3, coeff_range=(-spec.bias_coeff, spec.bias_coeff), prob=spec.prob)
        y = bias.set_random_state(state=state)(y)
        if bias._do_transform:  # rescale as the data's percentile normalisation does
            y = y / torch.quantile(y.reshape(-1).float(), 0.995).clamp_min(1e-6)
        y = y.clamp(0.0, 1.0)
    if spec.gamma != (1.0, 1.0):
        y = RandAdjustContrast(prob=spec.prob, gamma=spec.gamma).set_random_state(state=state)(y)
    if spec.blur_sigma[1] > 0:
        y = RandGaussianSmooth(sigma_x=spec.blur_sigma, sigma_y=spec.blur_sigma, sigma_z=spec.blur_sigma,
                               prob=spec.prob).set_random_state(state=state)(y)
    if spec.zoom[0] < 1:
        mode = "bilinear" if img.dim() == 3 else "trilinear"
        y = RandSimulateLowResolution(prob=spec.prob, downsample_mode="area", upsample_mode=mode,
                                      zoom_range=spec.zoom).set_random_state(state=state)(y)
    out = convert_to_tensor(y, track_meta=False).to(img.dtype)
    return (out * 2.0 - 1.0 if spec.shift else out).clamp_(-1.0, 1.0)
