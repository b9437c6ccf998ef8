"""Development tools, not part of the router's data path: nothing in ``run``, ``simulate`` or the
consumer SDK imports this package.

- :mod:`router.devtools.devcluster`: the local Apache Kafka cluster (``residency-router devcluster``);
- :mod:`router.devtools.netproxy`: the loopback TCP fault proxy that ``devcluster up --proxy`` puts
  in front of each broker's client listener (delay, drop, blackhole);
- :mod:`router.devtools.demo`: ``residency-router demo``, the main job end to end on that cluster;
- :mod:`router.devtools.samples`: the generator of CRM change events (Salesforce CDC JSON and Avro,
  Debezium) that the demo, the tests and the benchmarks feed the router.
"""
