"""A cluster of tote nodes on one PostgreSQL and one Redis (docs/cluster.md): the owner
lease, requests forwarded to the owner, and broadcasts read on every node."""
