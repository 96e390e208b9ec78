"""PyTorch (eager, TorchScript) and onnxruntime side of the runtime benchmark; prints one JSON object.

    peer_torch.py latency FRAMEWORK MODEL BATCH ITERATIONS THREADS
    peer_torch.py embed   FRAMEWORK MODEL COUNT BATCH THREADS
FRAMEWORK: eager | jit | ort. MODEL: a models.py name (ort reads MODEL.onnx from --dir).
Imports only what the framework needs, so peak RSS reflects that framework alone.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def peak_rss_mib():
    """VmHWM of this process (the parent's wait4 rusage would carry its own high-water mark across fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None


def emit(result):
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def inputs(batch, shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)).astype(np.float32)


def runner(framework, model_name, threads, onnx_dir):
    sys.path.insert(0, str(HERE))
    if framework == "ort":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(Path(onnx_dir) / f"{model_name}.onnx"), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"input": x})[0]
    import torch

    from models import build

    torch.set_num_threads(threads)
    model = build(model_name)
    if framework == "jit":
        with torch.no_grad():
            model = torch.jit.freeze(torch.jit.trace(model, torch.zeros(1, 3, 64, 64)))

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


def main():
    mode, framework, model_name = sys.argv[1:4]
    numbers = [int(v) for v in sys.argv[4:7]]
    onnx_dir = sys.argv[7] if len(sys.argv) > 7 else "."
    shape = (3, 64, 64)
    if mode == "latency":
        batch, iterations, threads = numbers
        run = runner(framework, model_name, threads, onnx_dir)
        x = inputs(batch, shape)
        for _ in range(5):
            run(x)
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - start)
        times.sort()
        emit({"median_ms": times[len(times) // 2] * 1e3, "min_ms": times[0] * 1e3, "p90_ms": times[len(times) * 9 // 10] * 1e3})
    else:
        count, batch, threads = numbers
        start = time.perf_counter()
        run = runner(framework, model_name, threads, onnx_dir)
        done, checksum = 0, 0.0
        while done < count:
            n = min(batch, count - done)
            checksum += float(run(inputs(n, shape, seed=done))[0, 0])
            done += n
        seconds = time.perf_counter() - start
        emit({"seconds": seconds, "per_second": count / seconds, "checksum": checksum})


if __name__ == "__main__":
    main()
