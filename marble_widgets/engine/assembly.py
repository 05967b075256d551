"""The joint geometry assembled from per-condition pieces into arrays allocated once (issue 15).

Why: stacking C pieces with ``np.concatenate`` at the end holds every piece and the joint arrays at
once, and the pieces' freed memory stays in the C allocator's heap: the caller's peak was about
twice the geometry. Here the joint arrays are sized from the stage-1 counts (nodes and edges per
condition), and each condition's arrays are copied into their slices as the condition finishes,
then dropped, so the caller holds the geometry plus about one condition. The result is the
concatenation's, array for array (same values, dtypes, node and entry order).
"""
from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

#: node-level arrays of a piece, stacked along the first axis (rows = the condition's nodes)
NODE_KEYS = ("keep", "pos", "signal", "frames", "degree")


def piece_counts(piece: dict) -> tuple[int, int, int]:
    """(nodes, edges, edges without self-loops) of one condition's piece (stage 1 or 2)."""
    ei = piece["edge_index"]
    return len(piece["keep"]), int(ei.shape[1]), int(np.count_nonzero(ei[0] != ei[1]))


def _offsets(sizes: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))]).astype(np.int64)


class StackedArray:
    """One joint array whose part ``c`` fills a known slice along ``axis``; allocated on the first part.

    Why: the parts may arrive in any order (a cluster) or at once (threads: the allocation is
    locked, the copies into disjoint slices are not); the joint array takes the first part's dtype
    and trailing shape (``dtype`` overrides it), as ``np.concatenate`` of same-typed parts would.
    """

    def __init__(self, sizes: Sequence[int], axis: int = 0, dtype=None) -> None:
        self.offsets = _offsets(sizes)
        self.axis, self.dtype, self.out = axis, dtype, None
        self._lock = threading.Lock()

    def _allocate(self, part: np.ndarray) -> np.ndarray:
        shape = list(part.shape)
        shape[self.axis] = int(self.offsets[-1])
        return np.empty(shape, dtype=self.dtype or part.dtype)

    def put(self, c: int, part: np.ndarray, shift: int = 0) -> None:
        """Copy ``part`` (plus ``shift``, e.g. a node offset) into slice ``c``."""
        a, b = int(self.offsets[c]), int(self.offsets[c + 1])
        with self._lock:
            if self.out is None:
                self.out = self._allocate(part)
        dst = self.out[:, a:b] if self.axis == 1 else self.out[a:b]
        if dst.shape != part.shape or (self.dtype is None and part.dtype != self.out.dtype):
            raise RuntimeError(f"part {c} has shape {part.shape} ({part.dtype}), its slot "
                               f"{dst.shape} ({self.out.dtype}): the stage-1 counts do not match.")
        if shift:
            np.add(part, np.int64(shift), out=dst, casting="same_kind")
        else:
            dst[...] = part


class BlockDiagonal:
    """A block-diagonal CSR matrix filled block by block, in any order, exactly as stacking the blocks.

    ``rows[c]`` is block c's size and ``capacity[c]`` an upper bound on its stored entries (kept
    explicit zeros included); slack is squeezed out in :meth:`matrix`. Index dtype as scipy picks it.
    """

    def __init__(self, rows: Sequence[int], capacity: Sequence[int]) -> None:
        self.rows, self.slots = _offsets(rows), _offsets(capacity)
        self.nnz = np.zeros(len(rows), dtype=np.int64)
        self.n = int(self.rows[-1])
        self.itype = np.int32 if max(self.n, int(self.slots[-1])) < 2**31 - 1 else np.int64
        self.indices = np.empty(int(self.slots[-1]), dtype=self.itype)
        self.indptr = np.zeros(self.n + 1, dtype=self.itype)
        self.data = None
        self._lock = threading.Lock()

    def put(self, c: int, block: sp.csr_matrix) -> None:
        """Copy square CSR ``block`` into block ``c`` (its entries and row pointers, shifted)."""
        r0, r1, k0 = int(self.rows[c]), int(self.rows[c + 1]), int(self.slots[c])
        if block.shape != (r1 - r0, r1 - r0) or block.nnz > self.slots[c + 1] - k0:
            raise RuntimeError(f"block {c} of shape {block.shape} with {block.nnz} entries does not fit "
                               f"its slot ({r1 - r0} rows, {int(self.slots[c + 1]) - k0} entries).")
        with self._lock:
            if self.data is None:
                self.data = np.empty(len(self.indices), dtype=block.data.dtype)
        k1 = k0 + block.nnz
        self.data[k0:k1] = block.data
        np.add(block.indices, np.int64(r0), out=self.indices[k0:k1], casting="same_kind")
        np.add(block.indptr[1:], np.int64(k0), out=self.indptr[r0 + 1:r1 + 1], casting="same_kind")
        self.nnz[c] = block.nnz

    def matrix(self) -> sp.csr_matrix:
        """The assembled matrix (blocks moved left over any unused capacity, in block order)."""
        total = 0
        for c, nnz in enumerate(self.nnz.tolist()):
            k0 = int(self.slots[c])
            if k0 != total:  # moving left: safe in block order (numpy handles the overlap)
                self.data[total:total + nnz] = self.data[k0:k0 + nnz]
                self.indices[total:total + nnz] = self.indices[k0:k0 + nnz]
                self.indptr[self.rows[c] + 1:self.rows[c + 1] + 1] -= k0 - total
            total += nnz
        self.slots = _offsets(self.nnz)  # compacted: a second call moves nothing
        data = self.data if self.data is not None else np.empty(0)
        return sp.csr_matrix((data[:total], self.indices[:total], self.indptr), shape=(self.n, self.n))


class JointLayout:
    """Where each condition's nodes, edges and operator entries go in the joint geometry's arrays.

    Why: built from the stage-1 counts alone (:func:`piece_counts`), so each condition's operators
    can be copied in as soon as they exist and then released; :meth:`put` may run in several
    threads at once (each condition writes its own slices). ``block`` is the operators' block
    size (the manifold dimension d for local gauges, 1 for the global gauge).
    """

    def __init__(self, counts: Sequence[tuple[int, int, int]], block: int) -> None:
        nodes, edges, plain = (list(col) for col in zip(*counts))
        self.sizes = nodes
        self.node_offsets = _offsets(nodes)
        self.nodes = {key: StackedArray(nodes) for key in NODE_KEYS}
        self.edge_index = StackedArray(edges, axis=1, dtype=np.int64)
        self.edges = {key: StackedArray(edges) for key in ("edge_weight", "connections")}
        self.kernel_weights = StackedArray(plain)
        self._rows = [n * block for n in nodes]
        self._capacity = [block * block * (e + n) for n, e in zip(nodes, plain)]  # edge + diagonal blocks
        self.laplacian = BlockDiagonal(self._rows, self._capacity)
        self.kernels: list[BlockDiagonal] = []
        self._lock = threading.Lock()

    def put(self, c: int, piece: dict) -> None:
        """Copy condition ``c``'s stage-2 piece into place, emptying ``piece`` as it goes."""
        for key in NODE_KEYS:
            part = piece.pop(key)
            if part is not None:
                self.nodes[key].put(c, part)
        self.edge_index.put(c, piece.pop("edge_index"), shift=int(self.node_offsets[c]))
        for key, stack in self.edges.items():
            part = piece.pop(key)
            if part is not None:
                stack.put(c, part)
        self.kernel_weights.put(c, piece.pop("kernel_weights"))
        kernels = piece.pop("kernels")
        with self._lock:
            if not self.kernels:
                self.kernels = [BlockDiagonal(self._rows, self._capacity) for _ in kernels]
        for k in range(len(kernels)):
            self.kernels[k].put(c, kernels[k])
            kernels[k] = None  # released as soon as it is copied
        self.laplacian.put(c, piece.pop("laplacian"))

    def sample_index(self, members: Sequence[np.ndarray]) -> np.ndarray:
        """Rows in the input: condition c's kept local indices mapped through ``members[c]`` (int64)."""
        keep = self.nodes["keep"].out
        out = np.empty(len(keep), dtype=np.int64)
        for c, m in enumerate(members):
            a, b = self.node_offsets[c], self.node_offsets[c + 1]
            out[a:b] = m[keep[a:b]]
        return out

    def arrays(self, members: Sequence[np.ndarray]) -> dict:
        """The joint arrays and matrices, keyed as :class:`~marble_widgets.engine.geometry.Geometry`."""
        return dict(
            pos=self.nodes["pos"].out, signal=self.nodes["signal"].out,
            condition=np.repeat(np.arange(len(self.sizes), dtype=np.int64), self.sizes),
            sample_index=self.sample_index(members),
            edge_index=self.edge_index.out, edge_weight=self.edges["edge_weight"].out,
            frames=self.nodes["frames"].out, connections=self.edges["connections"].out,
            kernels=[k.matrix() for k in self.kernels], laplacian=self.laplacian.matrix(),
            degree=self.nodes["degree"].out, kernel_weights=self.kernel_weights.out,
        )
