"""raftka.api"""
