"""The op-code table, built in one place from each ``ops_*`` module's ``TABLE``."""

from transport import ops_games, ops_general, ops_limits, ops_pools
from transport.optable import RESPONSES, Context, Op, build_ops

#: every op by code; a code two modules declare is refused here, at import
OPS: dict[int, Op] = build_ops(
    ops_games.TABLE, ops_general.TABLE, ops_limits.TABLE, ops_pools.TABLE
)
#: the ops with a typed fast path (``Op.read``), tried before the general decode
TYPED: tuple[Op, ...] = tuple(spec for spec in OPS.values() if spec.read is not None)

__all__ = ["OPS", "RESPONSES", "TYPED", "Context", "Op"]
