"""The Kafka face: Apache Kafka's binary protocol beside the HTTP API (docs/kafka-protocol.md)."""
