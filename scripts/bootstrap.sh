#!/usr/bin/env bash
# bootstrap.sh: install benchrun's build, test and runtime dependencies from Debian (idempotent).
set -euo pipefail

PKGS=(
  # build
  build-essential cmake ninja-build pkg-config
  libcurl4-openssl-dev libssl-dev libarchive-dev nlohmann-json3-dev
  libisal-dev zlib1g-dev libzstd-dev libseccomp-dev
  pybind11-dev python3-pybind11 python3-dev python3-venv python3-pip python3-setuptools python3-wheel
  # tests
  libgtest-dev libgmock-dev python3-pytest python3-hypothesis python3-jwt python3-cryptography
  python3-bcrypt
  black mypy
  # runtime helpers and test peers
  python3-rich ca-certificates skopeo umoci docker-registry busybox-static zstd bubblewrap iproute2
  python3-asyncpg python3-aiohttp python3-requests postgresql
  # analysis: statistics, frames, plots, notebooks
  python3-numpy python3-scipy python3-pandas python3-matplotlib python3-seaborn
  python3-nbclient python3-nbformat python3-ipykernel
  # a Jupyter front end for notebooks/ (classic Notebook; venv.sh registers the benchrun kernel)
  jupyter-notebook
  # microVM backend: QEMU (microvm machine + qboot from qemu-system-data), ext4 images, cpio to
  # check our initramfs writer; clang + compiler-rt (libFuzzer, ASan, UBSan) for the fuzzers
  # (scripts/fuzz.sh), built through ccache
  qemu-system-x86 qemu-system-data qemu-utils e2fsprogs cpio clang libclang-rt-14-dev ccache
  # --instructions: callgrind, bound into runs from the host (docs/instructions.md)
  valgrind
  # OCI runtime backends (--backend runc|runsc|crun); docker.io is a peer in bench/backends_bench.py
  runc runsc crun
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The docker-registry package starts a system registry on :5000; benchrun's tests and demo start
# their own on free loopback ports, so the packaged service is not needed.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q docker-registry 2>/dev/null; then
  $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
echo "bootstrap: done"
