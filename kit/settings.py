"""The server's tunables (``Settings``), read by every layer above the kit: the CLI and
config files fill them (``tote/config.py``), the actors and transports read them."""

from __future__ import annotations

from dataclasses import dataclass

from domain.pool import DEFAULT_FAIL_SAFE_MS, DEFAULT_MAX_POOL_LIFETIME_MS, FailSafeRule


@dataclass
class Settings:
    """Tunables with the defaults an operator would expect; the CLI can override them."""

    default_currency: str = "EUR"
    request_timeout: float = 10.0
    max_frame_bytes: int = 64 * 1024
    #: unsent bytes one connection may hold before it is closed (1008) as too slow
    outbox_bytes: int = 1024 * 1024
    #: websocket connections one user may have open at once; the next handshake gets 429
    max_connections_per_user: int = 8
    rate_per_second: float = 50.0
    rate_burst: int = 100
    game_admin_limit: int = 3
    #: above this many subscribers a game's joins and leaves (470, 480) go to its admins
    #: only, and everyone gets the count (471) at most once a second (decisions §9)
    presence_limit: int = 100
    distribution_interval: float = 0.25
    #: a resolved pool or a closed game idle this long leaves memory (reloaded on demand)
    idle_seconds: float = 300.0
    #: scrypt cost of new password hashes (stored with each hash); tests lower it
    scrypt_n: int = 2**17
    #: POST /v1/login attempts per window, per name and per client address (429 past it)
    login_attempts_per_name: int = 5
    login_attempts_per_address: int = 30
    login_window_seconds: float = 60.0
    #: an unresolved pool is voided this long after its closing when op 385 sets no
    #: fail_safe_at (seed 003); docs/lotteries.md
    fail_safe_delay_ms: int = DEFAULT_FAIL_SAFE_MS
    #: a pool with no closing time is voided this long after its opening when op 385 sets
    #: no fail_safe_at (decisions §13): no stake waits for ever
    max_pool_lifetime_ms: int = DEFAULT_MAX_POOL_LIFETIME_MS
    #: the scheme and host the HAL resources' links start with (``https://tote.example``);
    #: None: the request's own
    public_url: str | None = None
    #: a commit slower than this is logged as a warning (the disk or the batch is in trouble)
    slow_commit_seconds: float = 0.5
    #: remote wallet mode (seed 004): the operator's callback base URL and signing secret;
    #: both or neither (docs/wallet.md)
    wallet_url: str | None = None
    wallet_secret: str | None = None
    #: the seed's ``client`` field in every callback
    wallet_client: str = "tote"
    #: seconds one callback may take before its outcome counts as unknown
    wallet_timeout: float = 5.0
    #: seconds before a failed callback's first retry (doubling to 5 minutes, with jitter)
    wallet_retry_seconds: float = 1.0

    @property
    def fail_safe_rule(self) -> FailSafeRule:
        return FailSafeRule(self.fail_safe_delay_ms, self.max_pool_lifetime_ms)

    @property
    def remote_wallet(self) -> bool:
        return self.wallet_url is not None

    #: browser origins (``scheme://host[:port]``) whose pages may open a websocket, besides
    #: the server's own HTTP origin; ``"*"`` allows any. Clients sending no Origin pass.
    allowed_origins: tuple[str, ...] = ()
    #: slow and silent clients (docs/reliability.md, scenario 7): an HTTP connection idle
    #: this long between requests (whatever happened on it before), or this slow to send a
    #: request's headers, is closed
    http_idle_seconds: float = 5.0
    #: a request body slower than this is refused (408 BODY_TOO_SLOW) and its connection closed
    http_body_seconds: float = 10.0
    #: a client that takes no 16 KiB piece of a response in this long has its connection closed
    http_send_seconds: float = 10.0
    #: HTTP connections one client address (an IPv4 address, an IPv6 /64; an IPv6 /48
    #: holds 8 times as many) may hold open at once; the next is refused (429
    #: TOO_MANY_CONNECTIONS) until one closes
    http_connections_per_address: int = 128
    #: websocket connections one client address (counted as for HTTP) may hold open at
    #: once, authenticated or not; the next is refused (429 TOO_MANY_CONNECTIONS) before
    #: its handshake is read
    ws_connections_per_address: int = 256
    #: a websocket client has this long to send its opening handshake
    handshake_seconds: float = 10.0
    #: a cluster (docs/cluster.md): how long the owner lease lasts unrenewed; the games of
    #: an owner that stops renewing are adopted by another node within about this long
    lease_seconds: float = 10.0
