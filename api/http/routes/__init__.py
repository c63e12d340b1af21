"""raftka.api.http.routes"""
