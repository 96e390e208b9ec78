"""Times a Python FAISS build (Debian python3-faiss or PyPI faiss-cpu, whichever this interpreter imports) on the
benchmark data, mirroring bench/index/swift/main.swift step by step. Prints one JSON line."""
import json
import sys
import time

import faiss
import numpy as np


def main():
    base_path, queries_path, factory, k, repeats = sys.argv[1:6]
    options = dict(o.split("=") for o in sys.argv[6:])
    single = int(options.pop("single", 0))  # > 0: also time this many one-query searches
    param = next(iter(f"{n}={v}" for n, v in options.items()), None)
    k, repeats = int(k), int(repeats)
    base = np.load(base_path).astype(np.float32)
    queries = np.load(queries_path).astype(np.float32)
    index = faiss.index_factory(base.shape[1], factory, faiss.METRIC_L2)
    train = 0.0
    if not index.is_trained:
        start = time.perf_counter()
        index.train(base)
        train = time.perf_counter() - start
    start = time.perf_counter()
    index.add(base)
    add = time.perf_counter() - start
    params = None
    if param:
        name, value = param.split("=")
        params = faiss.SearchParametersIVF(nprobe=int(value)) if name == "nprobe" else None
        if name == "efSearch":
            index.hnsw.efSearch = int(value)  # 1.7.3 ignores SearchParametersHNSW.efSearch; set it the old way
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, ids = index.search(queries, k, params=params) if params is not None else index.search(queries, k)
        times.append(time.perf_counter() - start)
    latencies = []
    if single:
        one = lambda q: index.search(q, k, params=params) if params is not None else index.search(q, k)
        one(queries[:1])  # untimed warm-up, as in the Swift driver
        for i in range(single):
            q = np.ascontiguousarray(queries[i % len(queries)][None, :])
            start = time.perf_counter()
            one(q)
            latencies.append(time.perf_counter() - start)
    out = queries_path.replace("queries.npy", f"peer_ids_{faiss.__version__}.npy")
    np.save(out, ids)
    print(json.dumps({"train_s": train, "add_s": add, "search_s": min(times), "ids": out,
                      "version": faiss.__version__, "omp_threads": faiss.omp_get_max_threads(),
                      **({"single_s": latencies} if latencies else {})}))


if __name__ == "__main__":
    main()
