"""The audit trail: one hash-chained record per ingress event (one chain per ingress partition), and
its verification.

- :mod:`router.audit.record`: the record, its Avro encoding and the hash definition (pure);
- :mod:`router.audit.chain`: :class:`~router.audit.chain.AuditChain` and
  :func:`~router.audit.chain.verify_chain` (pure);
- :mod:`router.audit.kafka`: reading chains' committed tails and the whole trail;
- :mod:`router.audit.config`: the ``audit:`` config section;
- :mod:`router.cli.audit` (outside this package): ``residency-router audit verify``.

Nothing is imported here, so that loading the config does not load Avro or Kafka.
"""
