# Inputs of the GPU worker AMI build. The gpu_ami_build_and_bake DAG resolves them from
# SSM (models bucket, active bundle, Packer instance profile) and passes each with -var.

variable "aws_region" {
  type        = string
  default     = "us-east-1"
  description = "Region the AMI is built and registered in."
}

variable "fleet_stage" {
  type        = string
  description = "Fleet stage the image is for: staging or production."
  validation {
    condition     = contains(["staging", "production"], var.fleet_stage)
    error_message = "The fleet_stage must be staging or production."
  }
}

variable "fleet_slug" {
  type        = string
  description = "Fleet the image is for, e.g. gpu-default."
  validation {
    condition     = can(regex("^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$", var.fleet_slug)) && length(var.fleet_slug) <= 40
    error_message = "The fleet_slug must be lowercase words joined by single hyphens, at most 40 characters."
  }
}

variable "instance_type" {
  type        = string
  default     = "g4dn.xlarge"
  description = "Build instance type: a GPU type, so the driver install can be checked with nvidia-smi."
}

variable "source_ami" {
  type        = string
  default     = ""
  description = "Empty for a base build (latest Ubuntu 22.04); the fleet's current AMI for a bake."
}

variable "iam_instance_profile" {
  type        = string
  default     = ""
  description = "Instance profile of the build instance (from /bp/packer/instance_profile): reads the models bucket."
}

variable "subnet_id" {
  type        = string
  description = "Private subnet of the build instance (from /bp/packer/subnet_id): no public address."
}

variable "security_group_id" {
  type        = string
  description = "Security group of the build instance (from /bp/packer/security_group_id): no inbound rule."
}

variable "models_s3_bucket" {
  type        = string
  default     = ""
  description = "Models bucket holding assets and bundle manifests."
}

variable "models_s3_prefix" {
  type        = string
  default     = "none"
  description = "Bundle prefix bundles/<bundle_id> to bake in; none for no bundle."
}

variable "bundle_id" {
  type        = string
  default     = "none"
  description = "Id of the baked bundle, recorded in the image tags."
}

variable "git_sha" {
  type        = string
  default     = "unknown"
  description = "Commit of this repository the image was built from."
}

variable "airflow_run_id" {
  type        = string
  default     = "manual"
  description = "The Airflow DAG run that built the image."
}

variable "input_fingerprint" {
  type        = string
  default     = "none"
  description = "sha256 of the build's inputs (base image, bundle manifest, templates and scripts, gpu_worker); a later build with the same one reuses this image."
}

variable "base_image" {
  type        = string
  default     = "unknown"
  description = "The root base image the image is built on (a bake's base is its source image's base)."
}

variable "root_volume_gb" {
  type        = number
  default     = 100
  description = "Root volume size: drivers, CUDA libraries, ComfyUI and the baked models."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the encrypted root volume; empty for the account's default EBS key."
}

variable "comfyui_ref" {
  type        = string
  default     = "v0.3.40"
  description = "ComfyUI git tag installed on base builds."
}
