#!/usr/bin/env bash
# Bake step: install the bundle into the image with the same installer instances use at
# boot, and record it as baked so the boot sync skips it (seed 004, smart-skip).
set -euo pipefail

BP_MODELS_BUCKET="${BP_MODELS_BUCKET:-}"
BP_BUNDLE_PREFIX="${BP_BUNDLE_PREFIX:-none}"

if [ "$BP_BUNDLE_PREFIX" = "none" ] || [ -z "$BP_BUNDLE_PREFIX" ]; then
  echo "No bundle to bake: the image boots with the fleet's active bundle"
  exit 0
fi
if [ -z "$BP_MODELS_BUCKET" ]; then
  echo "BP_MODELS_BUCKET is empty but a bundle prefix was given" >&2
  exit 2
fi

/opt/worker/venv/bin/python -m gpu_worker.bundle apply \
  --root /opt/comfyui --bucket "$BP_MODELS_BUCKET" --prefix "$BP_BUNDLE_PREFIX" --record-baked
# the installed files stay root's (0644): ComfyUI reads them and cannot rewrite them
/opt/worker/venv/bin/python -m gpu_worker.bundle status
