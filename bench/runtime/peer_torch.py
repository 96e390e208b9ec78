"""PyTorch eager and onnxruntime side of the runtime benchmark; prints one JSON object.

    peer_torch.py latency FRAMEWORK MODEL BATCH ITERATIONS THREADS WORKDIR [SECONDS]

FRAMEWORK: eager | ort. MODEL: a name in WORKDIR/models.json, written by run.py with the input size; eager loads
WORKDIR/MODEL.pt (the state dict run.py exported), ort WORKDIR/MODEL.onnx. At most ITERATIONS timed calls, fewer
(3 at least) once SECONDS have passed. Imports only what the framework needs, so peak RSS reflects that framework.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def peak_rss_mib():
    """VmHWM of this process (the parent's wait4 rusage would carry its own high-water mark across fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None


def skeleton(name, source):
    """The architecture without meaningful weights (they come from the state dict)."""
    if source == "bench":
        sys.path.insert(0, str(HERE))
        from models import MODELS
        return MODELS[name]()
    sys.path.insert(0, str(REPO / "training"))
    from dmlkit.export.zoo import BY_NAME
    return BY_NAME[name].make(False)


def runner(framework, name, threads, work):
    if framework == "ort":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(work / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"input": x})[0]
    import torch

    torch.set_num_threads(threads)
    source = json.loads((work / "models.json").read_text())[name]["source"]
    model = skeleton(name, source)
    model.load_state_dict(torch.load(work / f"{name}.pt", weights_only=True), strict=True)
    model.eval()

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


def main():
    mode, framework, name = sys.argv[1:4]
    if mode != "latency" or framework not in ("eager", "ort"):
        raise SystemExit(f"usage: {__doc__}")
    batch, iterations, threads = (int(v) for v in sys.argv[4:7])
    work = Path(sys.argv[7])
    budget = float(sys.argv[8]) if len(sys.argv) > 8 else float("inf")
    size = json.loads((work / "models.json").read_text())[name]["size"]
    load_start = time.perf_counter()
    run = runner(framework, name, threads, work)
    load_s = time.perf_counter() - load_start
    x = np.random.default_rng(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    for _ in range(2 if batch == 1 else 1):  # warm-up, as runtime-bench does
        run(x)
    times, started = [], time.perf_counter()
    while len(times) < max(iterations, 1) and (len(times) < 3 or time.perf_counter() - started < budget):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    times.sort()
    print(json.dumps({"median_ms": times[len(times) // 2] * 1e3, "min_ms": times[0] * 1e3,
                      "p90_ms": times[len(times) * 9 // 10] * 1e3, "iterations": len(times), "load_s": load_s,
                      "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main()
