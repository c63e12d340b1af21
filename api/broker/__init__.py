"""raftka.api.broker: one broker process's parts (metadata follower, lease, controller, group coordinator, background loops), wired by broker.py."""
