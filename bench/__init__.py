"""raftka.bench: benchmarks, run as out-of-process tools against real brokers (`raftka bench ...`)."""
