// Hourly means of Telegraf's numeric series into the long-term bucket (two years), so the
// raw telemetry can go after 90 days. Change events (text) stay raw only.
option task = {name: "downsample-telemetry", every: 1h, offset: 5m}

from(bucket: "telemetry")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement =~ /^(airflow_|cloudwatch_)/)
    |> aggregateWindow(every: 1h, fn: mean, createEmpty: false)
    |> to(bucket: "longterm")
