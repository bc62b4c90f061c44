#!/usr/bin/env bash
# NVIDIA datacenter driver for the GPU worker image. Idempotent: an image that already
# has a working driver (every bake) is left as it is.
set -euo pipefail

DRIVER_BRANCH="${NVIDIA_DRIVER_BRANCH:-535}"
export DEBIAN_FRONTEND=noninteractive

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=driver_version --format=csv,noheader >/dev/null 2>&1; then
  echo "NVIDIA driver already installed: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1)"
  exit 0
fi

apt-get update -y
apt-get install -y --no-install-recommends ubuntu-drivers-common "linux-headers-$(uname -r)"
apt-get install -y --no-install-recommends \
  "nvidia-driver-${DRIVER_BRANCH}-server" \
  "nvidia-utils-${DRIVER_BRANCH}-server"
# persistence mode keeps the driver loaded between jobs (no multi-second cold start)
systemctl enable nvidia-persistenced.service || true
echo "NVIDIA driver ${DRIVER_BRANCH}-server installed; it loads on the next boot"
