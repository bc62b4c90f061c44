"""The Airflow UI as a platform engineer and an approver drive it, in Debian's Chromium:
the trigger form (a refused slug, then a run), the run's task log, and a production
approval from the Required Actions view. Screenshots go to ``.local/test-artifacts/ui-*``."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from devstack.users import APPROVERS
from include.naming import platform
from include.naming.fleet import Fleet
from tests.e2e.helpers import (
    FLEET_CONFIG,
    POLL_SECONDS,
    provision_fleet,
    remove_fleet,
    sample_bundles,
    states,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fleets]

ROLLOUT = "gpu_bundle_rollout"
PROVISION = "gpu_fleet_provision"
SLUG = "e2e-browser"
#: what a page may take to show an answer on this 2-core machine under the suite's load
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def fleet_and_bundle(stack, client):
    """A staging fleet on bundle v1, and v2 to roll out to it."""
    v1, v2 = sample_bundles(stack)
    fleet = provision_fleet(stack, client, SLUG, v1)
    yield fleet, v2
    remove_fleet(stack, fleet)


def _signed_in(browser, stack, path: str, user: str = "admin"):
    """A page of a fresh browser context, signed in as ``user`` and showing ``path``."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(stack.api_url + path)
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(stack.password(user))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}")
    return page


def _run_page(dag_id: str, run_id: str, task_id: str, tab: str = "") -> str:
    path = f"/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/{task_id}"
    return path + (f"/{tab}" if tab else "")


def test_the_trigger_form_refuses_a_bad_slug_in_one_line_then_runs_and_shows_the_log(
    stack, client, browser, artifacts_dir, fleet_and_bundle
):
    fleet, bundle_id = fleet_and_bundle
    runs_before = {run.run_id for run in client.list_runs(ROLLOUT)}
    page = _signed_in(browser, stack, f"/dags/{ROLLOUT}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.locator("#element_fleet_slug").fill("Bad Slug; rm -rf /")
    dialog.locator("#element_bundle_id").fill(bundle_id)
    dialog.get_by_role("button", name="Trigger").click()

    refusal = dialog.get_by_text("Invalid input for param fleet_slug:")
    refusal.wait_for()
    refusal.scroll_into_view_if_needed()
    page.screenshot(path=artifacts_dir / "ui-1-trigger-form-refused.png")
    assert refusal.inner_text() == (
        "Invalid input for param fleet_slug: 'Bad Slug; rm -rf /' does not match the pattern "
        "^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$ (The fleet, e.g. `gpu-default`.)"
    )
    assert {run.run_id for run in client.list_runs(ROLLOUT)} == runs_before  # refused before any run existed

    # the refusal's toast covers the form's button until it goes (it waits while hovered)
    page.mouse.move(0, 0)
    page.locator("[data-scope=toast][data-part=root]").wait_for(state="hidden")
    dialog.locator("#element_fleet_slug").fill(fleet.slug)
    dialog.get_by_role("button", name="Trigger").click()
    dialog.wait_for(state="hidden")
    (run,) = [run for run in client.list_runs(ROLLOUT) if run.run_id not in runs_before]
    assert run.conf["fleet_slug"] == fleet.slug
    assert run.conf["bundle_id"] == bundle_id
    run = client.wait_for_run(ROLLOUT, run.run_id, timeout=300)
    assert run.state == "success", states(client, ROLLOUT, run)

    page.goto(stack.api_url + _run_page(ROLLOUT, run.run_id, "rollout_outcome"))
    live = page.get_by_text(f"bundle {bundle_id} is live on staging/{fleet.slug}").first
    live.wait_for()
    page.screenshot(path=artifacts_dir / "ui-2-task-log.png")
    assert live.is_visible()


def test_an_approver_approves_a_production_apply_from_the_required_actions_view(stack, client, browser, artifacts_dir):
    aws = stack.aws_client()
    ssm = aws("ssm")
    fleet = Fleet("production", SLUG)
    image = ssm.get_parameter(Name=Fleet("staging", "gpu-default").ami_pointer)["Parameter"]["Value"]
    ssm.put_parameter(Name=fleet.desired_config, Value=json.dumps(FLEET_CONFIG), Type="String", Overwrite=True)
    ssm.put_parameter(Name=fleet.ami_pointer, Value=image, Type="String", DataType="aws:ec2:image", Overwrite=True)
    run = client.trigger(PROVISION, {"fleet_stage": "production", "fleet_slug": SLUG, "action": "apply"})
    try:
        deadline = time.monotonic() + 240
        while client.awaiting_input(PROVISION, run.run_id) != ["approve_apply"]:
            assert time.monotonic() < deadline, states(client, PROVISION, run)
            time.sleep(POLL_SECONDS)

        page = _signed_in(browser, stack, "/required_actions", user=APPROVERS[0])
        row = page.get_by_role("row").filter(has_text=run.run_id)
        # the question names the fleet it changes (its subject is templated with the run's params)
        row.get_by_role("link", name=f"Apply the desired_config of GPU fleet production/{SLUG}?").click()
        page.get_by_text(f"Stack {fleet.fleet_stack} would be created or updated").wait_for()
        page.screenshot(path=artifacts_dir / "ui-3-required-action.png")
        page.get_by_role("button", name="Approve").click()
        page.get_by_text(f"from {APPROVERS[0]}").wait_for()
        page.screenshot(path=artifacts_dir / "ui-4-approved.png")

        run = client.wait_for_run(PROVISION, run.run_id, timeout=300)
        assert run.state == "success", states(client, PROVISION, run)
        stack_status = aws("cloudformation").describe_stacks(StackName=fleet.fleet_stack)["Stacks"][0]["StackStatus"]
        assert stack_status == "CREATE_COMPLETE"
    finally:
        # the fleet provision tests expect no production stacks: leave none behind
        cloudformation = aws("cloudformation")
        for name in (fleet.fleet_stack, platform.shared_stack("production")):
            cloudformation.delete_stack(StackName=name)
        ssm.delete_parameters(Names=[fleet.desired_config, fleet.ami_pointer])


def test_the_dev_node_trigger_form_opens_ready_to_submit_without_a_reason(stack, client, browser, artifacts_dir):
    """gpu_dev_node's form opened with Trigger greyed out and only a red "!" (its optional
    reason was required with the default ""). tests/dags checks every DAG's params for the
    same mistake; this is what a user saw."""
    page = _signed_in(browser, stack, "/dags/gpu_dev_node")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.locator("#element_reason").wait_for()
    submit = dialog.get_by_role("button", name="Trigger")
    page.screenshot(path=artifacts_dir / "ui-5-dev-node-form.png")
    assert submit.is_enabled()
