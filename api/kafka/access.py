"""What a Kafka connection's client may do: its user's ACLs (api/acl.py, the same model
as over HTTP), or everything on a cluster without `[[users]]`. Pure.

Kafka's operations map onto raftka's: Produce needs `produce` on the topic; Fetch,
ListOffsets and OffsetFetch/OffsetCommit need `consume` on the topic; the group APIs
need the group (`consume`); CreateTopics, DeleteTopics and Metadata's topic creation
need `admin` on the topic; Metadata shows the topics the user may see. InitProducerId
(an idempotent producer's id) needs `produce` on some topic, as Kafka 3 asks for WRITE
on any topic in place of IDEMPOTENT_WRITE on the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftka.api.acl import Operation, User


@dataclass(frozen=True, slots=True)
class Access:
    user: User | None = None  # None: the cluster is open

    def may(self, operation: Operation, topic: str) -> bool:
        return self.user is None or self.user.may(operation, topic)

    def may_use_group(self, group: str) -> bool:
        return self.user is None or self.user.may_use_group(group)

    def may_see(self, topic: str) -> bool:
        return self.user is None or self.user.may_see(topic)

    @property
    def may_produce(self) -> bool:
        """Whether the user may produce to some topic (InitProducerId)."""
        return self.user is None or any(
            Operation.PRODUCE in acl.operations and acl.topics for acl in self.user.acls
        )


OPEN = Access()
