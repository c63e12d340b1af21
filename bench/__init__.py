"""`raftka.bench`: the benchmarks, out-of-process tools that talk to brokers only as a user
would (HTTP, config files, signals), like the chaos harness (`raftka bench ...`). Nothing in
the broker imports this package.
"""
