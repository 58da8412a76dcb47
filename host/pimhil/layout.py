"""Where workloads go in device memory: BF16 conversion, GEMV tiling, attention placement.

The hub's tile commands fix the layouts (docs/control_hub.md); this module is the host's one copy of them, so
the driver and the reference computations (pimhil.reference) cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contract import DeviceParams, attn_tile_problem
from .golden import bf16_to_bits


def to_bf16_bits(a) -> np.ndarray:
    """BF16 bit patterns: uint16 arrays pass through, anything else is rounded from float (RNE)."""
    a = np.asarray(a)
    if a.dtype == np.uint16:
        return a
    if a.dtype.kind not in "fi":
        raise TypeError(f"expected BF16 bit patterns (uint16) or floats, got dtype {a.dtype}")
    return bf16_to_bits(a.astype(np.float32))


@dataclass(frozen=True)
class GemvTile:
    m0: int         # first (padded) output row of this tile
    groups: int     # row groups: the tile computes groups * banks outputs


@dataclass(frozen=True)
class GemvPlan:
    m: int
    k: int
    m_pad: int          # M rounded up to whole row groups (banks)
    k_pad: int          # K rounded up to whole bank rows (row_words)
    chunks: int         # K chunks = bank rows per weight row
    x_bank: int
    x_row: int          # x occupies rows x_row .. x_row + chunks - 1 of x_bank, above every tile's weights
    tiles: tuple


def pad_gemv(plan: GemvPlan, wb: np.ndarray, xb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W and x (BF16 bits) zero-padded to the plan's whole row groups and bank rows (returned as they are when
    they need no padding: a large W is not copied)."""
    if wb.shape == (plan.m_pad, plan.k_pad) and xb.shape == (plan.k_pad,):
        return wb, xb
    wp = np.zeros((plan.m_pad, plan.k_pad), np.uint16)
    wp[:wb.shape[0], :wb.shape[1]] = wb
    xp = np.zeros(plan.k_pad, np.uint16)
    xp[:xb.shape[0]] = xb
    return wp, xp


def gemv_plan(p: DeviceParams, m: int, k: int) -> GemvPlan:
    """Tiles for an (m, k) GEMV: x at the top rows of bank 0, weights from row 0, as many row groups per
    tile as the rows below x and the scratch memory allow, tiles balanced. Raises ValueError if K alone
    does not fit."""
    if m < 1 or k < 1:
        raise ValueError(f"gemv of shape ({m}, {k}) is empty")
    chunks = -(-k // p.row_words)
    groups = -(-m // p.banks)
    x_row = p.rows - chunks
    gmax = min(x_row // chunks if x_row > 0 else 0, p.scratch_words // p.banks)
    if gmax < 1:
        raise ValueError(f"K = {k} needs {chunks} bank rows per weight row plus {chunks} for x; the banks have "
                         f"{p.rows} rows (K <= {p.rows // 2 * p.row_words} on this device)")
    ntiles = -(-groups // gmax)
    per = -(-groups // ntiles)
    tiles = tuple(GemvTile(m0=i * per * p.banks, groups=min(per, groups - i * per)) for i in range(ntiles))
    return GemvPlan(m=m, k=k, m_pad=groups * p.banks, k_pad=chunks * p.row_words, chunks=chunks, x_bank=0,
                    x_row=x_row, tiles=tiles)


@dataclass(frozen=True)
class AttentionLayout:
    p: DeviceParams
    tokens: int
    dim: int
    k_row: int      # keys from this row of every bank
    v_row: int      # V-transpose rows from here

    @property
    def chunk(self) -> int:
        return min(self.tokens, self.p.row_words)

    @property
    def nchunks(self) -> int:
        return self.tokens // self.chunk

    def k_regions(self, kb: np.ndarray):
        """Per bank b, keys b, b+B, ... as consecutive slots of d/L bursts: one contiguous region."""
        return [np.ascontiguousarray(kb[b::self.p.banks]) for b in range(self.p.banks)]

    def v_regions(self, vb: np.ndarray):
        """(bank, row, bits) writes of V-transpose: dimension i in bank i mod B, rows v_row + (i div B) * nch + c.
        Full rows are merged into one region per bank."""
        B, vt = self.p.banks, np.ascontiguousarray(vb.T)
        if self.chunk == self.p.row_words:
            return [(b, self.v_row, np.ascontiguousarray(vt[b::B]).ravel()) for b in range(min(B, self.dim))]
        return [(i % B, self.v_row + (i // B) * self.nchunks + c, vt[i, c * self.chunk:(c + 1) * self.chunk])
                for i in range(self.dim) for c in range(self.nchunks)]


def attention_problem(p: DeviceParams, tokens: int, dim: int) -> str | None:
    """Why T = tokens, d = dim cannot run as one attention tile in the layout below, or None if it can."""
    if dim % p.lanes:
        return f"d = {dim} must be a multiple of lanes = {p.lanes}"
    lay = attention_layout(p, tokens, dim)
    problem = attn_tile_problem(p, tokens=tokens, dl=dim // p.lanes, row=lay.k_row, col=lay.v_row, gb=0)
    return None if problem is None else f"it does not fit one tile on this device: {problem[1]}"


def attention_layout(p: DeviceParams, tokens: int, dim: int) -> AttentionLayout:
    """Keys from row 0, V-transpose right above them (the hub checks that both fit)."""
    dl = max(dim // p.lanes, 1)
    k_rows = -(-(tokens // p.banks) * dl // p.bursts_per_row)
    return AttentionLayout(p, tokens, dim, k_row=0, v_row=k_rows)


def composed_tile_problem(p: DeviceParams, tokens: int, dim: int) -> str | None:
    """Why T = tokens, d = dim cannot run as one driver-composed attention tile (score MACs, the function
    unit's softmax on the host, V-transpose MACs in slices of banks * accs dimensions), or None if it can."""
    B, L, C = p.banks, p.lanes, p.bursts_per_row
    if dim % L or dim % B:
        return f"d = {dim} must be a multiple of lanes = {L} and banks = {B}"
    dl = dim // L
    if dl & (dl - 1) or dl > min(C, p.gb_bursts):
        return f"d/lanes = {dl} must be a power of two <= {min(C, p.gb_bursts)}"
    if tokens < B or tokens % B or tokens > p.scratch_words:
        return f"tokens {tokens} must be a multiple of banks = {B} in [{B}, scratch_words = {p.scratch_words}]"
    if tokens > p.row_words and tokens % p.row_words:
        return f"tokens {tokens} above row_words = {p.row_words} must be a multiple of it"
    lay = attention_layout(p, tokens, dim)
    if lay.v_row + (dim // B) * lay.nchunks > p.rows:
        return f"K and V-transpose need {lay.v_row + (dim // B) * lay.nchunks} rows, the banks have {p.rows}"
    return None


@dataclass(frozen=True)
class AttentionPlan:
    tokens: int
    dim: int
    tile_tokens: int    # tokens per tile; tokens // tile_tokens tiles, combined (numerics.md §8.1) if more than one
    hub: bool           # True: each tile is the hub's ATTN_TILE; False: composed by the driver

    @property
    def tiles(self) -> int:
        return self.tokens // self.tile_tokens


def attention_plan(p: DeviceParams, tokens: int, dim: int) -> AttentionPlan:
    """How attention over `tokens` keys of dimension `dim` runs: the largest tile size dividing T, as hub
    ATTN_TILEs if any size fits one, else driver-composed tiles. Raises ValueError with the reason when none
    fits (T not a multiple of banks, d not a multiple of lanes, K rows too long for a bank row, ...)."""
    sizes = []
    t = tokens
    while t >= p.banks and t % p.banks == 0:
        if tokens % t == 0:
            sizes.append(t)
        if t % 2:
            break
        t //= 2
    for hub in (True, False):
        for size in sizes:
            problem = attention_problem(p, size, dim) if hub else composed_tile_problem(p, size, dim)
            if problem is None and (not hub or size == tokens or size <= p.scratch_words):
                return AttentionPlan(tokens, dim, size, hub)
    why = attention_problem(p, tokens, dim) if not sizes else composed_tile_problem(p, sizes[-1], dim)
    raise ValueError(f"attention T={tokens}, d={dim} cannot be tiled on this device: "
                     f"{why or f'T must be a multiple of banks = {p.banks}'}")
