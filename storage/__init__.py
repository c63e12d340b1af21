"""raftka.storage: the partition log on disk (batches, segments, indexes, recovery, fsync).

It owns every byte under a partition's directory and must never import raftka's other
packages (only the stdlib, `crc32c` and `orjson`): replication and the API build on it.
"""
