"""
### GPU dev node idle stop: a forgotten dev GPU stops by itself

Every 15 minutes, for every running dev node in the registry (`/bp/devnodes/`):

1. **find_idle_nodes**: neither its heartbeat (the last time it was seen ready) nor its CPU
   (`AWS/EC2 CPUUtilization`) or GPU (`CWAgent nvidia_smi_utilization_gpu`) use above 5 %
   is newer than its `idle_stop_minutes`; each idle node's owner is alerted first (the
   alert carries `owner` and `devnode` attributes: an SNS subscription filtered on them is
   the owner's route);
2. **stop_idle_node** (one per idle node): a `gpu_dev_node` run with `action=stop`, so the
   stop takes the node's lock, is refused while a bundle apply runs, updates the registry
   and leaves its lifecycle event like any other.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag

from bp_tasks import gpu_dev_node_idle_stop as tasks
from bp_tasks.gpu_dev_node import DAG_ID as DEV_NODE_DAG
from bp_tasks.params import GUARDRAILS_START, aws_conn_id_param


@dag(
    schedule="*/15 * * * *",
    start_date=GUARDRAILS_START,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    doc_md=__doc__,
    tags=["platform", "dev-node", "cost"],
    default_args={"owner": "platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={"aws_conn_id": aws_conn_id_param()},
)
def gpu_dev_node_idle_stop():
    idle = tasks.find_idle_nodes()
    TriggerDagRunOperator.partial(
        task_id="stop_idle_node",
        trigger_dag_id=DEV_NODE_DAG,
        wait_for_completion=True,
        deferrable=True,
        poke_interval=5,
        failed_states=["failed"],
    ).expand(conf=idle)


gpu_dev_node_idle_stop()
