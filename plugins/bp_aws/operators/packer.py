"""Run ``packer init`` and ``packer build`` and return the AMI it produced."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk.log import mask_secret

from bp_aws.base import AwsOperator, aws_template_fields
from bp_aws.exceptions import PackerBuildFailed
from include.amis import packer_output

#: All Packer sees of the worker's environment: the process basics and Packer's own
#: settings. Never what the worker holds for Airflow (the Fernet key, the database URL,
#: the JWT secret, AIRFLOW_CONN_*): Packer and its plugins and scripts don't need them.
PACKER_ENVIRONMENT = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
PACKER_ENVIRONMENT_PREFIXES = ("PACKER_",)


def packer_environment(worker: dict[str, str]) -> dict[str, str]:
    """The allow-listed part of ``worker`` (the AWS identity is added by the operator)."""
    return {
        name: value
        for name, value in worker.items()
        if name in PACKER_ENVIRONMENT or name.startswith(PACKER_ENVIRONMENT_PREFIXES)
    }


def configured_packer_binary() -> str:
    """``[bp] packer_binary`` (env ``AIRFLOW__BP__PACKER_BINARY``), else ``packer`` on PATH."""
    return conf.get("bp", "packer_binary", fallback="packer")


class PackerBuildOperator(AwsOperator):
    """Build an AMI with Packer, streaming its output into the task log.

    Packer runs with the AWS identity of ``aws_conn_id`` (its credentials, region and
    endpoint are passed in the environment), arguments go to Packer as a list (never
    through a shell), and the whole process group is killed on timeout or when the
    task is killed.

    :param working_dir: folder with the templates; Packer runs there. (templated)
    :param template: template file or folder, relative to ``working_dir``. (default: ``.``)
    :param variables: ``-var name=value`` pairs. (templated)
    :param var_files: ``-var-file`` paths. (templated)
    :param sensitive_variables: names of variables masked in the task log.
    :param manifest_file: the manifest post-processor's output, relative to
        ``working_dir``; read when present, else the artifact lines are used. (templated)
    :param packer_binary: the binary; default from :func:`configured_packer_binary`.
    :param build_timeout: seconds before the build is killed. (default: 2 hours)
    :return: ``{"ami_id", "artifact_id", "region"}``
    """

    aws_hook_path = "bp_aws.hooks.ami.AmiHook"  # Packer builds EC2 images; the hook supplies its AWS identity
    template_fields: Sequence[str] = aws_template_fields("working_dir", "variables", "var_files", "manifest_file")
    template_fields_renderers = {"variables": "json"}

    def __init__(
        self,
        *,
        working_dir: str,
        template: str = ".",
        variables: dict[str, Any] | None = None,
        var_files: Sequence[str] = (),
        sensitive_variables: Sequence[str] = (),
        manifest_file: str | None = "packer-manifest.json",
        packer_binary: str | None = None,
        build_timeout: float = 2 * 3600,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.working_dir = working_dir
        self.template = template
        self.variables = variables or {}
        self.var_files = list(var_files)
        self.sensitive_variables = set(sensitive_variables)
        self.manifest_file = manifest_file
        self.packer_binary = packer_binary
        self.build_timeout = build_timeout
        self._process: subprocess.Popen | None = None

    def _binary(self) -> str:
        name = self.packer_binary or configured_packer_binary()
        found = shutil.which(name)
        if found is None:
            raise PackerBuildFailed(
                f"packer binary {name!r} not found: install Packer or set [bp] packer_binary "
                "(AIRFLOW__BP__PACKER_BINARY)"
            )
        return found

    def _environment(self) -> dict[str, str]:
        env = packer_environment(dict(os.environ))
        credentials = self.hook.get_credentials(region_name=self.region_name)  # masks the secret parts
        region = self.region_name or self.hook.conn_region_name
        env.update({"AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key})
        if credentials.token:
            env["AWS_SESSION_TOKEN"] = credentials.token
        if region:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
        endpoint = self.hook.conn_config.endpoint_url
        if endpoint:
            env["AWS_ENDPOINT_URL"] = endpoint
        env["PACKER_NO_COLOR"] = "1"
        env["CHECKPOINT_DISABLE"] = "1"
        return env

    def _run(self, argv: list[str], env: dict[str, str]) -> list[packer_output.Line]:
        """Run one packer command, log each line as it arrives, return the parsed lines."""
        self.log.info("Running %s", " ".join(argv[:2]))
        parsed: list[packer_output.Line] = []
        timed_out = threading.Event()
        self._process = subprocess.Popen(
            argv,
            cwd=self.working_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            start_new_session=True,
        )

        def expire() -> None:
            timed_out.set()
            self._kill_group()

        timer = threading.Timer(self.build_timeout, expire)
        timer.start()
        try:
            assert self._process.stdout is not None
            for raw in self._process.stdout:
                line = packer_output.parse_line(raw)
                if line is None:
                    if raw.strip():
                        self.log.info("%s", raw.rstrip())
                    continue
                parsed.append(line)
                if line.type in ("ui", "artifact", "error"):
                    self.log.info("%s", line.human())
            code = self._process.wait()
        finally:
            timer.cancel()
        if timed_out.is_set():
            raise PackerBuildFailed(f"{argv[1]} did not finish within {self.build_timeout:.0f}s and was killed")
        if code != 0:
            errors = [line.human() for line in parsed if line.type == "ui" and line.data[:1] == ("error",)]
            raise PackerBuildFailed(f"packer {argv[1]} exited with code {code}" + (f": {errors[-1]}" if errors else ""))
        return parsed

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Mask the sensitive variables as soon as they are rendered: Airflow stores and
        shows the rendered fields (Rendered Templates) right after this, before execute()."""
        super().render_template_fields(context, jinja_env)
        for name in self.sensitive_variables:
            if name in self.variables:
                mask_secret(str(self.variables[name]), name)

    def execute(self, context: Any) -> dict[str, str]:
        binary = self._binary()
        env = self._environment()
        manifest = Path(self.working_dir) / self.manifest_file if self.manifest_file else None
        if manifest is not None:
            manifest.unlink(missing_ok=True)  # a stale manifest must not name an old AMI
        self._run([binary, "init", self.template], env)
        argv = [binary, "build", "-machine-readable", "-color=false"]
        for name, value in self.variables.items():
            argv += ["-var", f"{name}={value}"]
        for var_file in self.var_files:
            argv += ["-var-file", var_file]
        lines = self._run([*argv, self.template], env)

        if manifest is not None and manifest.exists():
            artifact_id = packer_output.manifest_artifact_id(manifest)
        else:
            artifacts = packer_output.artifact_ids(lines)
            if not artifacts:
                raise PackerBuildFailed("packer build succeeded but printed no artifact id and wrote no manifest")
            artifact_id = artifacts[-1]
        region = env.get("AWS_REGION")
        ami_id = packer_output.ami_for_region(artifact_id, region)
        self.log.info("Packer built %s (artifact %s)", ami_id, artifact_id)
        return {"ami_id": ami_id, "artifact_id": artifact_id, "region": region or ""}

    def _kill_group(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def on_kill(self) -> None:
        self.log.info("Task killed: stopping packer and its children")
        self._kill_group()
