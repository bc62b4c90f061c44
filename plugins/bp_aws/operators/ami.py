"""Tag AMIs with their provenance, and retire the ones nothing uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from bp_aws.hooks.ami import AmiHook
from bp_aws.hooks.ssm_parameters import SsmParameterHook
from include import ami_retention, ssm_paths
from include.tables import format_table


class TagImageOperator(AwsBaseOperator[AmiHook]):
    """Tag an AMI and its EBS snapshots.

    .. seealso:: EC2.Client.create_tags

    :param image_id: the AMI. (templated)
    :param tags: tags to set. (templated)
    :return: the image and snapshot ids tagged.
    """

    aws_hook_class = AmiHook
    template_fields: Sequence[str] = aws_template_fields("image_id", "tags")

    def __init__(self, *, image_id: str, tags: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_id = image_id
        self.tags = tags

    def execute(self, context: Any) -> list[str]:
        resources = self.hook.tag_image(self.image_id, self.tags)
        self.log.info("Tagged %s with %s", ", ".join(resources), self.tags)
        return resources


class AmiRetentionOperator(AwsBaseOperator[AmiHook]):
    """Per fleet, keep the newest N AMIs and every AMI still in use (the fleet's SSM
    pointer, any launch template version, any existing instance); deregister the rest
    and delete their snapshots. ``dry_run`` only lists what it would delete.

    :param fleet_stage: the fleet's stage. (templated)
    :param fleet_slug: the fleet's slug. (templated)
    :param keep_newest: newest images always kept. (default: 3)
    :param dry_run: decide and log, delete nothing. (default: False)
    :return: ``{"kept": [...], "deleted": [...], "dry_run": bool}``
    """

    aws_hook_class = AmiHook
    template_fields: Sequence[str] = aws_template_fields("fleet_stage", "fleet_slug", "keep_newest", "dry_run")

    def __init__(
        self, *, fleet_stage: str, fleet_slug: str, keep_newest: int = 3, dry_run: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.fleet_stage = fleet_stage
        self.fleet_slug = fleet_slug
        self.keep_newest = keep_newest
        self.dry_run = dry_run

    def _in_use(self) -> dict[str, str]:
        in_use = {**self.hook.images_of_instances(), **self.hook.images_in_launch_templates()}
        pointer_name = ssm_paths.fleet_ami(self.fleet_stage, self.fleet_slug)
        ssm = SsmParameterHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify)
        pointer = ssm.get(pointer_name)
        if pointer:
            in_use[pointer["Value"]] = f"SSM pointer {pointer_name}"
        return in_use

    def execute(self, context: Any) -> dict[str, Any]:
        images = self.hook.images_tagged(
            {ami_retention.FLEET_STAGE_TAG: self.fleet_stage, ami_retention.FLEET_SLUG_TAG: self.fleet_slug}
        )
        plan = ami_retention.plan_retention(images, keep_newest=int(self.keep_newest), in_use=self._in_use())
        verb = "would delete" if self.dry_run else "deletes"
        self.log.info(
            "AMI retention for %s/%s (%s %d of %d):\n%s",
            self.fleet_stage,
            self.fleet_slug,
            verb,
            len(plan.to_delete),
            len(plan.decisions),
            format_table(("IMAGE", "CREATED", "DECISION", "REASON", "NAME"), plan.rows()),
        )
        if not self.dry_run:
            for decision in plan.to_delete:
                self.hook.deregister(decision.image_id, decision.snapshot_ids)
                self.log.info("Deregistered %s and deleted snapshots %s", decision.image_id, decision.snapshot_ids)
        return {
            "kept": [d.image_id for d in plan.to_keep],
            "deleted": [d.image_id for d in plan.to_delete],
            "dry_run": bool(self.dry_run),
        }
