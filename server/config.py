"""Settings, read once at start-up (CLI flags, then environment, then
defaults) and passed down."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///model-registry.db"
DEFAULT_GRPC_PORT = 50051
DEFAULT_HTTP_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_AUTH_CACHE_SECONDS = 5.0
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    grpc_host: str = "127.0.0.1"
    grpc_port: int = DEFAULT_GRPC_PORT
    # Seconds a looked-up API key is trusted before it is checked again; a
    # revoked key stops working within this time. 0 checks on every call.
    auth_cache_seconds: float = DEFAULT_AUTH_CACHE_SECONDS
    # Threads for database work; with list_threads, the connection pool size.
    database_threads: int = 8
    # Threads for ListModels' pages. Few: a page is mostly Python work under
    # the interpreter lock, and eight threads taking turns on it finish fewer
    # pages than one or two (BENCHMARKS.md).
    list_threads: int = 2
    # Largest gRPC message the server accepts (RESOURCE_EXHAUSTED above).
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # Port of the Prometheus metrics (/metrics) on grpc_host; None: not served.
    metrics_port: int | None = None
    # Seconds in-flight calls get to finish on SIGTERM.
    shutdown_grace_seconds: float = 5.0
    # Versions each model keeps (the newest, the current one always among
    # them); None keeps every version.
    keep_versions: int | None = None
