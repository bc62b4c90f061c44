"""``python -m devstack demo|up|down``: what ``make demo``, ``make up`` and
``make down`` run."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from devstack import demo
from devstack.stack import REPO_ROOT, LocalStack, StackError

UP_HOME = REPO_ROOT / ".local" / "up"


def up() -> int:
    running = LocalStack.running_state(UP_HOME)
    if running:
        print(f"The stack is already up at {running['api_url']}; run 'make down' first.")
        return 0
    stack = LocalStack(UP_HOME)
    try:
        seeded, _ = stack.start(seed=demo.prepare_stack(stack, datetime.now(UTC).date() - timedelta(days=1)))
    except StackError as error:
        print(f"error: the local stack did not start: {error}", file=sys.stderr)
        return 1
    print(
        f"""
The local stack is up (baseline seeded in account {seeded.account_id}).

  Airflow UI   {stack.api_url}
  user         admin
  password     {stack.admin_password()}
  AWS emulator {stack.moto_url}  (connection aws_default points at it)
  logs         {stack.logs_dir}

Trigger from the UI, or from a shell:
  AIRFLOW_API_URL={stack.api_url} AIRFLOW_USERNAME=admin AIRFLOW_PASSWORD='{stack.admin_password()}' \\
    .venv/bin/python -m include.cli.trigger platform_preflight --unpause --wait
  (ai_economics_daily has a month of synthetic ledger up to yesterday: trigger it with {{"day": "YYYY-MM-DD"}})

Stop everything with: make down"""
    )
    return 0


def down() -> int:
    if LocalStack.stop_from_state(UP_HOME):
        print("The local stack is stopped.")
    else:
        print("No local stack is running.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("command", choices=("demo", "up", "down"))
    command = parser.parse_args(argv).command
    return {"demo": demo.main, "up": up, "down": down}[command]()


if __name__ == "__main__":
    sys.exit(main())
