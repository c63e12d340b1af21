"""raftka.metadata"""
