"""The machine header every runtime-speed table carries: CPU model and vector flags, the measured single-core f32
FMA peak (AVX-512 / AVX2 loops in runtime-bench), and the BLAS kernel OpenBLAS picked for this CPU."""

import json
import os
import pathlib
import platform
import subprocess

# Flags that decide which kernels can run (shown when present).
FLAGS = ["sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni",
         "amx_tile", "amx_bf16"]


def cpu_summary():
    """(model name, the FLAGS this CPU has) from /proc/cpuinfo, or the platform's words elsewhere."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        if key.strip() == "flags":
            have = set(value.split())
            flags = [f for f in FLAGS if f in have]
            break
    return model, flags


# Settings that pin the kernels' ISA: `avx2` forces every library that has one onto AVX2 (onnxruntime's MLAS has
# none and always dispatches on cpuid). Without it they are removed, so each library picks for itself, as a user's
# process would (this machine's environment sets OPENBLAS_CORETYPE, which would otherwise leak into the workers).
AVX2_SETTINGS = {"OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                 "DNNL_MAX_CPU_ISA": "AVX2", "DMLKIT_SIMD": "avx2"}
STRIPPED = list(AVX2_SETTINGS) + ["OPENBLAS_L2_SIZE"]


def worker_env(threads, avx2=False):
    """The environment every measured process gets: the thread count for every library, ISA settings as above."""
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if avx2:
        env.update(AVX2_SETTINGS)
    return env


def machine_facts(binary, avx2=False):
    """`runtime-bench machine` (FMA peaks, OpenBLAS config and core name) plus the CPU summary, under the same
    environment as the measured processes."""
    out = subprocess.run([str(binary), "machine"], capture_output=True, text=True, env=worker_env(1, avx2))
    if out.returncode != 0:
        raise SystemExit(f"runtime-bench machine failed: {out.stderr.strip()}")
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    facts["cpu_model"], facts["cpu_flags"] = cpu_summary()
    facts["cores"] = os.cpu_count()
    facts["caller_coretype"] = os.environ.get("OPENBLAS_CORETYPE")
    facts["avx2_forced"] = avx2
    return facts


def peak_gflops(facts):
    """The single-core FMA peak the measured kernels can reach: the widest ISA the CPU runs, AVX2's when forced."""
    peaks = facts["fma_peak_gflops"]
    if facts.get("avx2_forced") and "avx2" in peaks:
        return peaks["avx2"]
    return max(peaks.values(), default=0.0)


def header_lines(facts):
    peaks = ", ".join(f"{isa.upper()} {g:.0f} GFLOP/s" for isa, g in sorted(facts["fma_peak_gflops"].items(), reverse=True))
    coretype = facts.get("caller_coretype")
    lines = [f"- CPU: {facts['cpu_model']}, {facts['cores']} cores; vector flags: {' '.join(facts['cpu_flags']) or 'none listed'}.",
            f"- Measured single-core f32 FMA peak (register-only FMA loop in `runtime-bench machine`): {peaks or 'no x86 FMA'}.",
            f"- BLAS: {facts['blas']}; `openblas_get_config`: `{facts['openblas_config'] or '-'}`; "
            f"`openblas_get_corename`: `{facts['openblas_corename'] or '-'}`"
            + (" in the measured processes.")]
    if facts.get("avx2_forced"):
        lines.append("- AVX2 path forced for the measured processes: " + ", ".join(f"{k}={v}" for k, v in AVX2_SETTINGS.items())
                     + " (onnxruntime has no such setting and runs its cpuid choice).")
    else:
        lines.append("- No ISA setting in the measured processes (" + ", ".join(STRIPPED) + " removed"
                     + (f"; the caller's environment had OPENBLAS_CORETYPE={coretype}" if coretype else "") + ").")
    return lines


def recorded_command(script, argv, path_options):
    """The command line as recorded in RESULTS.md: options that name paths of the machine it ran on are left out."""
    shown, skip = [], False
    for arg in argv:
        if skip or arg in path_options:
            skip = not skip
            continue
        shown.append(arg)
    return f"python {script} " + " ".join(shown)
