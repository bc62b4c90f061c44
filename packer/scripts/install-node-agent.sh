#!/usr/bin/env bash
# The node agent (python -m gpu_worker.agent, from /opt/worker/venv) as the unit
# bp-node-agent under a user of its own, the CloudWatch agent (its package's signature
# checked against AWS's published key), and /opt/worker/bin/configure-node, which the
# launch's user-data runs once /etc/bp/worker.env exists. Runs after
# install-python-worker.sh and install-comfyui.sh. Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

CWAGENT_BASE="${CWAGENT_BASE:-https://s3.amazonaws.com/amazoncloudwatch-agent}"
# AWS's signing key for the CloudWatch agent, as the CloudWatch user guide gives it
CWAGENT_KEY_FINGERPRINT="937616F3450B7D806CBD9725D58167303B789C72"

# --- the node agent: no login, no home, nothing of its own to write but its log --------
id -u bp-agent >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin bp-agent
install -d -m 0755 -o bp-agent -g bp-agent /var/log/bp-agent
/opt/worker/venv/bin/python -m gpu_worker.agent --help >/dev/null

cat >/etc/systemd/system/bp-node-agent.service <<'UNIT'
[Unit]
Description=Node agent: ComfyUI's jobs and the GPU to CloudWatch, scale-in protection while busy
After=network-online.target comfyui.service
Wants=network-online.target
ConditionPathExists=/etc/bp/worker.env

[Service]
User=bp-agent
Group=bp-agent
ExecStart=/opt/worker/venv/bin/python -m gpu_worker.agent --env-file /etc/bp/worker.env
# SIGTERM: the minute so far published, scale-in protection cleared
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=always
RestartSec=5
StandardOutput=append:/var/log/bp-agent/agent.log
StandardError=append:/var/log/bp-agent/agent.log
# it reads loopback HTTP, /dev/nvidia* (NVML) and the installer's state; it writes its log
Nice=10
CPUQuota=20%
MemoryMax=256M
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=/var/log/bp-agent
# /run/bp-agent/drain: while it exists the job worker takes no new lease (the node is
# leaving, gpu_worker/agent/drain.py); kept across the agent's own restarts
RuntimeDirectory=bp-agent
RuntimeDirectoryMode=0755
RuntimeDirectoryPreserve=yes

[Install]
WantedBy=multi-user.target
UNIT

# --- the CloudWatch agent ----------------------------------------------------------------
if [ ! -x /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl ]; then
  apt-get install -y --no-install-recommends gnupg curl
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  curl -fsSL -o "$work/agent.gpg" "$CWAGENT_BASE/assets/amazon-cloudwatch-agent.gpg"
  curl -fsSL -o "$work/agent.deb" "$CWAGENT_BASE/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb"
  curl -fsSL -o "$work/agent.deb.sig" "$CWAGENT_BASE/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb.sig"
  export GNUPGHOME="$work/gnupg"
  install -d -m 0700 "$GNUPGHOME"
  gpg --batch --quiet --import "$work/agent.gpg"
  if ! gpg --batch --with-colons --fingerprint | grep -q "^fpr:::::::::$CWAGENT_KEY_FINGERPRINT:"; then
    echo "the CloudWatch agent's signing key is not AWS's ($CWAGENT_KEY_FINGERPRINT)" >&2
    exit 1
  fi
  gpg --batch --verify "$work/agent.deb.sig" "$work/agent.deb"
  dpkg -i "$work/agent.deb"
fi
# ComfyUI's log (comfyui.service writes it) and the installer's are read by the agent's user
install -d -m 0755 -o comfyui -g comfyui /var/log/comfyui

# --- what user-data runs at first boot ----------------------------------------------------
cat >/opt/worker/bin/configure-node <<'HELPER'
#!/usr/bin/env bash
# The node's settings are in /etc/bp/worker.env (user-data): the CloudWatch agent's
# configuration is generated from them, then ComfyUI and the node agent start.
set -euo pipefail
config=/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json
/opt/worker/venv/bin/python -m gpu_worker.agent cloudwatch-agent-config --env-file /etc/bp/worker.env --out "$config"
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c "file:$config"
systemctl start comfyui.service
systemctl enable --now bp-node-agent.service
HELPER
chmod 0755 /opt/worker/bin/configure-node

cat >/etc/logrotate.d/bp-gpu-node <<'ROTATE'
/var/log/comfyui/comfyui.log /var/log/bp-agent/agent.log /var/log/comfyui-asset-sync.log {
  daily
  rotate 7
  compress
  missingok
  notifempty
  copytruncate
}
ROTATE

systemctl daemon-reload
systemctl enable bp-node-agent.service
echo "node agent and CloudWatch agent installed"
