"""raftka.storage"""
