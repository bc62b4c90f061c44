"""Every name the platform derives: SSM parameters under ``/bp/``, stacks, groups,
documents, buckets and the keys of what the DAGs write. A fleet's names belong to
:class:`include.naming.fleet.Fleet`; names without a fleet are in
:mod:`include.naming.platform`. No other module spells a ``/bp/`` string."""
