"""`model-registry`: serve the registry, manage it, export and import its models.

Settings come from flags, else from MODEL_REGISTRY_* environment variables,
else from the defaults in config.py."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import config
from .app import open_accounts, open_groups
from .domain.accounts import AccountError
from .domain.errors import DomainError
from .domain.groups import OPERATOR
from .domain.models import ROLE_USER, ROLES
from .domain.stores import StorageUnavailable
from .logs import LOG_FORMATS, configure_logging
from .storage.database import is_sqlite
from .storage.migrations import upgrade
from .transfer_cli import add_parsers as add_transfer_parsers
from .transfer_cli import export_models, import_models


def _env(name: str, default: str | int | float) -> str:
    # argparse converts a string default with the option's type, so a bad
    # environment value is reported like a bad flag.
    return os.environ.get(f"MODEL_REGISTRY_{name}", str(default))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-registry", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=_env("DATABASE_URL", config.DEFAULT_DATABASE_URL),
        help="SQLAlchemy URL (env MODEL_REGISTRY_DATABASE_URL; default %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=_env("LOG_LEVEL", "info"),
        help="(env MODEL_REGISTRY_LOG_LEVEL; default %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=_env("LOG_FORMAT", "text"),
        help="one line per record, as text or as a JSON object"
        " (env MODEL_REGISTRY_LOG_FORMAT; default %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server and Envoy's JSON/HTTP face")
    serve.add_argument(
        "--host", default=_env("HOST", "127.0.0.1"), help="gRPC address (env MODEL_REGISTRY_HOST)"
    )
    serve.add_argument(
        "--port",
        type=int,
        default=_env("GRPC_PORT", config.DEFAULT_GRPC_PORT),
        help="gRPC port, 0 picks one (env MODEL_REGISTRY_GRPC_PORT; default %(default)s)",
    )
    serve.add_argument(
        "--http-host",
        default=_env("HTTP_HOST", "127.0.0.1"),
        help="Envoy address (env MODEL_REGISTRY_HTTP_HOST)",
    )
    serve.add_argument(
        "--http-port",
        type=int,
        default=_env("HTTP_PORT", config.DEFAULT_HTTP_PORT),
        help="Envoy port (env MODEL_REGISTRY_HTTP_PORT; default %(default)s)",
    )
    serve.add_argument("--no-http", action="store_true", help="serve gRPC only, without Envoy")
    # A replica of `serve --replicas N`: its supervisor migrated the database
    # and made the admin, so it starts without the database (an outage then
    # gets 503s from it, not a replica that cannot start).
    serve.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument(
        "--envoy-config",
        type=Path,
        default=None,
        help="Envoy config to adapt (default: envoy.yaml of the project)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=_env("MAX_BODY_BYTES", config.DEFAULT_MAX_BODY_BYTES),
        help="largest HTTP request body (env MODEL_REGISTRY_MAX_BODY_BYTES; default %(default)s)",
    )
    serve.add_argument(
        "--auth-cache-seconds",
        type=float,
        default=_env("AUTH_CACHE_SECONDS", config.DEFAULT_AUTH_CACHE_SECONDS),
        help="how long a checked API key is trusted; a revoked key stops working within it"
        " (default %(default)s)",
    )

    serve.add_argument(
        "--keep-versions",
        type=int,
        default=os.environ.get("MODEL_REGISTRY_KEEP_VERSIONS"),
        metavar="N",
        help="keep each model's newest N versions, pruning older ones in the background"
        " (env MODEL_REGISTRY_KEEP_VERSIONS; default: keep every version)",
    )
    serve.add_argument(
        "--replicas",
        type=int,
        default=_env("REPLICAS", 1),
        help="gRPC server processes behind one Envoy, on ports --port .. --port+N-1 (0: free"
        " ports); more than 1 needs a server database such as PostgreSQL"
        " (env MODEL_REGISTRY_REPLICAS; default %(default)s)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=os.environ.get("MODEL_REGISTRY_METRICS_PORT"),
        help="serve Prometheus metrics on http://HOST:PORT/metrics, HOST being --host; with"
        " --replicas, replica i on PORT+i-1 (0: free ports) (env MODEL_REGISTRY_METRICS_PORT;"
        " default off)",
    )
    serve.add_argument(
        "--envoy-workers",
        type=int,
        default=os.environ.get("MODEL_REGISTRY_ENVOY_WORKERS"),
        metavar="N",
        help="Envoy's worker threads (env MODEL_REGISTRY_ENVOY_WORKERS; default: half the"
        " cores, at least 1, leaving the rest to the gRPC server)",
    )
    serve.add_argument(
        "--envoy-admin-port",
        type=int,
        default=None,
        help="serve Envoy's admin interface (stats per replica) on 127.0.0.1:PORT (default off)",
    )

    commands.add_parser(
        "migrate", help="apply pending schema migrations (serve also does this on start)"
    )

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True
    )
    create_user = users.add_parser("create", help="create a user")
    create_user.add_argument("user_id")
    create_user.add_argument("--role", choices=ROLES, default=ROLE_USER)
    create_user.add_argument(
        "--can-create-models", action="store_true", help="allow a non-admin to create models"
    )
    users.add_parser("list", help="list users")

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    create_key = keys.add_parser("create", help="mint an API key for a user (printed once)")
    create_key.add_argument("user_id")
    list_keys = keys.add_parser("list", help="list keys (ids only; keys are never stored)")
    list_keys.add_argument("--user", default=None)
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")

    groups = commands.add_parser(
        "groups", help="manage groups (grants with access_type group name them)"
    ).add_subparsers(dest="action", required=True)
    create_group = groups.add_parser("create", help="create a group")
    create_group.add_argument("group_id")
    create_group.add_argument("--name", default="", help="display name (default: the id)")
    groups.add_parser("list", help="list groups and their members")
    delete_group = groups.add_parser("delete", help="delete a group and its memberships")
    delete_group.add_argument("group_id")
    for action, text in (("add", "add a user to a group"), ("remove", "remove a user")):
        member = groups.add_parser(action, help=text)
        member.add_argument("group_id")
        member.add_argument("user_id")

    add_transfer_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "migrate":
            return _migrate(args)
        return _manage(args)
    except StorageUnavailable as error:
        print(f"model-registry: database unavailable ({error})", file=sys.stderr)
        return 1
    except (AccountError, DomainError) as error:
        print(f"model-registry: {error}", file=sys.stderr)
        return 1


def _migrate(args: argparse.Namespace) -> int:
    migrated = upgrade(args.database_url)
    if migrated.changed:
        print(f"migrated the database from {migrated.before or 'empty'} to {migrated.after}")
    else:
        print(f"the database is up to date (revision {migrated.after})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .envoy import DEFAULT_CONFIG, EnvoyOptions, default_envoy_workers
    from .serve import serve
    from .supervisor import serve_replicas

    if args.keep_versions is not None and args.keep_versions < 1:
        print(
            "model-registry: --keep-versions must be at least 1 (the current version)",
            file=sys.stderr,
        )
        return 2
    if args.replicas < 1:
        print("model-registry: --replicas must be at least 1", file=sys.stderr)
        return 2
    if args.envoy_workers is not None and args.envoy_workers < 1:
        print("model-registry: --envoy-workers must be at least 1", file=sys.stderr)
        return 2
    if args.replicas > 1 and is_sqlite(args.database_url):
        print(
            "model-registry: --replicas above 1 needs a database server that several"
            " processes can share, such as PostgreSQL (--database-url"
            " postgresql+psycopg://...); SQLite is for a single server",
            file=sys.stderr,
        )
        return 2

    settings = config.Settings(
        database_url=args.database_url,
        grpc_host=args.host,
        grpc_port=args.port,
        auth_cache_seconds=args.auth_cache_seconds,
        metrics_port=args.metrics_port,
        # Whatever Envoy lets through must fit in one gRPC message.
        max_message_bytes=max(config.DEFAULT_MAX_MESSAGE_BYTES, args.max_body_bytes * 2),
        keep_versions=args.keep_versions,
    )
    envoy = None
    if not args.no_http:
        envoy = EnvoyOptions(
            host=args.http_host,
            port=args.http_port,
            max_body_bytes=args.max_body_bytes,
            config=args.envoy_config or DEFAULT_CONFIG,
            admin_port=args.envoy_admin_port,
            workers=args.envoy_workers or default_envoy_workers(),
        )
    admin_key = os.environ.get("MODEL_REGISTRY_ADMIN_KEY") or None
    if args.replicas == 1:
        return serve(settings, envoy, admin_key, prepare=not args.replica)
    # Replicas log alike.
    os.environ["MODEL_REGISTRY_LOG_LEVEL"] = args.log_level
    os.environ["MODEL_REGISTRY_LOG_FORMAT"] = args.log_format
    child_args = [
        "--auth-cache-seconds",
        str(args.auth_cache_seconds),
        "--max-body-bytes",
        str(args.max_body_bytes),
    ]
    if args.keep_versions is not None:
        child_args += ["--keep-versions", str(args.keep_versions)]
    return serve_replicas(settings, envoy, admin_key, replicas=args.replicas, child_args=child_args)


def _manage(args: argparse.Namespace) -> int:
    upgrade(args.database_url)
    if args.command == "groups":
        return _manage_groups(args)
    if args.command == "export":
        return export_models(args)
    if args.command == "import":
        return import_models(args)
    with open_accounts(args.database_url) as accounts:
        if args.command == "users" and args.action == "create":
            user = accounts.create_user(
                args.user_id, role=args.role, can_create_models=args.can_create_models
            )
            print(
                f"created user {user.id} (role {user.role},"
                f" may create models: {user.may_create_models})"
            )
        elif args.command == "users" and args.action == "list":
            for user in accounts.list_users():
                flag = str(user.can_create_models).lower()
                print(f"{user.id}\t{user.role}\tcan_create_models={flag}\t{_when(user.created_at)}")
        elif args.command == "keys" and args.action == "create":
            issued = accounts.issue_key(args.user_id)
            print(f"key id: {issued.id}")
            print(f"API key (shown this once; store it now): {issued.key}")
        elif args.command == "keys" and args.action == "list":
            for key in accounts.list_keys(args.user):
                state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active"
                print(f"{key.id}\t{key.user_id}\tcreated {_when(key.created_at)}\t{state}")
        elif args.command == "keys" and args.action == "revoke":
            accounts.revoke_key(args.key_id)
            print(f"revoked {args.key_id}")
    return 0


def _manage_groups(args: argparse.Namespace) -> int:
    with open_groups(args.database_url) as groups:
        if args.action == "create":
            group = groups.create(OPERATOR, args.group_id, args.name)
            print(f"created group {group.id} ({group.name})")
        elif args.action == "list":
            for group in groups.list(OPERATOR):
                print(f"{group.id}\t{group.name}\tmembers: {', '.join(group.member_ids) or '-'}")
        elif args.action == "delete":
            groups.delete(OPERATOR, args.group_id)
            print(f"deleted group {args.group_id}")
        elif args.action == "add":
            groups.add_member(OPERATOR, args.group_id, args.user_id)
            print(f"added {args.user_id} to {args.group_id}")
        elif args.action == "remove":
            groups.remove_member(OPERATOR, args.group_id, args.user_id)
            print(f"removed {args.user_id} from {args.group_id}")
    return 0


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


if __name__ == "__main__":
    sys.exit(main())
