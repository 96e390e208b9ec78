"""Index benchmark: DMLKit's VectorIndex vs Python FAISS on the same Debian libfaiss (python3-faiss) and vs PyPI
faiss-cpu, side by side in one run, each in its own process under the same thread settings.

d=128, 100k base vectors, 1000 queries, k=10; Flat, HNSW32 (build and search), IVF1024,Flat; then one-query
latency rows (Flat and HNSW32 at 10k and 100k, p50/p99), and the GEMM limit of batched Flat search measured here.
The load average is recorded before and after: on a shared machine read the ratios, not the times.
Rewrites the "Index" section of bench/RESULTS.md. Run with `make bench` (or this file with the venv's python).
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "runtime"))
from machine import STRIPPED  # noqa: E402  (the ISA settings no measured process may inherit)


def clean_environ():
    """The caller's environment without CPU-model or ISA overrides (OPENBLAS_CORETYPE and the like): every process
    runs what a user's would. DMLKIT_SIMD / FAISS_SIMD_LEVEL stay: they are how a forced-AVX2 run is asked for."""
    return {k: v for k, v in os.environ.items() if k not in STRIPPED}

REPO = pathlib.Path(__file__).resolve().parents[2]
PEER = REPO / "bench" / "index" / "peer_faiss.py"
DEBIAN_PYTHON = "/usr/bin/python3"
RESULTS = REPO / "bench" / "RESULTS.md"
START, END = "<!-- index-bench:start -->", "<!-- index-bench:end -->"

CASES = [("Flat", None), ("HNSW32", "efSearch=64"), ("IVF1024,Flat", "nprobe=16")]
SETTINGS = [  # (label, OMP_NUM_THREADS, OPENBLAS_NUM_THREADS)
    ("omp 1, blas 1", 1, 1),
    ("omp 2, blas 1", 2, 1),
    ("omp 2, blas 2", 2, 2),
]


def make_data(folder, n, nq, d, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (256, d))
    base = (centres[rng.integers(0, 256, n)] + rng.normal(0, 0.6, (n, d))).astype(np.float32)
    queries = (centres[rng.integers(0, 256, nq)] + rng.normal(0, 0.6, (nq, d))).astype(np.float32)
    np.save(folder / "base.npy", base)
    np.save(folder / "queries.npy", queries)
    return base, queries


SINGLE_CASES = [("Flat", None, 10_000), ("Flat", None, 100_000), ("HNSW32", "efSearch=64", 10_000),
                ("HNSW32", "efSearch=64", 100_000)]

GEMM_PROBE = """
import json, sys, time, ctypes, numpy as np
m, n, k = 1000, 4096, 128
a = np.random.rand(m, k).astype(np.float32); b = np.random.rand(n, k).astype(np.float32)
def best(f):
    f(); ts = []
    for _ in range(9):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return 2 * m * n * k / sorted(ts)[len(ts) // 2] / 1e9
out = {}
blas = ctypes.CDLL("libopenblas.so.0"); blas.openblas_get_corename.restype = ctypes.c_char_p
c = np.zeros((m, n), np.float32); P = ctypes.c_void_p
out["openblas_core"] = blas.openblas_get_corename().decode()
out["openblas_gflops"] = best(lambda: blas.cblas_sgemm(101, 111, 112, m, n, k, ctypes.c_float(1), a.ctypes.data_as(P),
                                k, b.ctypes.data_as(P), k, ctypes.c_float(0), c.ctypes.data_as(P), n))
try:
    import torch
    torch.set_num_threads(1)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    out["torch_gflops"] = best(lambda: torch.mm(ta, tb.T))
except ImportError:
    pass
print(json.dumps(out))
"""


def gemm_limit(python):
    """Single-thread sgemm rates (Debian OpenBLAS as it detects this CPU; PyTorch's kernels as the attainable peak)."""
    env = dict(clean_environ(), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([python, "-c", GEMM_PROBE], env=env, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}


def fma_peak_gflops(binary):
    """The single-core f32 FMA peak (`runtime-bench machine`: register-only FMA loops per ISA), or None."""
    if not pathlib.Path(binary).exists():
        return None
    env = dict(clean_environ(), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([binary, "machine"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return max(json.loads(out.stdout.strip().splitlines()[-1])["fma_peak_gflops"].values(), default=None)


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def cpu_model():
    """The CPU's model name and its widest vector extension, from /proc/cpuinfo (Linux)."""
    try:
        info = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    widest = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name}, {widest}"


def run_peer(command, omp, blas, extra_env=None):
    env = dict(clean_environ(), OMP_NUM_THREADS=str(omp), OPENBLAS_NUM_THREADS=str(blas), MKL_NUM_THREADS=str(blas))
    env.update(extra_env or {})
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def recall(ids_path, truth):
    ids = np.load(ids_path)
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(ids, truth)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--nq", type=int, default=1000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--swift-bin", default=str(REPO / ".build" / "release" / "index-bench"))
    parser.add_argument("--runtime-bin", default=str(REPO / ".build" / "release" / "runtime-bench"),
                        help="runtime-bench, for the measured FMA peak (skipped when missing)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    parser.add_argument("--settings", default="all", help="thread settings to run, as indexes into SETTINGS"
                        " (e.g. '0,1'; default all)")
    parser.add_argument("--single", type=int, default=300, help="one-query searches timed per latency row (0: skip)")
    args = parser.parse_args()

    import faiss  # the venv's faiss-cpu, for the exact ground truth

    folder = pathlib.Path(tempfile.mkdtemp(prefix="dml-index-bench-"))
    base, queries = make_data(folder, args.n, args.nq, args.d)
    exact = faiss.IndexFlatL2(args.d)
    exact.add(base)
    _, truth = exact.search(queries, 10)

    peers = {
        "DMLKit": lambda f, p: [args.swift_bin, folder / "base.npy", folder / "queries.npy", f, "10", str(args.repeats)] + ([p] if p else []),
        "python3-faiss 1.7.3": lambda f, p: [DEBIAN_PYTHON, PEER, folder / "base.npy", folder / "queries.npy", f, "10", str(args.repeats)] + ([p] if p else []),
        "faiss-cpu (PyPI)": lambda f, p: [sys.executable, PEER, folder / "base.npy", folder / "queries.npy", f, "10", str(args.repeats)] + ([p] if p else []),
    }
    # A/B for the searches DMLKit runs itself: the same driver on FAISS 1.7.3's own Flat search (Debian's OpenBLAS
    # for batches) instead of DMLKit's GEMM + top-k (dml_flat_search), and on FAISS's own HNSW search instead of
    # dml_hnsw_search.
    faiss_search = {"DMLKIT_SEARCH": "faiss"}
    own_search_ab = {}
    settings = SETTINGS if args.settings == "all" else [SETTINGS[int(i)] for i in args.settings.split(",")]
    load_before = os.getloadavg()
    limit = gemm_limit(sys.executable)
    fma_peak = fma_peak_gflops(args.runtime_bin)
    rows = []
    started = time.time()
    for factory, param in CASES:
        for label, omp, blas in settings:
            results = {}
            for name, command in peers.items():
                r = run_peer([str(c) for c in command(factory, param)], omp, blas)
                r["recall"] = recall(r["ids"], truth)
                results[name] = r
                if "version" in r and name.startswith("faiss-cpu"):
                    peers_version = r["version"]
            if factory in ("Flat", "HNSW32"):
                r = run_peer([str(c) for c in peers["DMLKit"](factory, param)], omp, blas, faiss_search)
                r["recall"] = recall(r["ids"], truth)
                own_search_ab[(factory, label)] = r
            rows.append((factory, param, label, results))
            line = " | ".join(f"{n}: build {r['train_s'] + r['add_s']:.2f}s search {r['search_s'] * 1000:.1f}ms R@10 {r['recall']:.3f}" for n, r in results.items())
            print(f"{factory} [{label}] {line}", flush=True)
    # One-query latency: each peer in its own process on the same files, one thread (a single query does not split).
    single_rows = []
    single_ab = {}
    for factory, param, n in SINGLE_CASES if args.single else []:
        np.save(folder / f"base{n}.npy", base[:n])
        results = {}
        for name, command in peers.items():
            cmd = [str(c) for c in command(factory, param)] + [f"single={args.single}"]
            cmd[1 if name == "DMLKit" else 2] = str(folder / f"base{n}.npy")
            results[name] = run_peer(cmd, 1, 1)
            if name == "DMLKit" and (factory != "Flat" or n == 100_000):
                single_ab[(factory, n)] = run_peer(cmd, 1, 1, faiss_search)
        single_rows.append((factory, param, n, results))
        print(f"single {factory} {n}: " + " | ".join(f"{k}: p50 {percentile(r['single_s'], 50) * 1e3:.3f} ms" for k, r in results.items()), flush=True)
    elapsed = time.time() - started
    load_after = os.getloadavg()

    names = list(peers)
    table = [
        f"d={args.d}, {args.n:,} base vectors, {args.nq:,} queries, k=10, L2. Search time: best of {args.repeats} "
        f"batched runs of all queries. Build = train + add. Ratio = DMLKit time / peer time (lower is better; "
        f"1.00 = same speed). faiss-cpu is version {peers_version}. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores ({cpu_model()}). Whole run: {elapsed / 60:.1f} min. Load average (1/5/15 min) "
        f"{'/'.join(f'{v:.1f}' for v in load_before)} before, {'/'.join(f'{v:.1f}' for v in load_after)} after "
        f"(2 cores: above 2 means other jobs shared them). Removed from every measured process's environment: "
        f"{', '.join(sorted(STRIPPED))}"
        + (f" (the caller had {', '.join(sorted(k for k in STRIPPED if k in os.environ))})."
           if any(k in os.environ for k in STRIPPED) else "."),
        "",
        "| index | threads | step | DMLKit | python3-faiss 1.7.3 | faiss-cpu | DMLKit / python3-faiss | DMLKit / faiss-cpu | recall@10 (DMLKit / Debian / PyPI) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for factory, param, label, results in rows:
        dml, deb, pypi = (results[n] for n in names)
        shown = factory + (f" ({param})" if param else "")
        recalls = " / ".join(f"{results[n]['recall']:.3f}" for n in names)
        build = [r["train_s"] + r["add_s"] for r in (dml, deb, pypi)]
        search = [r["search_s"] for r in (dml, deb, pypi)]
        if factory != "Flat":
            table.append(f"| {shown} | {label} | build | {build[0]:.2f} s | {build[1]:.2f} s | {build[2]:.2f} s | "
                         f"{build[0] / build[1]:.2f} | {build[0] / build[2]:.2f} | |")
        table.append(f"| {shown} | {label} | search | {search[0] * 1e3:.1f} ms | {search[1] * 1e3:.1f} ms | "
                     f"{search[2] * 1e3:.1f} ms | {search[0] / search[1]:.2f} | {search[0] / search[2]:.2f} | {recalls} |")

    best = {}
    for factory, param, label, results in rows:
        t = results["DMLKit"]["search_s"]
        if factory not in best or t < best[factory][1]:
            best[factory] = (label, t)
    if limit:
        flops = 2.0 * args.n * args.nq * args.d
        peak = max(limit.get("torch_gflops", 0), limit["openblas_gflops"])
        limit_s = flops / peak / 1e9
        table += ["", f"GEMM limit of batched Flat search: {flops / 1e9:.1f} GFLOP; single-thread sgemm (1000x4096x128) "
                  f"measured in this run: Debian OpenBLAS ({limit['openblas_core']} kernels) {limit['openblas_gflops']:.0f} "
                  f"GFLOP/s, PyTorch {limit.get('torch_gflops', float('nan')):.0f} GFLOP/s, so the limit is "
                  f"{limit_s * 1e3:.0f} ms on one core (goal: Flat batch <= 1.3x that)."]
        one = [(label, results) for factory, _, label, results in rows if factory == "Flat" and label.startswith("omp 1")]
        if one:
            label, results = one[0]
            t = results["DMLKit"]["search_s"]
            floor = (f"; the FMA peak ({fma_peak:.0f} GFLOP/s, `runtime-bench machine`) would take {flops / fma_peak / 1e6:.0f} ms"
                     f", so {t / (flops / fma_peak / 1e9):.2f}x that" if fma_peak else "")
            table.append(f"DMLKit's Flat batch search at {label}: {t * 1e3:.0f} ms = {t / limit_s:.2f}x the GEMM limit "
                         f"(faiss-cpu: {results['faiss-cpu (PyPI)']['search_s'] / limit_s:.2f}x){floor}.")
    if own_search_ab:
        ours = {(factory, label): results["DMLKit"] for factory, _, label, results in rows}
        cells = [f"{factory} {label}: {r['search_s'] * 1e3:.1f} ms, R@10 {r['recall']:.3f} (DMLKit's path: "
                 f"{ours[(factory, label)]['search_s'] / r['search_s']:.2f}x that, R@10 {ours[(factory, label)]['recall']:.3f})"
                 for (factory, label), r in own_search_ab.items()]
        table += ["", "A/B of DMLKit's own searches, the same driver with `DMLKIT_SEARCH=faiss` (FAISS 1.7.3's own Flat "
                  "search through Debian's OpenBLAS instead of DMLKit's GEMM + top-k; FAISS's own HNSW search instead of "
                  "DMLKit's on the same graph; the graphs of the two runs differ where the build used 2 threads): "
                  + "; ".join(cells) + "."]
    if single_rows:
        table += ["", f"One query per call ({args.single} calls after one warm-up; 1 thread; latency p50 / p99):", "",
                  "| index | n | DMLKit | python3-faiss 1.7.3 | faiss-cpu | p50 DMLKit / python3-faiss | p50 DMLKit / faiss-cpu |",
                  "|---|---|---|---|---|---|---|"]
        for factory, param, n, results in single_rows:
            p = {k: (percentile(r["single_s"], 50) * 1e3, percentile(r["single_s"], 99) * 1e3) for k, r in results.items()}
            dml, deb, pypi = (p[k] for k in names)
            shown = factory + (f" ({param})" if param else "")
            table.append(f"| {shown} | {n:,} | {dml[0]:.3f} / {dml[1]:.3f} ms | {deb[0]:.3f} / {deb[1]:.3f} ms | "
                         f"{pypi[0]:.3f} / {pypi[1]:.3f} ms | {dml[0] / deb[0]:.2f} | {dml[0] / pypi[0]:.2f} |")
    if single_ab:
        ours = {(factory, n): results["DMLKit"] for factory, _, n, results in single_rows}
        cells = [f"{factory} {n:,}: p50 {percentile(r['single_s'], 50) * 1e3:.3f} ms (DMLKit's path: "
                 f"{percentile(ours[(factory, n)]['single_s'], 50) / percentile(r['single_s'], 50):.2f}x that)"
                 for (factory, n), r in single_ab.items()]
        table += ["", "One-query A/B with `DMLKIT_SEARCH=faiss`: " + "; ".join(cells) + "."]
    table += ["", "Fastest DMLKit search setting per index: " + "; ".join(f"{f}: {l}" for f, (l, _) in best.items()) + "."]
    section = "\n".join([START, "## Index (DMLIndex vs Python FAISS)", "",
                         "Reproduce: `make bench` (or `swift build -c release --product index-bench && "
                         ".venv/bin/python bench/index/run.py`).", ""] + table + [END])
    print(section)
    if not args.no_write:
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\nWritten by `make bench`; each section by its own harness.\n"
        if START in text and END in text:
            text = text[: text.index(START)] + section + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
