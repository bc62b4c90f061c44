"""Tag AMIs with their provenance, and retire the ones nothing uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bp_aws.base import AwsOperator, aws_template_fields
from bp_aws.exceptions import ImageNotAvailable, ImageRevoked
from bp_aws.operators.ssm_parameters import PutSsmParameterOperator
from include.amis import retention as ami_retention
from include.amis import revocation
from include.naming import platform
from include.tables import format_table


class TagImageOperator(AwsOperator):
    """Tag an AMI and its EBS snapshots.

    .. seealso:: EC2.Client.create_tags

    :param image_id: the AMI. (templated)
    :param tags: tags to set. (templated)
    :return: the image and snapshot ids tagged.
    """

    aws_hook_path = "bp_aws.hooks.ami.AmiHook"
    template_fields: Sequence[str] = aws_template_fields("image_id", "tags")

    def __init__(self, *, image_id: str, tags: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_id = image_id
        self.tags = tags

    def execute(self, context: Any) -> list[str]:
        resources = self.hook.tag_image(self.image_id, self.tags)
        self.log.info("Tagged %s with %s", ", ".join(resources), self.tags)
        return resources


class AmiRetentionOperator(AwsOperator):
    """Among the images carrying ``image_tags`` (one fleet's), keep the newest N and every
    image still in use (the SSM pointer ``pointer_parameter``, any launch template
    version, any existing instance); deregister the rest and delete their snapshots.
    ``dry_run`` only lists what it would delete.

    :param image_tags: the tags that select the images, e.g. a fleet's provenance tags. (templated)
    :param pointer_parameter: an SSM parameter naming an image that must be kept. (templated)
    :param keep_newest: newest images always kept. (default: 3)
    :param dry_run: decide and log, delete nothing. (default: False)
    :return: ``{"kept": [...], "deleted": [...], "dry_run": bool}``
    """

    aws_hook_path = "bp_aws.hooks.ami.AmiHook"
    template_fields: Sequence[str] = aws_template_fields("image_tags", "pointer_parameter", "keep_newest", "dry_run")

    def __init__(
        self,
        *,
        image_tags: dict[str, str],
        pointer_parameter: str | None = None,
        keep_newest: int = 3,
        dry_run: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image_tags = image_tags
        self.pointer_parameter = pointer_parameter
        self.keep_newest = keep_newest
        self.dry_run = dry_run

    def _in_use(self) -> dict[str, str]:
        in_use = {**self.hook.images_of_instances(), **self.hook.images_in_launch_templates()}
        if self.pointer_parameter:
            ssm = self.hook_for("bp_aws.hooks.ssm_parameters.SsmParameterHook")
            pointer = ssm.get(self.pointer_parameter)
            if pointer:
                in_use[pointer["Value"]] = f"SSM pointer {self.pointer_parameter}"
        return in_use

    def execute(self, context: Any) -> dict[str, Any]:
        images = self.hook.images_tagged(self.image_tags)
        plan = ami_retention.plan_retention(images, keep_newest=int(self.keep_newest), in_use=self._in_use())
        verb = "would delete" if self.dry_run else "deletes"
        self.log.info(
            "AMI retention for the images tagged %s (%s %d of %d):\n%s",
            self.image_tags,
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


class PromoteAmiOperator(PutSsmParameterOperator):
    """Point an AMI parameter (DataType ``aws:ec2:image``) at ``value``, refusing an
    image that is not ``available`` or that was revoked (``gpu_ami_revoke``): a revoked
    image is never promoted again, whichever run asks.

    Takes every argument of :class:`~bp_aws.operators.ssm_parameters.PutSsmParameterOperator`.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("data_type", "aws:ec2:image")
        super().__init__(**kwargs)

    def execute(self, context: Any) -> dict[str, Any]:
        images = self.hook_for("bp_aws.hooks.ami.AmiHook")
        image = images.describe_image(self.value)
        revoked = revocation.revocation_of(platform.tags_of(image))
        if revoked:
            raise ImageRevoked(f"AMI {self.value} was {revoked}. It is never promoted again; {self.name} is unchanged.")
        if image["State"] != "available":
            raise ImageNotAvailable(f"AMI {self.value} is {image['State']}, not available; {self.name} is unchanged.")
        return super().execute(context)
