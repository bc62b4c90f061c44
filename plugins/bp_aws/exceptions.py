"""Errors of the bp_aws building blocks: one class per kind of failure, each naming the
resource it is about, so a task log says what failed without a traceback to read."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout


class WaitEnded(AirflowException):
    """A wait reached a failure state or ran out of attempts; the message says which."""


class AwsResourceNotFound(AirflowException):
    """A named AWS resource (group, stack, parameter, image) does not exist."""

    def __init__(self, kind: str, name: str, detail: str = "") -> None:
        super().__init__(f"{kind} {name!r} does not exist" + (f": {detail}" if detail else ""))
        self.kind, self.name = kind, name


class InstanceRefreshFailed(AirflowException):
    """An instance refresh ended in a state other than Successful."""


class InstanceRefreshConflict(AirflowException):
    """Another instance refresh is already running on the group."""


class CapacityNotReached(AirflowException):
    """An Auto Scaling group did not settle at the capacity waited for."""


class ParameterVersionConflict(AirflowException):
    """An SSM parameter changed since the caller read it (the optimistic check failed)."""


class ParameterWriteRejected(AirflowException):
    """AWS answered a parameter write but did not apply it (aws:ec2:image validation)."""


class StackDeployFailed(AirflowException):
    """A CloudFormation create, update or delete ended in a failed or rolled-back state."""


class ImageNotAvailable(AirflowException):
    """An AMI ended failed, invalid or deregistered instead of available."""


class SmokeTestFailed(AirflowFailException):
    """A candidate AMI failed a smoke-test check, or its instance never got to run them
    (not retried: a second instance of the same image would fail the same way)."""


class ImageRevoked(AirflowFailException):
    """An AMI was revoked (``gpu_ami_revoke``): nothing may promote it again."""


class PackerBuildFailed(AirflowException):
    """``packer`` exited non-zero, timed out, or printed no artifact."""


class ParameterConditionNotMet(AirflowSensorTimeout):
    """An SSM parameter did not reach the value, pattern or version waited for in time
    (a timeout: not retried, the wait already had its whole window)."""


class RolloutJudgedFailed(AirflowFailException):
    """The fleet's metrics broke a limit during a rollout's bake window (not retried: the
    same window would be judged the same way)."""


class DevNodeNotReady(AirflowFailException):
    """A dev node did not pass its status checks, or ComfyUI did not answer on it in time
    (not retried: the node is left as it is, for its owner to look at or stop)."""


class CommandFailed(AirflowException):
    """A Run Command invocation ended other than ``Success`` (retried: the documents the
    project sends are safe to run again)."""
