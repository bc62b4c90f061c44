"""The observability plane (seed 000's TIG: Telegraf, InfluxDB, Grafana) as code: what the
project writes to InfluxDB (:mod:`.catalogue`, :mod:`.tags`), the Grafana dashboards and
alert rules built from it (:mod:`.dashboards`, :mod:`.alert_rules`) and the check that
every query reads only what is written (:mod:`.contract`). ``make dashboards`` writes the
provisioning files (:mod:`.build`)."""
