"""Warm step, run by scripts/bootstrap after `pip install`: nothing compiles at a command's first use.

  python -m gpupool.warm [--check] [--no-aot] [--dir DIR]

1. Runs gpupool's own commands in-process on small generated fabrics (fat-tree, rail-optimised
   fat-tree, dragonfly: generate, plan in every request shape, simulate), so every kernel is compiled
   by Numba for exactly the argument types the commands use and lands in Numba's on-disk cache
   (NUMBA_CACHE_DIR, or Numba's default `__pycache__` beside each module).
2. Compiles those same kernels, for those signatures, ahead of time with Numba's AOT compiler
   (`numba.pycc`, needs a C compiler) into one extension module plus a manifest (`kernels.json`:
   the sources' hash, Python/NumPy versions, type key -> exported function) in the first writable of
   gpupool.jit.aot_dirs(); `gpupool.jit` runs it without importing Numba at all.
3. Checks the AOT build against Numba on the same inputs; a mismatch deletes it.
Without a C compiler only step 1 happens (commands then import Numba and load its cache).
`--check` exits 0 when a current AOT build exists, 1 otherwise, and builds nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Any

from gpupool import jit

# Modules holding kernels: their sources key the AOT build (a change anywhere means Numba again).
KERNEL_MODULES = ("gpupool.fabric.hop_kernels", "gpupool.placement.congestion", "gpupool.placement.cost",
                  "gpupool.placement.graph", "gpupool.placement.objective", "gpupool.placement.tree_dp",
                  "gpupool.simulate.reservation_kernels")


def _quiet_main(argv: list[str]) -> int:
    from gpupool.cli.main import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(argv)


def exercise(workdir: str) -> None:
    """Every kernel, called through the commands with the argument types they use at run time."""
    from gpupool.fabric.compiled import load_compiled

    fabrics = {
        "tree": ["fat-tree", "--leaves", "4", "--hosts-per-leaf", "4", "--spines", "2", "--pods", "2", "--cores", "2"],
        "rails": ["fat-tree", "--leaves", "2", "--hosts-per-leaf", "4", "--spines", "2", "--rails", "2"],
        "nvlink": ["fat-tree", "--leaves", "4", "--hosts-per-leaf", "4", "--spines", "2", "--nvlink-domain-hosts", "2"],
        "dragonfly": ["dragonfly", "--groups", "4", "--routers-per-group", "3", "--hosts-per-router", "2",
                      "--global-links-per-router", "1"],
    }
    for name, args in fabrics.items():
        path = os.path.join(workdir, f"{name}.json")
        if _quiet_main(["fabric", "generate", *args, "-o", path]) != 0:
            raise RuntimeError(f"warm: cannot generate the {name} fabric")
        compiled = load_compiled(path)
        free_path = os.path.join(workdir, f"{name}-free.json")
        with open(free_path, "w", encoding="utf-8") as handle:
            json.dump({h: (i * 5) % 9 for i, h in enumerate(compiled.host_names)}, handle)
        base = ["--fabric", path, "--free", free_path, "--json"]
        for request in (["--gpus", "12"], ["--gpus", "1"], ["--nodes", "2", "--gpus-per-node", "2"],
                        ["--gpus", "6", "--max-hops", "4"], ["--gpus", "12", "--objective", "pack"],
                        ["--gpus", "1", "--objective", "pack"]):
            _quiet_main(["plan", *base, *request])
        _quiet_main(["simulate", "--fabric", path, "--workload", "synthetic:jobs=60,multi=0.4", "--json",
                     "--policies", "slurm-tree,gpupool,gpupool-wait,gpupool-pack"])
        _quiet_main(["simulate", "--fabric", path, "--workload", "synthetic:jobs=60,multi=0.4", "--json",
                     "--backfill", "slurm", "--policies", "slurm-tree,gpupool"])
        # The contention objective's kernel runs once running multi-leaf jobs load an uplink.
        _quiet_main(["simulate", "--fabric", path, "--workload", "synthetic:jobs=60,multi=0.4", "--json",
                     "--contention", "on", "--policies", "gpupool-contention"])


def _compile_bytecode() -> None:
    """Byte-compile the package, so a first command does not compile Python sources either."""
    import compileall

    with contextlib.redirect_stdout(io.StringIO()):
        compileall.compile_dir(jit.PACKAGE_DIR, quiet=2)


def _sources() -> list[str]:
    return [module.removeprefix("gpupool.").replace(".", os.sep) + ".py" for module in KERNEL_MODULES]


def build_aot(target: str) -> dict[str, Any]:
    """Compile the kernels (parallel ones only with serial_aot_if) for the signatures Numba compiled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending-deprecation notice: it is still Numba's AOT compiler
        from numba.pycc import CC

    sources = _sources()
    digest = jit.source_hash(sources)
    module_name = f"_gpupool_kernels_{digest[:16]}"
    kernels: dict[str, dict[str, str]] = {}
    os.makedirs(target, exist_ok=True)
    build = tempfile.mkdtemp(prefix=".build-", dir=target)
    try:
        cc = CC(module_name)
        cc.output_dir = build
        cc.verbose = False
        count = 0
        for kernel in jit.registry():
            # pycc cannot parallelise: a parallel kernel is exported only when it says for which inputs
            # its serial form is good enough (serial_aot_if); else it stays with Numba's threads.
            if (kernel.options.get("parallel") and kernel.serial_aot_if is None) or kernel._dispatcher is None:
                continue
            for sig in kernel._dispatcher.nopython_signatures:
                key = jit.signature_key(tuple(sig.args))
                if key is None or key in kernels.get(kernel.kernel_id, {}):
                    continue
                export = f"k{count}"
                count += 1
                cc.export(export, sig)(kernel.py_func)
                kernels.setdefault(kernel.kernel_id, {})[key] = export
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc.compile()
        built = [f for f in os.listdir(build) if f.startswith(module_name) and f.endswith((".so", ".pyd"))]
        if len(built) != 1:
            raise RuntimeError(f"AOT build produced {built}")
        manifest = {"format": jit.MANIFEST_FORMAT, "module": module_name, "file": built[0], "sources": sources,
                    "source_hash": digest, "build": jit.build_tag(), "kernels": kernels}
        os.replace(os.path.join(build, built[0]), os.path.join(target, built[0]))
        tmp = os.path.join(build, jit.MANIFEST)
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=1, sort_keys=True)
        os.replace(tmp, os.path.join(target, jit.MANIFEST))  # the manifest last: readers never see half a build
        for old in os.listdir(target):  # builds of older sources
            if old.startswith("_gpupool_kernels_") and old != built[0]:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(target, old))
        return manifest
    finally:
        shutil.rmtree(build, ignore_errors=True)


def verify_aot(workdir: str) -> bool:
    """The AOT build answers the warm plans exactly as Numba does (a fresh process, so it loads it)."""
    import subprocess

    script = ("import json,sys\nfrom gpupool.warm import plan_answers\n"
              "print(json.dumps(plan_answers(sys.argv[1])))\n")
    answers = []
    for aot in ("1", "0"):
        env = dict(os.environ, GPUPOOL_AOT=aot)
        run = subprocess.run([sys.executable, "-c", script, workdir], capture_output=True, text=True, env=env,
                             check=False)
        if run.returncode != 0:
            return False
        answers.append(json.loads(run.stdout))
    return answers[0] == answers[1] and bool(answers[0])


def plan_answers(workdir: str) -> list[Any]:
    """The warm plans' JSON answers (placement timings left out)."""
    out = []
    for name in ("tree", "rails", "dragonfly"):
        base = ["--fabric", os.path.join(workdir, f"{name}.json"), "--free", os.path.join(workdir, f"{name}-free.json")]
        for request in (["--gpus", "12"], ["--nodes", "2", "--gpus-per-node", "2"]):
            from gpupool.cli.main import main

            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
                main(["--json", "plan", *base, *request])
            doc = json.loads(buffer.getvalue())
            for key in ("elapsed_ms", "placement_ms"):
                doc.pop(key, None)
            doc.get("slurm_reference", {}).pop("elapsed_ms", None)
            out.append(doc)
    if jit.aot_table() == {} and os.environ.get("GPUPOOL_AOT", "1") != "0":
        return []  # asked for the AOT build but none loaded: not a match
    return out


def current_build() -> str | None:
    """The directory of an AOT build that matches these sources, or None."""
    for directory in jit.aot_dirs():
        if jit.read_manifest(directory) is not None:
            return directory
    return None


def numba_stamp() -> str:
    """The file saying the warm step ran for these sources and this Numba cache (NUMBA_CACHE_DIR,
    else Numba's default); it holds "aot" or "numba" (no AOT build was possible here)."""
    digest = jit.source_hash(_sources())[:16]
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.path.join(os.environ["NUMBA_CACHE_DIR"], f".gpupool-warm-{digest}")
    for directory in jit.aot_dirs():
        if os.access(directory, os.W_OK) or os.access(os.path.dirname(directory), os.W_OK):
            return os.path.join(directory, f".numba-default-warm-{digest}")
    return os.path.join(jit.aot_dirs()[-1], f".numba-default-warm-{digest}")


def is_warm() -> bool:
    """The warm step ran for these sources, and its AOT build (when it made one) is still current."""
    try:
        with open(numba_stamp(), encoding="utf-8") as handle:
            outcome = handle.read().strip()
    except OSError:
        return False
    return outcome == "numba" or (outcome == "aot" and current_build() is not None)


def _stamp(outcome: str) -> None:
    path = numba_stamp()
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(outcome + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpupool.warm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 0 when the warm step ran for these sources (and its AOT build is current)")
    parser.add_argument("--no-aot", action="store_true", help="only warm Numba's cache")
    parser.add_argument("--dir", help="where to write the AOT build (default: first writable of gpupool.jit.aot_dirs)")
    args = parser.parse_args(argv)
    if args.check:
        found = current_build()
        warm = is_warm()
        print(f"AOT build: {found or 'none current'}; warm step {'done' if warm else 'needed'}")
        return 0 if warm else 1
    start = time.perf_counter()
    jit.set_aot_enabled(False)  # Numba's own dispatchers: they record the signatures to export
    with tempfile.TemporaryDirectory(prefix="gpupool-warm-") as workdir:
        exercise(workdir)
        print(f"gpupool.warm: Numba cache warm ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
        _compile_bytecode()
        if args.no_aot:
            _stamp("numba")
            return 0
        target = next((d for d in ([args.dir] if args.dir else jit.aot_dirs()) if _writable(d)), None)
        if target is None:
            print("gpupool.warm: warning: no writable place for AOT kernels; commands will import Numba",
                  file=sys.stderr)
            _stamp("numba")
            return 0
        try:
            manifest = build_aot(target)
        except Exception as exc:  # noqa: BLE001 - no C compiler, pycc failure: commands still work through Numba
            print(f"gpupool.warm: warning: no AOT kernels ({type(exc).__name__}: {exc}); "
                  "commands will import Numba", file=sys.stderr)
            _stamp("numba")
            return 0
        if not verify_aot(workdir):
            for name in (jit.MANIFEST, manifest["file"]):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(target, name))
            print("gpupool.warm: warning: AOT kernels disagree with Numba: removed", file=sys.stderr)
            return 1
        _stamp("aot")
        n = sum(len(v) for v in manifest["kernels"].values())
        print(f"gpupool.warm: {n} AOT kernel variants in {target} ({time.perf_counter() - start:.1f} s)",
              file=sys.stderr)
        return 0


def _writable(directory: str) -> bool:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)


if __name__ == "__main__":
    sys.exit(main())
