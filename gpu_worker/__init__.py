"""The GPU worker package that runs on each fleet instance.

It is installed into ``/opt/worker/venv`` on the AMI. It must not import anything from
the Airflow project (``include``, ``plugins``): the instance has only this package.
"""
