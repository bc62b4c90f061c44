"""The node agent (``python -m gpu_worker.agent``): the metrics only a GPU node can
report, its scale-in protection and, on a dev node, its heartbeat. See
:mod:`gpu_worker.agent.node`; the metric contract is :mod:`gpu_worker.metrics`."""
