#!/usr/bin/env bash
# Installs the Debian packages DMLKit builds and tests against. Idempotent: a no-op when all are present.
set -euo pipefail

packages=(
  libfaiss-dev            # FAISS 1.7.3 (static libfaiss.a), wrapped by Sources/CFaiss
  libopenblas-dev         # BLAS/LAPACK for FAISS and the runtime (update-alternatives points libblas here)
  libopenblas0-pthread
  liblapack-dev
  libgomp1                # OpenMP runtime used by FAISS
  python3-faiss           # the Debian peer for benchmarks (same libfaiss 1.7.3)
  python3-numpy
  python3-venv
  libsqlite3-dev
  libpng-dev
  libjpeg62-turbo-dev
)
# oneDNN: the runtime's convolution backend on x86-64 (Sources/CDMLDnnl; other CPUs keep the runtime's own conv).
if [ "$(dpkg --print-architecture)" = "amd64" ]; then packages+=(libdnnl-dev); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
