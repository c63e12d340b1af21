"""raftka.chaos"""
