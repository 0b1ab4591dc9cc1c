#!/usr/bin/env bash
# Installs the Debian packages the engine builds with, if any is missing (apt-get when root;
# otherwise prints the command to run). Safe to run again: it does nothing when all are there.
set -euo pipefail

# (xz-utils: scripts/gpu-bundle.sh packs with tar -J)
packages=(cmake ninja-build g++ pkg-config libfmt-dev libgtest-dev libopenblas-openmp-dev libcli11-dev nlohmann-json3-dev xz-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root, or ask an administrator: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q "${missing[@]}"; then
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi
