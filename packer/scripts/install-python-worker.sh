#!/usr/bin/env bash
# The gpu_worker package, installed into /opt/worker/venv (seed 003: the worker used to be
# copied but never installed, and user-data ran the system python3). Every unit and
# helper below calls that venv's python. Idempotent: re-running reinstalls the package.
set -euo pipefail

WORKER_SOURCE="${WORKER_SOURCE:?WORKER_SOURCE must be the uploaded gpu_worker folder}"
WORKER_HOME=/opt/worker
VENV="$WORKER_HOME/venv"

mkdir -p "$WORKER_HOME/bin" /etc/bp
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet --force-reinstall --no-cache-dir "$WORKER_SOURCE"
"$VENV/bin/python" -m gpu_worker.bundle --help >/dev/null

# root owns the package and its venv: the node agent's user runs it and can't change it
chown -R root:root "$WORKER_HOME"
chmod -R go-w "$WORKER_HOME"

# the smoke test's ownership check: nothing under the code folders is another user's but
# the folders ComfyUI writes (its data)
cat >"$WORKER_HOME/bin/check-code-owners" <<'HELPER'
#!/usr/bin/env bash
set -euo pipefail
found="$(find /opt/worker /opt/comfyui \
  \( -path /opt/comfyui/output -o -path /opt/comfyui/input -o -path /opt/comfyui/temp -o -path /opt/comfyui/user \) -prune \
  -o \( ! -user root -o -perm /022 ! -type l \) -print -quit)"
if [ -n "$found" ]; then
  echo "$found is not root's alone: a service user could change code that runs as root" >&2
  exit 1
fi
echo "code under /opt/comfyui and /opt/worker is root's alone"
HELPER
chmod 0755 "$WORKER_HOME/bin/check-code-owners"

# the one entry point for an SSM apply on a running node: same installer, same venv
cat >"$WORKER_HOME/bin/apply-bundle" <<'HELPER'
#!/usr/bin/env bash
set -euo pipefail
exec /opt/worker/venv/bin/python -m gpu_worker.bundle apply "$@"
HELPER
chmod 0755 "$WORKER_HOME/bin/apply-bundle"

# at boot: install the fleet's active bundle unless it is the one baked into the image.
# /etc/bp/worker.env is written by the launch template's user-data and names the SSM
# parameters of the models bucket and of the fleet's active bundle.
cat >/etc/systemd/system/bp-bundle-sync.service <<'UNIT'
[Unit]
Description=Install the fleet's active model bundle (skips when already active)
After=network-online.target
Wants=network-online.target
Before=comfyui.service
ConditionPathExists=/etc/bp/worker.env

[Service]
Type=oneshot
EnvironmentFile=/etc/bp/worker.env
ExecStart=/opt/worker/venv/bin/python -m gpu_worker.bundle apply --root /opt/comfyui --bucket-parameter ${BP_MODELS_BUCKET_PARAMETER} --prefix-parameter ${BP_ACTIVE_BUNDLE_PARAMETER}
StandardOutput=append:/var/log/comfyui-asset-sync.log
StandardError=append:/var/log/comfyui-asset-sync.log
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable bp-bundle-sync.service
echo "gpu_worker installed in $VENV"
