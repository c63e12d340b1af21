"""raftka.replication"""
