"""One lifecycle action on a dev node: the EC2 call, then every wait it needs, deferred."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from botocore.exceptions import ClientError

from bp_aws.base import AwsOperator, aws_template_fields
from bp_aws.exceptions import DevNodeNotReady
from bp_aws.utils.waiting import connection_kwargs, poll_attempts, wait_then_resume

if TYPE_CHECKING:
    from bp_aws.hooks.run_command import RunCommandHook

#: actions that end with the node serving: status checks, then ComfyUI answering
_SERVING = ("create", "start", "restart")


class DevNodeActionOperator(AwsOperator):
    """Create, start, stop, restart or terminate a dev node, and wait (deferrable) until
    it is where the action takes it: ``running`` and **ready** (EC2 status checks passed,
    then the stage's health document found ComfyUI answering on the node), ``stopped``,
    or ``terminated`` with its security group deleted.

    ``create`` launches from the fleet's AMI into a private subnet, in a security group
    of its own with no inbound rule (engineers reach ComfyUI through Session Manager),
    IMDSv2 only, an encrypted root volume, the dev-node instance profile and the node's
    cost-allocation tags. A retry finds the instance an earlier try launched by those
    tags instead of launching a second one.

    .. seealso:: EC2.Client.run_instances, EC2.Client.start_instances,
        EC2.Client.stop_instances, EC2.Client.reboot_instances,
        EC2.Client.terminate_instances, SSM.Client.send_command

    :param action: ``create``, ``start``, ``stop``, ``restart`` or ``terminate``. (templated)
    :param plan: what the inspection found: ``instance_id`` (none for a create),
        ``nothing_to_do``; for a create ``image_id``, ``subnet_id``, ``vpc_id``,
        ``instance_type``, ``instance_profile``, ``resource_name``, ``tags``. (templated)
    :param health_document: the stage's readiness document. (templated)
    :param status_timeout: seconds the status checks may take. (default: 900)
    :param readiness_timeout: seconds ComfyUI may take to answer after them. (default: 600)
    :return: ``instance_id``, ``state`` reached, ``ready_seconds`` (serving actions).
    """

    aws_hook_path = "bp_aws.hooks.ec2_instances.Ec2InstanceHook"
    template_fields: Sequence[str] = aws_template_fields("action", "plan", "health_document")

    def __init__(
        self,
        *,
        action: str,
        plan: dict[str, Any],
        health_document: str,
        status_timeout: float = 900,
        readiness_timeout: float = 600,
        poll_interval: float = 15,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.plan = plan
        self.health_document = health_document
        self.status_timeout = status_timeout
        self.readiness_timeout = readiness_timeout
        self.poll_interval = poll_interval
        self.deferrable = deferrable

    @property
    def commands(self) -> RunCommandHook:
        return self.hook_for("bp_aws.hooks.run_command.RunCommandHook")

    def execute(self, context: Any) -> dict[str, Any]:
        began = time.time()
        instance_id = self.plan.get("instance_id")
        if self.action == "create":
            instance_id = self._find_or_launch()
        elif self.plan.get("nothing_to_do"):
            self.log.info("%s: the node is already where %s takes it", instance_id, self.action)
            if self.action not in _SERVING:
                return self.finish(context, None, instance_id=instance_id, began=began)
        elif self.action == "start":
            self.hook.start(instance_id)
        elif self.action == "restart":
            self.hook.reboot(instance_id)
        elif self.action == "stop":
            self.hook.stop(instance_id)
        elif self.action == "terminate":
            self.hook.terminate([instance_id])
        self.log.info("%s %s: waiting for it", self.action, instance_id)
        from bp_aws.triggers.ec2 import InstanceStateTrigger, InstanceStatusOkTrigger

        if self.action in _SERVING:
            trigger = InstanceStatusOkTrigger(
                instance_id=instance_id,
                waiter_delay=int(self.poll_interval),
                waiter_max_attempts=poll_attempts(self.status_timeout, self.poll_interval),
                **connection_kwargs(self),
            )
            return wait_then_resume(
                self, context, trigger, "probe_readiness", {"instance_id": instance_id, "began": began}
            )
        trigger = InstanceStateTrigger(
            instance_id=instance_id,
            state={"stop": "stopped", "terminate": "terminated"}[self.action],
            waiter_delay=int(self.poll_interval),
            waiter_max_attempts=poll_attempts(self.status_timeout, self.poll_interval),
            **connection_kwargs(self),
        )
        return wait_then_resume(self, context, trigger, "finish", {"instance_id": instance_id, "began": began})

    def probe_readiness(
        self, context: Any, event: dict[str, Any] | None = None, *, instance_id: str, began: float
    ) -> dict[str, Any]:
        self._judge_wait(event, instance_id, f"did not pass its EC2 status checks within {int(self.status_timeout)} s")
        command_id = self.commands.conn.send_command(
            DocumentName=self.health_document,
            InstanceIds=[instance_id],
            Parameters={"timeoutSeconds": [str(int(self.readiness_timeout))]},
            TimeoutSeconds=int(self.readiness_timeout) + 60,
            Comment=f"dev node readiness ({self.action})"[:100],
        )["Command"]["CommandId"]
        self.log.info("Status checks passed; readiness probe %s sent to %s", command_id, instance_id)
        from bp_aws.triggers.ec2 import CommandInvocationTrigger

        trigger = CommandInvocationTrigger(
            command_id=command_id,
            instance_id=instance_id,
            waiter_delay=int(self.poll_interval),
            waiter_max_attempts=poll_attempts(self.readiness_timeout + 60, self.poll_interval),
            **connection_kwargs(self),
        )
        kwargs = {"instance_id": instance_id, "began": began, "command_id": command_id}
        return wait_then_resume(self, context, trigger, "judge_readiness", kwargs)

    def judge_readiness(
        self, context: Any, event: dict[str, Any] | None = None, *, instance_id: str, began: float, command_id: str
    ) -> dict[str, Any]:
        self._judge_wait(event, instance_id, f"ran its readiness probe past {int(self.readiness_timeout)} s")
        invocation = self.commands.get_command_invocation(command_id, instance_id)
        output = (invocation.get("StandardOutputContent") or "").strip()
        if invocation.get("Status") != "Success":
            errors = (invocation.get("StandardErrorContent") or "").strip()
            raise DevNodeNotReady(
                f"Dev node {instance_id} is running but not ready: ComfyUI did not answer within "
                f"{int(self.readiness_timeout)} s ({invocation.get('Status')}): {(errors or output)[-300:]}"
            )
        self.log.info("%s is ready: %s", instance_id, output.splitlines()[-1] if output else "(no output)")
        return self.finish(context, None, instance_id=instance_id, began=began, ready=True)

    def finish(
        self, context: Any, event: dict[str, Any] | None = None, *, instance_id: str, began: float, ready: bool = False
    ) -> dict[str, Any]:
        self._judge_wait(event, instance_id, f"did not finish its {self.action}")
        if self.action == "terminate" and self.hook.delete_security_group(self.plan["resource_name"]):
            self.log.info("Security group %s deleted", self.plan["resource_name"])
        instance = self.hook.describe_instance(instance_id) or {}
        return {
            "instance_id": instance_id,
            "state": (instance.get("State") or {}).get("Name", "absent"),
            "ready": ready,
            "seconds": round(time.time() - began, 1),
        }

    # --- helpers ----------------------------------------------------------------------

    def _judge_wait(self, event: dict[str, Any] | None, instance_id: str, what: str) -> None:
        if event is not None and event.get("status") != "success":
            raise DevNodeNotReady(f"Dev node {instance_id} {what}: {event.get('message', '')}")

    def _find_or_launch(self) -> str:
        plan = self.plan
        tags = plan["tags"]
        found = self.hook.instances_tagged(plan["identity_tags"])
        if found:
            instance_id = found[0]["InstanceId"]
            self.log.info("An earlier try launched %s (%s): reused", instance_id, found[0]["State"]["Name"])
            return instance_id
        group_id = self.hook.ensure_security_group(
            plan["resource_name"], plan["vpc_id"], f"Dev node {plan['resource_name']}: no inbound rule (SSM only)", tags
        )
        try:
            instance_id = self.hook.launch_instance(
                image_id=plan["image_id"],
                instance_type=plan["instance_type"],
                subnet_id=plan["subnet_id"],
                security_group_id=group_id,
                instance_profile=plan["instance_profile"],
                tags=tags,
                shutdown_behavior="stop",
                user_data=plan["user_data"],
            )
        except ClientError as error:
            raise DevNodeNotReady(
                f"Dev node {plan['resource_name']} could not be launched ({plan['instance_type']} from "
                f"{plan['image_id']}): {error.response['Error']['Message']}. Nothing is running; the security "
                f"group {plan['resource_name']} is left for the next create."
            ) from None
        self.log.info(
            "Launched %s (%s from %s) in %s, security group %s (no inbound rule)",
            instance_id,
            plan["instance_type"],
            plan["image_id"],
            plan["subnet_id"],
            group_id,
        )
        return instance_id
