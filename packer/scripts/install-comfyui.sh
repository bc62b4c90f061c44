#!/usr/bin/env bash
# ComfyUI at /opt/comfyui with its own venv and systemd unit, all root's but the folders
# ComfyUI writes. Idempotent: an existing checkout at the requested ref is kept, the venv is
# reused.
set -euo pipefail

COMFYUI_ROOT=/opt/comfyui
COMFYUI_REF="${COMFYUI_REF:?COMFYUI_REF must name a ComfyUI git tag}"
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cu121}"
export DEBIAN_FRONTEND=noninteractive

apt-get update -y
apt-get install -y --no-install-recommends git python3-venv python3-pip

id -u comfyui >/dev/null 2>&1 || useradd --system --home-dir "$COMFYUI_ROOT" --shell /usr/sbin/nologin comfyui

if [ ! -d "$COMFYUI_ROOT/.git" ]; then
  git clone --filter=blob:none https://github.com/comfyanonymous/ComfyUI.git "$COMFYUI_ROOT"
fi
git -C "$COMFYUI_ROOT" fetch --tags --quiet
git -C "$COMFYUI_ROOT" checkout --quiet "refs/tags/$COMFYUI_REF"

if [ ! -x "$COMFYUI_ROOT/venv/bin/python" ]; then
  python3 -m venv "$COMFYUI_ROOT/venv"
fi
"$COMFYUI_ROOT/venv/bin/pip" install --quiet --upgrade pip
"$COMFYUI_ROOT/venv/bin/pip" install --quiet torch torchvision torchaudio --index-url "$TORCH_INDEX"
"$COMFYUI_ROOT/venv/bin/pip" install --quiet -r "$COMFYUI_ROOT/requirements.txt"

mkdir -p "$COMFYUI_ROOT/models/checkpoints" "$COMFYUI_ROOT/models/loras" "$COMFYUI_ROOT/models/vae" \
  "$COMFYUI_ROOT/models/embeddings" "$COMFYUI_ROOT/models/controlnet" "$COMFYUI_ROOT/models/other" \
  "$COMFYUI_ROOT/custom_nodes"
# The code, the venv, the models and custom nodes are root's: the service user runs them and
# can't change them (a .pth it could drop into the venv would run as root in the smoke test
# and ship in the next baked image). It owns only the folders ComfyUI writes to.
chown -R root:root "$COMFYUI_ROOT"
chmod -R go-w "$COMFYUI_ROOT"
for data in output input temp user; do
  install -d -m 0750 -o comfyui -g comfyui "$COMFYUI_ROOT/$data"
done
install -d -m 0755 -o comfyui -g comfyui /var/log/comfyui

cat >/etc/systemd/system/comfyui.service <<UNIT
[Unit]
Description=ComfyUI inference server
After=network-online.target bp-bundle-sync.service
Wants=network-online.target

[Service]
User=comfyui
WorkingDirectory=$COMFYUI_ROOT
ExecStart=$COMFYUI_ROOT/venv/bin/python main.py --listen 127.0.0.1 --port 8188
Restart=on-failure
RestartSec=5
# the CloudWatch agent ships this file to the fleet's log group
StandardOutput=append:/var/log/comfyui/comfyui.log
StandardError=append:/var/log/comfyui/comfyui.log
NoNewPrivileges=yes
ProtectSystem=full
ReadWritePaths=$COMFYUI_ROOT/output $COMFYUI_ROOT/input $COMFYUI_ROOT/temp $COMFYUI_ROOT/user

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable comfyui.service
echo "ComfyUI $COMFYUI_REF installed at $COMFYUI_ROOT"
