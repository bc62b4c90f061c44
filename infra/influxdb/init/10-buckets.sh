#!/bin/bash
# The TIG plane's buckets and their retention (include/observability/catalogue.py), created
# once by the influxdb image when it sets itself up (DOCKER_INFLUXDB_INIT_MODE=setup), with
# the tasks that keep a downsampled copy for longer. The economics bucket is the image's own
# initial bucket (DOCKER_INFLUXDB_INIT_BUCKET, DOCKER_INFLUXDB_INIT_RETENTION in compose).
set -euo pipefail

org="${DOCKER_INFLUXDB_INIT_ORG:?}"
influx bucket create --org "$org" --name telemetry --retention 90d \
  --description "Telegraf: Airflow StatsD, ComfyUI/Workers CloudWatch; change events"
influx bucket create --org "$org" --name longterm --retention 730d \
  --description "Hourly means of telemetry and the daily economics, kept two years"
for task in /etc/influxdb/tasks/*.flux; do
  influx task create --org "$org" --file "$task"
done
