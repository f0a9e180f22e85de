"""Fabric benchmarks: hop-matrix kernel vs SciPy, and a 65,536-host fat-tree end to end."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def _best_of(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_hop_matrix() -> None:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path

    from gpupool.fabric.compiled import compile_fabric
    from gpupool.fabric.generate import fat_tree
    from gpupool.fabric.hop_kernels import hop_matrix

    print("== switch x switch hop matrix: gpupool (Numba bitset BFS) vs scipy.sparse.csgraph.shortest_path(unweighted)")
    print(f"{'fabric':<38}{'switches':>9}{'gpupool s':>11}{'scipy s':>10}{'speed-up':>10}  equal")
    for label, kwargs in [
        ("3-level fat-tree, 16 pods", dict(leaves=40, hosts_per_leaf=8, spines=40, pods=16, cores=640)),
        ("3-level fat-tree, 32 pods", dict(leaves=32, hosts_per_leaf=4, spines=32, pods=32, cores=1024)),
    ]:
        c = compile_fabric(fat_tree(**kwargs))
        n_vertices = c.adj_ptr.size - 1
        hop_matrix(c.adj_ptr, c.adj_idx, n_vertices, c.n_switches)  # warm the JIT
        ours_t = _best_of(lambda c=c, n=n_vertices: hop_matrix(c.adj_ptr, c.adj_idx, n, c.n_switches), 3)
        rows = np.repeat(np.arange(n_vertices), np.diff(c.adj_ptr))
        graph = csr_matrix((np.ones(c.adj_idx.size), (rows, c.adj_idx)), shape=(n_vertices, n_vertices))
        sources = np.arange(c.n_switches)
        ref_t = _best_of(lambda g=graph, s=sources: shortest_path(g, unweighted=True, directed=False, indices=s), 1)
        ref = shortest_path(graph, unweighted=True, directed=False, indices=sources)[:, : c.n_switches]
        equal = bool(np.array_equal(ref, hop_matrix(c.adj_ptr, c.adj_idx, n_vertices, c.n_switches).astype(float)))
        print(f"{label:<38}{c.n_switches:>9}{ours_t:>11.3f}{ref_t:>10.3f}{ref_t / ours_t:>9.1f}x  {equal}"
              f"   (target >= 7x)")


def bench_large_fat_tree() -> None:
    print("== 65,536-host 3-level fat-tree (radix-64 switches): whole-process generate + compile + export topology.conf")
    with tempfile.TemporaryDirectory() as tmp:
        fab = os.path.join(tmp, "ft64k.json")
        conf = os.path.join(tmp, "topology.conf")
        env = {**os.environ, "NO_COLOR": "1"}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gpupool", "fabric", "generate", "fat-tree", "--leaves", "32",
                        "--hosts-per-leaf", "32", "--spines", "32", "--pods", "64", "--cores", "1024", "-o", fab],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        t1 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gpupool", "fabric", "export", "--fabric", fab, "--format", "slurm-tree",
                        "-o", conf], check=True, env=env)
        t2 = time.perf_counter()
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with open(conf) as handle:
            lines = sum(1 for _ in handle)
        print(f"generate+compile {t1 - t0:.2f} s, export {t2 - t1:.2f} s, total {t2 - t0:.2f} s (target <= 20 s, "
              f"ratio {(t2 - t0) / 20:.2f}); peak RSS {peak_mb:.0f} MB (target <= 2048 MB, ratio {peak_mb / 2048:.2f}); "
              f"topology.conf {lines} lines")


if __name__ == "__main__":
    bench_hop_matrix()
    bench_large_fat_tree()
