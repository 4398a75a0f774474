"""The bottom of the server's plumbing, under storage/ and actors/ alike: the actor kit
(``runtime``: mailboxes, requests, the serve loop, the supervisor), the one clock and the
settings. It imports only ``domain``."""
