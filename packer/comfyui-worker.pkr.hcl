# The GPU worker AMI: Ubuntu 22.04 + NVIDIA driver + ComfyUI + the gpu_worker package in
# /opt/worker/venv (the bundle installer and the node agent) + the CloudWatch agent,
# optionally with a model bundle baked in.
#
#   base build: source_ami = ""              -> latest Ubuntu 22.04 from Canonical
#   bake:       source_ami = the fleet's AMI -> the scripts find everything installed
#                                               and only the bundle step does work

packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "= 1.8.0" # pinned: packer init fetches exactly this build of the plugin
    }
  }
}

data "amazon-ami" "ubuntu_2204" {
  region      = var.aws_region
  owners      = ["099720109477"] # Canonical
  most_recent = true
  filters = {
    name                = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"
    root-device-type    = "ebs"
    virtualization-type = "hvm"
  }
}

locals {
  image_kind = var.source_ami == "" ? "base" : "bake"
  stamp      = formatdate("YYYYMMDDhhmmss", timestamp())
  # provenance on the AMI and on its snapshots: AMI retention and rollback read these
  provenance = {
    Name             = "bp-gpu-${var.fleet_stage}-${var.fleet_slug}"
    fleet_stage      = var.fleet_stage
    fleet_slug       = var.fleet_slug
    bundle_id        = var.bundle_id
    base_ami         = "{{ .SourceAMI }}"
    git_sha          = var.git_sha
    airflow_run_id   = var.airflow_run_id
    input_fingerprint = var.input_fingerprint
    base_image       = var.base_image
    "bp:image_kind"  = local.image_kind
    "bp:managed_by"  = "airflow"
  }
}

source "amazon-ebs" "comfyui-worker" {
  region               = var.aws_region
  instance_type        = var.instance_type
  source_ami           = var.source_ami != "" ? var.source_ami : data.amazon-ami.ubuntu_2204.id
  iam_instance_profile = var.iam_instance_profile

  # A private subnet and a group with no inbound rule: Packer reaches the instance through
  # Session Manager (the instance profile allows the SSM agent), never SSH from outside.
  subnet_id                   = var.subnet_id
  security_group_ids          = [var.security_group_id]
  associate_public_ip_address = false
  communicator                = "ssh"
  ssh_username                = "ubuntu"
  ssh_interface               = "session_manager"
  ami_name             = "bp-gpu-${var.fleet_stage}-${var.fleet_slug}-${local.image_kind}-${local.stamp}"
  ami_description      = "GPU worker for ${var.fleet_stage}/${var.fleet_slug} (${local.image_kind}, bundle ${var.bundle_id})"

  # instances launched from the image must use IMDSv2, and so does the build instance
  imds_support = "v2.0"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  encrypt_boot = true
  kms_key_id   = var.kms_key_id
  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = var.root_volume_gb
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  tags          = local.provenance
  snapshot_tags = local.provenance
  run_tags = {
    Name           = "packer-bp-gpu-${var.fleet_stage}-${var.fleet_slug}"
    airflow_run_id = var.airflow_run_id
  }
}

build {
  name    = "comfyui-worker"
  sources = ["source.amazon-ebs.comfyui-worker"]

  provisioner "shell" {
    script          = "${path.root}/scripts/install-nvidia-drivers.sh"
    execute_command = "sudo -E bash '{{ .Path }}'"
    expect_disconnect = true
  }

  provisioner "shell" {
    script           = "${path.root}/scripts/install-comfyui.sh"
    execute_command  = "sudo -E bash '{{ .Path }}'"
    environment_vars = ["COMFYUI_REF=${var.comfyui_ref}"]
    pause_before     = "30s" # the driver step may have rebooted the instance
  }

  provisioner "file" {
    source      = "${path.root}/../gpu_worker/"
    destination = "/tmp/bp-worker-src"
  }

  provisioner "shell" {
    script           = "${path.root}/scripts/install-python-worker.sh"
    execute_command  = "sudo -E bash '{{ .Path }}'"
    environment_vars = ["WORKER_SOURCE=/tmp/bp-worker-src"]
  }

  provisioner "shell" {
    script          = "${path.root}/scripts/install-node-agent.sh"
    execute_command = "sudo -E bash '{{ .Path }}'"
  }

  provisioner "shell" {
    script          = "${path.root}/scripts/apply-bundle.sh"
    execute_command = "sudo -E bash '{{ .Path }}'"
    environment_vars = [
      "BP_MODELS_BUCKET=${var.models_s3_bucket}",
      "BP_BUNDLE_PREFIX=${var.models_s3_prefix}",
    ]
  }

  post-processor "manifest" {
    output     = "packer-manifest.json"
    strip_path = true
    custom_data = {
      fleet_stage    = var.fleet_stage
      fleet_slug     = var.fleet_slug
      bundle_id      = var.bundle_id
      airflow_run_id = var.airflow_run_id
    }
  }
}
