"""raftka.api.routes"""
