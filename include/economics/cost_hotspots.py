"""Seed 003's cost hotspots, and which of them a line of the AWS bill is in.

Seed 003 ("Cost Risk Hotspots", "Risk Register") names what surprises a month's bill:
NAT Gateway data processing, CloudWatch Logs volume, S3/CloudFront egress of delivered
media and GPU Spot scale-to-zero leakage, each with its trigger and mitigation. Cost
Explorer names a line by its service and usage type; AWS's usage types read
``<region>-NatGateway-Bytes`` (NAT data processed), ``<region>-DataProcessing-Bytes``
(CloudWatch Logs ingested), ``<region>-DataTransfer-Out-Bytes`` (S3, CloudFront) and
``<region>-SpotUsage:<type>`` / ``BoxUsage:<type>`` (instance hours).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OTHER = "other"
#: Cost Explorer's name of EC2's instance usage (the GPU nodes' hours).
EC2_COMPUTE = "Amazon Elastic Compute Cloud - Compute"


@dataclass(frozen=True)
class Hotspot:
    name: str
    label: str
    service: str
    usage_type: re.Pattern
    #: the likely cause and what to do, from seed 003's risk register
    cause: str
    runbook: str

    def holds(self, service: str, usage_type: str) -> bool:
        return service == self.service and bool(self.usage_type.search(usage_type))


HOTSPOTS = (
    Hotspot(
        "nat_data_processing", "NAT Gateway data processing", "EC2 - Other", re.compile(r"NatGateway-Bytes$"),
        "GPU workers in private subnets calling a public ALB (or S3 without a gateway endpoint) through NAT",
        "add VPC endpoints (S3, SSM), consider an internal ALB; read the NAT gateways' BytesOutToDestination",
    ),
    Hotspot(
        "cloudwatch_logs_ingestion", "CloudWatch Logs ingestion", "AmazonCloudWatch",
        re.compile(r"DataProcessing-Bytes$"),
        "verbose application logs (Laravel/Next) without log-level control",
        "lower the log level of the loudest log group and set its retention",
    ),
    Hotspot(
        "s3_egress", "S3 data transfer out", "Amazon Simple Storage Service", re.compile(r"DataTransfer-Out-Bytes$"),
        "popular media downloaded straight from S3",
        "serve media through CloudFront with a cache policy; lifecycle rules on old media",
    ),
    Hotspot(
        "cloudfront_egress", "CloudFront data transfer out", "Amazon CloudFront",
        re.compile(r"DataTransfer-Out-Bytes$"),
        "popular media downloads (a cache policy that misses, or a hot object)",
        "check the distribution's cache hit ratio and policy; budget alarm on egress",
    ),
    Hotspot(
        "gpu_instances", "EC2 GPU instances", EC2_COMPUTE, re.compile(r"(BoxUsage|SpotUsage):[gp]\d"),
        "Spot scale-to-zero leakage: stuck scale-in protection or wrong scaling leaves GPU instances running",
        "run gpu_fleet_guardrails; compare ActiveWorkers with QueueDepth per fleet",
    ),
)  # fmt: skip
BY_NAME = {hotspot.name: hotspot for hotspot in HOTSPOTS}


def hotspot_of(service: str, usage_type: str) -> str:
    return next((h.name for h in HOTSPOTS if h.holds(service, usage_type)), OTHER)


def label_of(hotspot: str) -> str:
    return BY_NAME[hotspot].label if hotspot in BY_NAME else "other services"
