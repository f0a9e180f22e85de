"""Numba kernels over flat arrays: all-sources BFS hop matrix."""

from __future__ import annotations

import numpy as np

from gpupool.jit import njit, prange

UNREACHABLE = np.int16(32767)


def _hop_matrix_small(adj_ptr: np.ndarray, adj_idx: np.ndarray, n_vertices: int, n_sources: int) -> bool:
    return n_sources <= 2048  # serial AOT code beats importing Numba for its threads (~1 s) up to here


@njit(cache=True, parallel=True, serial_aot_if=_hop_matrix_small)
def hop_matrix(adj_ptr: np.ndarray, adj_idx: np.ndarray, n_vertices: int, n_sources: int) -> np.ndarray:
    """Hop counts between the first `n_sources` vertices of an unweighted undirected CSR graph.

    All sources advance together: each vertex keeps a bitset of the sources that reached it,
    so one BFS level costs (edges x sources/64) word operations instead of a BFS per source.
    """
    words = (n_sources + 63) // 64
    visited = np.zeros((n_vertices, words), dtype=np.uint64)
    frontier = np.zeros((n_vertices, words), dtype=np.uint64)
    hop = np.full((n_sources, n_sources), UNREACHABLE, dtype=np.int16)
    for s in range(n_sources):
        bit = np.uint64(1) << np.uint64(s & 63)
        visited[s, s >> 6] |= bit
        frontier[s, s >> 6] |= bit
        hop[s, s] = 0
    level = 0
    grew = np.zeros(n_vertices, dtype=np.bool_)
    while True:
        level += 1
        nxt = np.zeros((n_vertices, words), dtype=np.uint64)
        for v in prange(n_vertices):
            row = nxt[v]
            for e in range(adj_ptr[v], adj_ptr[v + 1]):
                u = adj_idx[e]
                for w in range(words):
                    row[w] |= frontier[u, w]
            changed = False
            for w in range(words):
                fresh = row[w] & ~visited[v, w]
                row[w] = fresh
                if fresh != 0:
                    changed = True
                    visited[v, w] |= fresh
                    if v < n_sources:
                        bits = fresh
                        while bits != 0:
                            low = bits & (~bits + np.uint64(1))
                            b = 0
                            t = low
                            while t > np.uint64(1):
                                t >>= np.uint64(1)
                                b += 1
                            hop[v, w * 64 + b] = level
                            bits ^= low
            grew[v] = changed
        if not grew.any():
            break
        frontier = nxt
    return hop


@njit(cache=True)
def bfs_levels(adj_ptr: np.ndarray, adj_idx: np.ndarray, seeds: np.ndarray, n_vertices: int) -> np.ndarray:
    """Multi-source BFS distance (in edges) from any seed; -1 where unreachable."""
    dist = np.full(n_vertices, -1, dtype=np.int32)
    queue = np.empty(n_vertices, dtype=np.int32)
    head = 0
    tail = 0
    for s in seeds:
        if dist[s] < 0:
            dist[s] = 0
            queue[tail] = s
            tail += 1
    while head < tail:
        v = queue[head]
        head += 1
        for e in range(adj_ptr[v], adj_ptr[v + 1]):
            u = adj_idx[e]
            if dist[u] < 0:
                dist[u] = dist[v] + 1
                queue[tail] = u
                tail += 1
    return dist
