"""Importing this module fills the op-code table with every handler."""

from transport import ops_games, ops_general, ops_limits, ops_pools  # noqa: F401
from transport.optable import OPS, RESPONSES, Context, Op

__all__ = ["OPS", "RESPONSES", "Context", "Op"]
