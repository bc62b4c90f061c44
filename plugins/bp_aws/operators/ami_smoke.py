"""Boot a candidate AMI once and run its smoke-test document before anything promotes it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from botocore.exceptions import BotoCoreError, ClientError

from bp_aws.base import AwsOperator, aws_template_fields
from bp_aws.exceptions import SmokeTestFailed, WaitEnded
from bp_aws.utils.waiting import connection_kwargs, defer_or_wait, poll_attempts
from include.amis import smoke
from include.naming import platform

if TYPE_CHECKING:
    from bp_aws.hooks.run_command import RunCommandHook


class AmiSmokeTestOperator(AwsOperator):
    """Launch one instance of ``image_id``, wait (deferrable) for its EC2 status checks,
    run the smoke-test Run Command document on it, keep the output in the logs bucket,
    and terminate the instance - on success, on a failed check, on a timeout and when the
    task is killed (``on_kill``; a killed deferral is the guardrails' to find, by tags).

    A retry finds this run's instance by its tags instead of launching a second one.

    .. seealso:: EC2.Client.run_instances, SSM.Client.send_command, EC2.Client.terminate_instances

    :param image_id: the candidate AMI. (templated)
    :param document_name: the smoke-test document (``bp-ami-smoke-<stage>``). (templated)
    :param baked_bundle_id: the bundle baked into the image (``none`` for a base image):
        the document checks it, and decides which checks must print PASS. (templated)
    :param launch: :meth:`Ec2InstanceHook.launch_instance` arguments but the image:
        ``instance_type``, ``subnet_id`` (a private subnet of the fleet),
        ``security_group_id``, ``instance_profile`` (the fleet's worker profile) and
        ``tags`` (they identify the instance). (templated)
    :param output_key: where the checks and output go in the logs bucket. (templated)
    :param status_timeout: seconds the status checks may take. (default: 900)
    :param command_timeout: seconds the document may run. (default: 600)
    :return: the verdict (checks, instance, where the output is).
    """

    aws_hook_path = "bp_aws.hooks.ec2_instances.Ec2InstanceHook"
    template_fields: Sequence[str] = aws_template_fields(
        "image_id", "document_name", "baked_bundle_id", "launch", "output_key"
    )

    def __init__(
        self,
        *,
        image_id: str,
        document_name: str,
        baked_bundle_id: str | None,
        launch: dict[str, Any],
        output_key: str,
        status_timeout: float = smoke.STATUS_CHECK_TIMEOUT_SECONDS,
        command_timeout: float = smoke.COMMAND_TIMEOUT_SECONDS,
        poll_interval: float = 15,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image_id = image_id
        self.document_name = document_name
        self.baked_bundle_id = baked_bundle_id
        self.launch = launch
        self.output_key = output_key
        self.status_timeout = status_timeout
        self.command_timeout = command_timeout
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.instance_id: str | None = None

    @property
    def commands(self) -> RunCommandHook:
        return self.hook_for("bp_aws.hooks.run_command.RunCommandHook")

    # --- the three steps: launch, run the checks, judge ---------------------------------

    def execute(self, context: Any) -> dict[str, Any]:
        from bp_aws.triggers.ec2 import InstanceStatusOkTrigger

        self._check_document()
        self.instance_id = self._find_or_launch()
        trigger = InstanceStatusOkTrigger(
            instance_id=self.instance_id,
            waiter_delay=int(self.poll_interval),
            waiter_max_attempts=poll_attempts(self.status_timeout, self.poll_interval),
            **connection_kwargs(self),
        )
        return self._waiting(trigger, "run_checks", {"instance_id": self.instance_id})

    def run_checks(self, context: Any, event: dict[str, Any] | None = None, *, instance_id: str) -> dict[str, Any]:
        from bp_aws.triggers.ec2 import CommandInvocationTrigger

        self.instance_id = instance_id
        if event is not None and event.get("status") != "success":
            self._fail(
                f"AMI {self.image_id} never passed its EC2 status checks on {instance_id} within "
                f"{int(self.status_timeout)} s (timed out): {event.get('message', '')}"
            )
        try:
            command_id = self.commands.conn.send_command(
                DocumentName=self.document_name,
                InstanceIds=[instance_id],
                Parameters=smoke.document_parameters(self.baked_bundle_id),
                TimeoutSeconds=int(self.command_timeout),
                Comment=f"smoke test of {self.image_id}"[:100],
            )["Command"]["CommandId"]
        except ClientError as error:
            self._fail(f"AMI {self.image_id}: the smoke document could not be sent to {instance_id}: {error}")
        self.log.info("Smoke test %s sent to %s (%s)", command_id, instance_id, self.document_name)
        trigger = CommandInvocationTrigger(
            command_id=command_id,
            instance_id=instance_id,
            waiter_delay=int(self.poll_interval),
            waiter_max_attempts=poll_attempts(self.command_timeout, self.poll_interval),
            **connection_kwargs(self),
        )
        return self._waiting(trigger, "judge_checks", {"instance_id": instance_id, "command_id": command_id})

    def judge_checks(
        self, context: Any, event: dict[str, Any] | None = None, *, instance_id: str, command_id: str
    ) -> dict[str, Any]:
        self.instance_id = instance_id
        if event is not None and event.get("status") != "success":
            self._fail(
                f"AMI {self.image_id}: the smoke document did not finish on {instance_id} within "
                f"{int(self.command_timeout)} s (timed out): {event.get('message', '')}"
            )
        try:
            invocation = self.commands.get_command_invocation(command_id, instance_id)
            verdict = smoke.judge(self.image_id, instance_id, invocation, smoke.expected_checks(self.baked_bundle_id))
            location = self._keep(verdict.as_dict())
        finally:
            self._terminate()
        self.log.info("Smoke test output (kept at %s):\n%s", location, verdict.stdout.rstrip() or "(none)")
        if not verdict.passed:
            raise SmokeTestFailed(f"{verdict.summary()} The instance was terminated; the output is at {location}.")
        self.log.info("%s The instance was terminated.", verdict.summary())
        return {**verdict.as_dict(), "output": location}

    def on_kill(self) -> None:
        self._terminate()

    # --- helpers ----------------------------------------------------------------------

    def _waiting(self, trigger: Any, method_name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Defer, or wait here and go on to ``method_name``: a wait that ends badly is judged
        there as a trigger's error event would be; an AWS error while waiting (access
        denied, a bad request) terminates the instance and propagates."""
        try:
            defer_or_wait(self, trigger, method_name, kwargs)
        except WaitEnded as ended:
            return getattr(self, method_name)(None, {"status": "error", "message": str(ended)}, **kwargs)
        except (ClientError, BotoCoreError):
            self._terminate()
            raise
        return getattr(self, method_name)(None, None, **kwargs)

    def _check_document(self) -> None:
        try:
            self.commands.conn.describe_document(Name=self.document_name)
        except ClientError as error:
            if error.response["Error"]["Code"] != "InvalidDocument":
                raise
            raise SmokeTestFailed(
                f"The smoke-test document {self.document_name} does not exist: the stage's shared stack predates "
                "it, or was never deployed. Run gpu_fleet_provision (apply) for the fleet first. Nothing was launched."
            ) from None

    def _find_or_launch(self) -> str:
        found = self.hook.instances_tagged(self.launch["tags"])
        if found:
            instance_id = found[0]["InstanceId"]
            self.log.info("This run's smoke instance %s exists already (%s): reused", instance_id, found[0]["State"])
            return instance_id
        try:
            instance_id = self.hook.launch_instance(image_id=self.image_id, **self.launch)
        except ClientError as error:
            launch = self.launch
            raise SmokeTestFailed(
                f"AMI {self.image_id} could not be launched for its smoke test ({launch['instance_type']} in "
                f"{launch['subnet_id']} with profile {launch['instance_profile']}): "
                f"{error.response['Error']['Message']}. Is the fleet provisioned (gpu_fleet_provision)? "
                "Nothing was launched."
            ) from None
        self.log.info("Launched smoke instance %s of %s (%s)", instance_id, self.image_id, self.launch["instance_type"])
        return instance_id

    def _keep(self, verdict: dict[str, Any]) -> str:
        s3 = self.hook_for("bp_aws.hooks.s3.OwnBucketsS3Hook")
        bucket = platform.logs_bucket(s3.account_id)
        s3.conn.put_object(
            Bucket=bucket, Key=self.output_key, Body=json.dumps(verdict, indent=2), ContentType="application/json"
        )
        return f"s3://{bucket}/{self.output_key}"

    def _terminate(self) -> None:
        if self.instance_id:
            self.hook.terminate([self.instance_id])
            self.log.info("Smoke instance %s terminated", self.instance_id)

    def _fail(self, message: str) -> None:
        self._terminate()
        raise SmokeTestFailed(f"{message}. The instance was terminated; the AMI was not promoted.")
