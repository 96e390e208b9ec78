"""Runtime benchmark: DMLRuntime vs PyTorch eager vs onnxruntime on the zoo's real backbones at full size and on
the two 64 px models of bench/runtime/models.py, every measurement in its own process, same thread count.

Per model and thread count: batch-1 latency and batch-16 throughput (median of timed calls in one process; the
rounds interleave the frameworks and the table takes the median over rounds), each process's peak RSS, the
1-minute load average before and after the model. Then DMLKit's per-layer profile at batch 16, 1 thread, grouped by
kind (conv 1x1 / 3x3 / depthwise / strided, linear, attention, elementwise, pooling, copies), with the dense kinds'
GFLOP/s as a fraction of the machine's measured FMA peak. Rewrites the runtime section of bench/RESULTS.md.

    .venv/bin/python bench/runtime/run.py                          # everything (long: run it alone)
    .venv/bin/python bench/runtime/run.py --models resnet18 --threads 1 --quick
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import torch

REPO = pathlib.Path(__file__).resolve().parents[2]
HERE = REPO / "bench" / "runtime"
RESULTS = REPO / "bench" / "RESULTS.md"
LAST_RUN = HERE / "last-run.json"
START, END = "<!-- runtime-bench:start -->", "<!-- runtime-bench:end -->"
sys.path[:0] = [str(REPO / "training"), str(HERE), str(REPO / "bench")]

from dmlkit.export import export_model  # noqa: E402
from dmlkit.export.zoo import BY_NAME, build as build_zoo  # noqa: E402
from machine import header_lines, machine_facts, peak_gflops, recorded_command, worker_env  # noqa: E402
from models import MODELS as BENCH_MODELS, build as build_bench  # noqa: E402
from results_section import replace_section  # noqa: E402

ZOO_MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0",
              "densenet121", "inception_v3", "vit_small_patch16_224"]
ALL_MODELS = list(BENCH_MODELS) + ZOO_MODELS
FRAMEWORKS = ["dmlkit", "eager", "ort"]
LABELS = {"dmlkit": "DMLKit", "eager": "PyTorch eager", "ort": "onnxruntime"}
BATCHES = (1, 16)
PROFILE_BATCH = 16


def bench_binary(path):
    if path:
        return pathlib.Path(path)
    subprocess.run(["swift", "build", "-c", "release", "--product", "runtime-bench"], cwd=REPO, check=True)
    bin_dir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.strip()
    return pathlib.Path(bin_dir) / "runtime-bench"


def prepare(name, work):
    """Exports the model once into `work`: .safetensors for DMLKit, .onnx for onnxruntime, .pt (state dict) for
    eager; records its input size in models.json. Files already there are kept (`--work` reuses them)."""
    index_path = work / "models.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    if name in index and all((work / f"{name}{ext}").exists() for ext in (".safetensors", ".onnx", ".pt")):
        return index[name]["size"]
    if name in BENCH_MODELS:
        model, size, source = build_bench(name), 64, "bench"
    else:
        (model, size), source = build_zoo(name), "zoo"
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    export_model(model, x, work / f"{name}.safetensors")
    with torch.no_grad():
        torch.onnx.export(model, (x,), str(work / f"{name}.onnx"), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "n"}, "output": {0: "n"}}, dynamo=False)
    torch.save(model.state_dict(), work / f"{name}.pt")
    index[name] = {"size": size, "source": source}
    index_path.write_text(json.dumps(index, indent=1))
    return size


AVX2 = False  # --avx2


def measure(command, threads):
    """Runs one worker under the thread setting; returns its JSON (the worker reports its own peak RSS)."""
    out = subprocess.run([str(c) for c in command], env=worker_env(threads, AVX2), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command[:4]))} failed: {out.stderr.strip()[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def latency_command(binary, work, fw, name, batch, iterations, threads, budget):
    if fw == "dmlkit":
        return [binary, "latency", work / f"{name}.safetensors", batch, iterations, threads, budget]
    return [sys.executable, HERE / "peer_torch.py", "latency", fw, name, batch, iterations, threads, work, budget]


def run_all(args, binary, work, data):
    """Every latency cell, round by round; `data` is saved after each model so a cut-short run keeps its rows."""
    iterations = {1: 30, 16: 8} if args.quick else {1: 60, 16: 12}
    budget = {1: 2.0, 16: 5.0} if args.quick else {1: 4.0, 16: 10.0}
    for round_ in range(args.rounds):
        for name in args.models:
            prepare(name, work)
            before = os.getloadavg()[0]
            for t in args.threads:
                for batch in args.batches:
                    for fw in FRAMEWORKS:
                        key = f"{name}|{fw}|{batch}|{t}"
                        try:
                            r = measure(latency_command(binary, work, fw, name, batch, iterations[batch], t, budget[batch]), t)
                        except RuntimeError as error:
                            r = {"error": str(error)}
                        data["cells"].setdefault(key, []).append(r)
                        print(round_, key, json.dumps(r)[:160], file=sys.stderr, flush=True)
            data["load"].setdefault(name, []).append([before, os.getloadavg()[0]])
            if round_ == 0 and not args.no_profile:  # beside the model's cells, so a cut-short run keeps it
                profile(args, binary, work, data, name)
            save(data)


def kind(layer):
    """Which kind a profiled layer is, for the per-op table."""
    ops = layer["op"].split("+")
    op = "batch_norm" if ops[:2] == ["concat", "batch_norm"] else ops[0]  # DenseNet's fused concat + BatchNorm
    if op == "conv2d":
        shape, groups, stride = layer.get("weight_shape", [0, 0, 0, 0]), layer.get("groups", 1), layer.get("stride", [1, 1])
        if groups > 1 and len(shape) == 4 and shape[1] == 1:
            return "conv depthwise"
        if groups > 1:
            return "conv grouped"
        if any(s > 1 for s in stride):
            return "conv strided"
        k = shape[2:] if len(shape) == 4 else []
        return {(1, 1): "conv 1x1", (3, 3): "conv 3x3"}.get(tuple(k), f"conv {'x'.join(map(str, k))}")
    if op == "linear":
        return "linear"
    if op in ("matmul", "softmax", "self_attention"):
        return "attention"
    if op in ("layer_norm", "channel_layer_norm", "batch_norm", "l2_normalize"):
        return "normalisation"
    if "pool" in op or op == "mean":
        return "pooling"
    if op in ("concat", "reshape", "permute", "flatten", "slice", "select", "identity", "dropout", "constant"):
        return "copies/reshape"
    return "elementwise"


def profile(args, binary, work, data, name):
    """DMLKit's per-layer profile of one model at batch PROFILE_BATCH, 1 thread."""
    try:
        p = measure([binary, "profile", work / f"{name}.safetensors", PROFILE_BATCH, 1 if args.quick else 2, 1], 1)
    except RuntimeError as error:
        p = {"error": str(error)}
    data["profiles"][name] = p
    print("profile", name, p.get("total_ms", p.get("error")), file=sys.stderr, flush=True)


def save(data):
    # With --no-write the raw numbers go to the work folder, so a trial run leaves the committed ones alone.
    path = data.get("raw_path") and pathlib.Path(data["raw_path"]) or LAST_RUN
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({k: v for k, v in data.items() if k != "raw_path"}, indent=1, sort_keys=True))
    os.replace(tmp, path)


def median_cell(data, name, fw, batch, t):
    runs = [r for r in data["cells"].get(f"{name}|{fw}|{batch}|{t}", []) if "median_ms" in r]
    if not runs:
        return None
    return {"ms": statistics.median(r["median_ms"] for r in runs), "rss": max(r["peak_rss_mib"] or 0 for r in runs),
            "rounds": len(runs)}


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}x"


def render(data, command):
    facts, peak = data["machine"], peak_gflops(data["machine"])
    models = [m for m in ALL_MODELS if any(k.startswith(m + "|") for k in data["cells"])]
    threads = sorted({int(k.split("|")[3]) for k in data["cells"]})
    lines = [START, "## Runtime (DMLRuntime vs PyTorch eager vs onnxruntime)", "",
             f"Command: `{command}` at commit {data.get('commit', '?')} ({data.get('started', '?')}), release build.", ""]
    lines += header_lines(facts)
    lines += [f"- torch {data['torch']}, onnxruntime {data['onnxruntime']}; {data['rounds']} interleaved round(s); each cell "
              "is the median over rounds of one process's median call; batch-16 throughput = 16 / median batch-16 call. "
              "Model load (file checks, fingerprint, weight preparation) is outside every timed region. Models: the zoo "
              "(`dmlkit.export.zoo`, random weights, calibrated BatchNorm) at full size (224 px, inception_v3 299 px) and "
              "bench/runtime/models.py at 64 px; onnxruntime runs `torch.onnx.export` of the same model. Peak RSS: the "
              "largest VmHWM of that framework's processes for the model (start-up and load included).", "",
             "| model | px | threads | b1 DMLKit | b1 eager | b1 ORT | b1 DMLKit/ORT | b16 DMLKit | b16 eager | b16 ORT | "
             "b16 DMLKit/ORT | RSS DMLKit / eager (ratio) | load before→after |", "|" + "---|" * 13]
    index = data.get("sizes", {})
    verdicts = []
    for name in models:
        loads = data["load"].get(name, [])
        load_text = ", ".join(f"{a:.1f}→{b:.1f}" for a, b in loads)
        for t in threads:
            cell = {(fw, b): median_cell(data, name, fw, b, t) for fw in FRAMEWORKS for b in BATCHES}
            if all(v is None for v in cell.values()):
                continue
            ms = lambda fw, b: f"{cell[(fw, b)]['ms']:.1f} ms" if cell[(fw, b)] else "-"  # noqa: E731
            tput = lambda fw: f"{16e3 / cell[(fw, 16)]['ms']:.1f}/s" if cell[(fw, 16)] else "-"  # noqa: E731
            lat_ratio = cell[("dmlkit", 1)]["ms"] / cell[("ort", 1)]["ms"] if cell[("dmlkit", 1)] and cell[("ort", 1)] else None
            tput_ratio = cell[("ort", 16)]["ms"] / cell[("dmlkit", 16)]["ms"] if cell[("dmlkit", 16)] and cell[("ort", 16)] else None
            rss_d = max((cell[("dmlkit", b)] or {}).get("rss", 0) for b in BATCHES)
            rss_e = max((cell[("eager", b)] or {}).get("rss", 0) for b in BATCHES)
            rss = f"{rss_d:.0f} / {rss_e:.0f} MiB ({rss_d / rss_e:.2f}x)" if rss_d and rss_e else "-"
            lines.append(f"| {name} | {index.get(name, '?')} | {t} | {ms('dmlkit', 1)} | {ms('eager', 1)} | {ms('ort', 1)} | "
                         f"{fmt_ratio(lat_ratio)} | {tput('dmlkit')} | {tput('eager')} | {tput('ort')} | "
                         f"{fmt_ratio(tput_ratio)} | {rss} | {load_text} |")
            lat_ok = lat_ratio is not None and lat_ratio <= 1.0
            tput_ok = tput_ratio is not None and tput_ratio >= 1.0
            rss_ok = bool(rss_d and rss_e and rss_d / rss_e <= 0.2)
            word = lambda ok: "met" if ok else "missed"  # noqa: E731
            verdicts.append(f"{name} @{t}t: {'met' if lat_ok and tput_ok else 'missed'}: batch-1 latency "
                            f"{fmt_ratio(lat_ratio)} onnxruntime ({word(lat_ok)}), batch-16 throughput {fmt_ratio(tput_ratio)} "
                            f"onnxruntime ({word(tput_ok)}), peak RSS {word(rss_ok)}")
    errors = [f"{k}: {r['error'][:200]}" for k, runs in data["cells"].items() for r in runs if "error" in r]
    lines += ["", "Targets (issue 16): batch-1 latency <= 1.0x onnxruntime and batch-16 throughput >= 1.0x onnxruntime; "
              "peak RSS <= 0.2x PyTorch's; dense layers >= 70% of the FMA peak.", ""]
    lines += [f"- {v}" for v in verdicts]
    lines += [f"- failed: {e}" for e in errors]
    lines += ["", f"Where DMLKit's time goes: per-layer profile at batch {PROFILE_BATCH}, 1 thread (fastest of the "
              f"repeats per layer), by kind: ms, share, and for dense kinds GFLOP/s and % of the {peak:.0f} GFLOP/s FMA peak.", ""]
    for name in models:
        p = data["profiles"].get(name)
        if not p:
            continue
        if "error" in p:
            lines.append(f"- {name}: profile failed: {p['error'][:200]}")
            continue
        groups = {}
        for layer in p["layers"]:
            g = groups.setdefault(kind(layer), {"ms": 0.0, "flops": 0, "n": 0})
            g["ms"] += layer["ms"]
            g["flops"] += layer.get("flops", 0)
            g["n"] += 1
        parts = []
        for k, g in sorted(groups.items(), key=lambda kv: -kv[1]["ms"]):
            text = f"{k} ({g['n']}) {g['ms']:.1f} ms {100 * g['ms'] / p['total_ms']:.0f}%"
            if g["flops"] and g["ms"] > 0:
                gf = g["flops"] / g["ms"] / 1e6
                text += f" at {gf:.0f} GFLOP/s = {100 * gf / peak:.0f}%" if peak else f" at {gf:.0f} GFLOP/s"
            parts.append(text)
        dense = p["dense_gflops"]
        lines.append(f"- {name}: {p['total_ms']:.0f} ms per batch of {PROFILE_BATCH}; dense layers {dense:.0f} GFLOP/s = "
                     f"{100 * dense / peak:.0f}% of peak (target 70%). " + "; ".join(parts) + ".")
    lines += ["", "Raw numbers of this run: bench/runtime/last-run.json."]
    return "\n".join(lines + [END])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=ALL_MODELS, choices=ALL_MODELS)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES), choices=BATCHES)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each cell takes the median")
    parser.add_argument("--quick", action="store_true", help="one round, fewer calls per process, one profile pass")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-layer profiles")
    parser.add_argument("--avx2", action="store_true", help="force the AVX2 kernels where a library has a setting")
    parser.add_argument("--bin", help="runtime-bench executable (default: build it in release)")
    parser.add_argument("--bin-commit", help="the commit --bin was built from, for the record")
    parser.add_argument("--work", help="folder for the exported models, reused across runs (default: a new temp folder)")
    parser.add_argument("--merge", action="store_true", help="add this run's cells to bench/runtime/last-run.json "
                        "(e.g. the 2-thread rows measured after the 1-thread ones) instead of starting afresh")
    parser.add_argument("--reuse", action="store_true", help="render bench/runtime/last-run.json again, measure nothing")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    global AVX2
    AVX2 = args.avx2
    command = recorded_command("bench/runtime/run.py", sys.argv[1:], ("--bin", "--work", "--bin-commit"))
    if args.reuse:
        data = json.loads(LAST_RUN.read_text())
        command = data.get("command", command)
    else:
        binary = bench_binary(args.bin)
        work = pathlib.Path(args.work) if args.work else pathlib.Path(tempfile.mkdtemp(prefix="runtime-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        import onnxruntime
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        # Say so when the sources built differ from the commit (a shared tree with someone's work in progress).
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "Sources", "Package.swift"], cwd=REPO,
                               capture_output=True, text=True).stdout.split("\n")
        dirty = sorted({line[3:].strip() for line in dirty if line.strip()})
        if dirty and not args.bin:
            commit += " plus uncommitted changes in " + ", ".join(dirty)
        elif args.bin:
            commit = f"{commit} (the harness); runtime-bench given with --bin, built from {args.bin_commit or 'an unrecorded tree'}"
        elif not commit:
            commit = "? (not a git checkout)"
        data = {"command": command, "commit": commit, "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "rounds": args.rounds,
                "machine": machine_facts(binary, args.avx2), "cells": {}, "load": {}, "profiles": {}, "sizes": {}}
        if args.merge and LAST_RUN.exists():
            earlier = json.loads(LAST_RUN.read_text())
            for key in ("cells", "load", "profiles", "sizes"):
                earlier[key].update({k: v for k, v in data[key].items()})
            earlier["command"] = f"{earlier['command']}`, then `{command}"
            earlier["commit"] = f"{earlier['commit']}, then {commit}"
            data, command = earlier, f"{earlier['command']}"
        if args.no_write:
            data["raw_path"] = str(work / "last-run.json")
        for name in args.models:
            data["sizes"][name] = prepare(name, work)
        save(data)
        run_all(args, binary, work, data)
    section = render(data, command)
    print(section)
    if not args.no_write:
        replace_section(RESULTS, START, END, section)
        print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
