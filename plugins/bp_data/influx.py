"""Write InfluxDB points through the influxdb provider's connection, or say why not."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowNotFoundException


def write_points(points: list, *, bucket: str, conn_id: str = "influxdb_default") -> bool:
    """Write ``points`` to ``bucket``; False when the connection isn't configured."""
    from airflow.providers.influxdb.hooks.influxdb import InfluxDBHook
    from influxdb_client.client.write_api import SYNCHRONOUS

    try:
        hook = InfluxDBHook(conn_id=conn_id)
        client = hook.get_conn()
    except AirflowNotFoundException:
        return False
    with client.write_api(write_options=SYNCHRONOUS) as writer:
        writer.write(bucket=bucket, org=client.org, record=points)
    return True
