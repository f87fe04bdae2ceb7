"""Load, substitute, merge and validate the configuration tree under config/.

Order: ``config/agora.yaml``, then ``config/environments/<AGORA_ENV>.yaml``,
then the file named by ``AGORA_CONFIG`` if set. ``${VAR}`` and
``${VAR:default}`` take environment variables. Any problem raises
:class:`ConfigError` naming the key, which the command line turns into one line.
"""

import copy
import os
import re
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import yaml

from services.chassis.schemas import linear_validator

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = Path(os.environ.get("AGORA_CONFIG_DIR", ROOT / "config"))

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


class ConfigError(Exception):
    """A missing or invalid setting; ``str()`` is the one line to show."""

    def __init__(self, key, message):
        self.key = key
        super().__init__(f"config error: {key}: {message}" if key else f"config error: {message}")


def _substitute(value, key, env):
    if isinstance(value, dict):
        return {k: _substitute(v, f"{key}.{k}" if key else k, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{key}[{i}]", env) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def resolve(match):
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is None:
            raise ConfigError(key, f"environment variable {name} is not set")
        return default

    whole = _ENV_REF.fullmatch(value)
    if whole:
        # A value that is only a reference keeps YAML typing: "8080" -> 8080.
        text = resolve(whole)
        try:
            parsed = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError:
            return text
        return parsed if isinstance(parsed, (int, float, bool, str)) else text
    return _ENV_REF.sub(resolve, value)


def deep_merge(base, overlay):
    """Merge ``overlay`` into a copy of ``base``; mappings merge, the rest replaces."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path):
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise ConfigError(None, f"file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(None, f"{path} is not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(None, f"{path} must contain a mapping at the top level")
    return data


# Every process that connects to RabbitMQ under a broker user of its own
# (agora/broker.py gives each its permissions); anything else is the operator.
BROKER_PRINCIPALS = (
    "users",
    "auth",
    "catalog",
    "inventory",
    "orders",
    "billing",
    "notifications",
    "gateway",
    "integration",
)

_NUMBER = {"type": "number", "exclusiveMinimum": 0}
_POSITIVE_INT = {"type": "integer", "minimum": 1}
_STRING = {"type": "string", "minLength": 1}


# The gateway's rate-limit groups (gateway.rate_limits.groups), every one required.
RATE_LIMIT_GROUPS = (
    "read",
    "write",
    "oauth",
    "token_per_ip",
    "login_failures_per_ip",
    "login_failures_per_account",
)

# A scheme and authority, no path beyond "/", no query or fragment.
_PUBLIC_URL = {"type": "string", "pattern": r"^https?://[^/?# ]+/?$"}
# A browser origin (RFC 6454): scheme, host and optional port, nothing else.
_ORIGIN = {"type": "string", "pattern": r"^https?://[^/?# ]+$"}

_RATE_LIMIT = {
    "type": "string",
    "pattern": r"^ *[0-9]+ *(/|per) *[0-9]* *[a-z]+( *; *[0-9]+ *(/|per) *[0-9]* *[a-z]+)* *$",
}


def _section(properties, required=None):
    return {
        "type": "object",
        "properties": properties,
        "required": list(required if required is not None else properties),
    }


_ARGON2 = _section(
    {
        "time_cost": _POSITIVE_INT,
        "memory_cost": {"type": "integer", "minimum": 8},
        "parallelism": _POSITIVE_INT,
        "max_concurrent": _POSITIVE_INT,
    }
)
# A service's own database role's password (the role is named like its database).
_DB_PASSWORD = {"type": "string"}
# Keys that sign something (cursors): long enough not to be guessed.
_KEY = {"type": "string", "minLength": 16}

# One downstream's client (services/chassis/service_client.py); an override
# (rpc_clients.<service>) may give any of its keys, the rest come from default.
_RPC_CLIENT_KEYS = {
    "timeout": _NUMBER,
    "retries": {"type": "integer", "minimum": 0},
    "backoff_base": _NUMBER,
    "backoff_max": _NUMBER,
    "max_concurrent": _POSITIVE_INT,
    "breaker": {
        **_section({"fail_max": _POSITIVE_INT, "reset_timeout": _NUMBER}),
        "additionalProperties": False,
    },
}
_RPC_CLIENT = {**_section(_RPC_CLIENT_KEYS), "additionalProperties": False}
_RPC_CLIENT_OVERRIDE = {
    **_section(_RPC_CLIENT_KEYS, required=()),
    "additionalProperties": False,
}
_RPC_CLIENT_OVERRIDE["properties"] = {
    **_RPC_CLIENT_KEYS,
    "breaker": {**_RPC_CLIENT_KEYS["breaker"], "required": []},
}

SCHEMA = _section(
    {
        "environment": {"enum": ["development", "test", "production"]},
        # Seconds a service has, after SIGTERM, to finish its workers and its
        # outbox relay's batch (services/chassis/runner.py).
        "shutdown_timeout": _NUMBER,
        "amqp": _section(
            {
                "uri": {"type": "string", "pattern": "^amqps?://"},
                "user_prefix": {"type": "string", "pattern": "^[A-Za-z0-9_.-]*$"},
                "passwords": _section({name: {"type": "string"} for name in BROKER_PRINCIPALS}),
            }
        ),
        "postgres": _section(
            {
                # The server only: credentials are the admin's (below) or a service role's.
                "url": {"type": "string", "pattern": "^postgresql(\\+psycopg2)?://[^@/?#]+/?$"},
                "database_prefix": {"type": "string", "pattern": "^[a-z_][a-z0-9_]*$"},
                "pool_size": _POSITIVE_INT,
                "connect_timeout": _NUMBER,
                "admin": _section({"user": _STRING, "password": {"type": "string"}}),
            }
        ),
        "redis": _section(
            {
                "url": {"type": "string", "pattern": "^rediss?://"},
                "key_prefix": {"type": "string"},
                "socket_timeout": _NUMBER,
            }
        ),
        "tracing": _section(
            {
                # Empty: no collector (no spans sent; trace ids still in logs).
                "zipkin_url": {"type": "string", "pattern": "^(https?://.+)?$"},
                "sample_rate": {"type": "number", "minimum": 0, "maximum": 1},
                "batch_size": _POSITIVE_INT,
                "flush_interval": _NUMBER,
                "queue_size": _POSITIVE_INT,
                "send_timeout": _NUMBER,
            }
        ),
        "logging": _section(
            {
                "level": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]},
                # What `agora run` writes to <state dir>/logs/<process>.log (rotated).
                "files": _section(
                    {
                        "enabled": {"type": "boolean"},
                        "max_bytes": {"type": "integer", "minimum": 1024},
                        "backups": {"type": "integer", "minimum": 0},
                    }
                ),
            }
        ),
        "gateway": _section(
            {
                "host": _STRING,
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                # Filled in by load_config (public_url()): never empty once loaded.
                "public_url": _PUBLIC_URL,
                "cors": {
                    **_section({"origins": {"type": "array", "items": _ORIGIN}}),
                    "additionalProperties": False,
                },
                "web": {
                    **_section({"root": _STRING, "theme": _STRING}),
                    "additionalProperties": False,
                },
                "workers": _POSITIVE_INT,
                "threads": _POSITIVE_INT,
                "rpc": _section(
                    {
                        "timeout": _NUMBER,
                        "breaker": _section({"fail_max": _POSITIVE_INT, "reset_timeout": _NUMBER}),
                    }
                ),
                "readiness_timeout": _NUMBER,
                # Seconds gunicorn gives in-flight requests after SIGTERM (whole seconds).
                "graceful_timeout": _POSITIVE_INT,
                "readiness_cache_ttl": _NUMBER,
                "health_report_ttl": _NUMBER,
                "max_body_bytes": _POSITIVE_INT,
                "trusted_proxies": {"type": "array", "items": _STRING},
                "catalog_cache": _section(
                    {
                        "enabled": {"type": "boolean"},
                        "ttl": _NUMBER,
                        "max_entries": _POSITIVE_INT,
                        "max_bytes": _POSITIVE_INT,
                    }
                ),
                "rate_limits": _section(
                    {
                        "enabled": {"type": "boolean"},
                        "strategy": {"enum": ["moving-window", "fixed-window", "sliding-window"]},
                        "groups": _section({group: _RATE_LIMIT for group in RATE_LIMIT_GROUPS}),
                    }
                ),
            }
        ),
        # Product images (services/chassis/objectstore.py, gateway/images.py).
        "media": _section(
            {
                "storage": {"enum": ["filesystem", "s3"]},
                # Empty: <state dir>/media.
                "path": {"type": "string"},
                "max_upload_bytes": _POSITIVE_INT,
                "max_pixels": _POSITIVE_INT,
                "sizes": {
                    **_section(
                        {
                            "list": {"type": "integer", "minimum": 16, "maximum": 8192},
                            "detail": {"type": "integer", "minimum": 16, "maximum": 8192},
                        }
                    ),
                    "additionalProperties": False,
                },
                "quality": {"type": "integer", "minimum": 1, "maximum": 100},
                "max_concurrent": _POSITIVE_INT,
                "s3": _section(
                    {
                        # Empty: AWS itself (boto3's endpoint for the region).
                        "endpoint_url": {"type": "string", "pattern": "^(https?://[^?#]+)?$"},
                        "bucket": {
                            "type": "string",
                            "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                        },
                        "region": _STRING,
                        "access_key_id": {"type": "string"},
                        "secret_access_key": {"type": "string"},
                        "public_url": {"type": "string", "pattern": "^(https?://[^?#]+)?$"},
                        "create_bucket": {"type": "boolean"},
                        "timeout": _NUMBER,
                    }
                ),
            }
        ),
        "auth": _section(
            {
                "issuer": {"type": "string", "pattern": "^https?://[^?#]+$"},
                "audience": _STRING,
                "access_token_ttl": _POSITIVE_INT,
                "refresh_token_ttl": _POSITIVE_INT,
                "authorization_code_ttl": _POSITIVE_INT,
                "password_grant": {"type": "boolean"},
                "clock_skew": {"type": "integer", "minimum": 0, "maximum": 300},
                "jwks_cache_ttl": _POSITIVE_INT,
                "jwks_min_refresh_interval": _NUMBER,
            }
        ),
        "metrics": _section(
            {
                "enabled": {"type": "boolean"},
                # Where each process serves /metrics: off the public API port. Port 0
                # takes any free port; the registry publishes each process's URL.
                "host": _STRING,
                "port": {"type": "integer", "minimum": 0, "maximum": 65535},
            }
        ),
        "discovery": _section(
            {
                # Each instance heartbeats every heartbeat_interval seconds; the
                # registry forgets an instance silent for ttl seconds.
                "heartbeat_interval": _NUMBER,
                "ttl": _NUMBER,
            }
        ),
        "health_monitor": _section(
            {
                # Each service instance checks its database and Redis this often
                # (seconds), each within timeout; while either fails it stops
                # consuming its queues (services/chassis/health.py).
                "interval": _NUMBER,
                "timeout": _NUMBER,
                # Consecutive failed checks that make a dependency count as down.
                "failure_threshold": _POSITIVE_INT,
                # The dependencies whose loss takes the instance off its queues
                # (all are checked and exported as gauges either way).
                "dependencies": {
                    "type": "array",
                    "items": {"enum": ["database", "redis"]},
                    "uniqueItems": True,
                },
            }
        ),
        # `agora prometheus`: the local server's address and how long it keeps data.
        "prometheus": _section(
            {
                "host": _STRING,
                "port": {"type": "integer", "minimum": 0, "maximum": 65535},
                "retention": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d|w|y)$"},
            }
        ),
        # Service-to-service calls: rpc_clients.default, and per downstream service
        # (rpc_clients.catalog, ...) the keys that differ.
        "rpc_clients": {
            "type": "object",
            "properties": {"default": _RPC_CLIENT},
            "required": ["default"],
            "additionalProperties": _RPC_CLIENT_OVERRIDE,
        },
        "events": _section(
            {
                "relay_interval": _NUMBER,
                "relay_batch": _POSITIVE_INT,
                "outbox_retention": _POSITIVE_INT,
                "inbox_retention": _POSITIVE_INT,
                "max_attempts": _POSITIVE_INT,
                "backoff_base": _NUMBER,
                "backoff_max": _NUMBER,
                # Seconds a handler failing with Unavailable (a service it needs
                # is down) is retried without spending its attempts.
                "outage_retry_window": {"type": "number", "minimum": 0},
                "validate": {"type": "boolean"},
            }
        ),
        "services": _section(
            {
                "users": _section(
                    {
                        "instances": _POSITIVE_INT,
                        "max_workers": _POSITIVE_INT,
                        "database_password": _DB_PASSWORD,
                        "password_hash": _ARGON2,
                        "verification": _section(
                            {
                                "email_ttl": _POSITIVE_INT,
                                "phone_ttl": _POSITIVE_INT,
                                "phone_max_attempts": _POSITIVE_INT,
                            }
                        ),
                    }
                ),
                "auth": _section(
                    {
                        "instances": _POSITIVE_INT,
                        "max_workers": _POSITIVE_INT,
                        "database_password": _DB_PASSWORD,
                        "key_passphrase": {"type": "string", "minLength": 16},
                        "key_size": {"enum": [2048, 3072, 4096]},
                        "client_secret_hash": _ARGON2,
                        "denylist_sync_interval": _NUMBER,
                    }
                ),
                "catalog": _section(
                    {
                        "instances": _POSITIVE_INT,
                        "max_workers": _POSITIVE_INT,
                        "database_password": _DB_PASSWORD,
                        "cursor_key": _KEY,
                        "cache": _section(
                            {
                                "enabled": {"type": "boolean"},
                                "ttl": _POSITIVE_INT,
                                "jitter": {"type": "number", "minimum": 0, "maximum": 0.5},
                                "lock_ttl": _NUMBER,
                                "lock_wait": _NUMBER,
                            }
                        ),
                    }
                ),
                "inventory": _section(
                    {
                        "instances": _POSITIVE_INT,
                        "max_workers": _POSITIVE_INT,
                        "database_password": _DB_PASSWORD,
                        "reservation_ttl": _POSITIVE_INT,
                        "expiry_interval": _NUMBER,
                        "default_warehouse": {
                            "type": "string",
                            "pattern": "^[a-z0-9][a-z0-9-]{0,31}$",
                        },
                    }
                ),
                "orders": _section(
                    {
                        "instances": _POSITIVE_INT,
                        "max_workers": _POSITIVE_INT,
                        "database_password": _DB_PASSWORD,
                        "cursor_key": _KEY,
                        "saga_timeout": _POSITIVE_INT,
                        "cancellation_window": {"type": "integer", "minimum": 0},
                        "sweep_interval": _NUMBER,
                        "max_lines": _POSITIVE_INT,
                        "max_quantity": _POSITIVE_INT,
                    }
                ),
                "billing": _section(
                    {
                        "instances": _POSITIVE_INT,
                        "max_workers": _POSITIVE_INT,
                        "database_password": _DB_PASSWORD,
                        "cursor_key": _KEY,
                        "provider": {"enum": ["simulated"]},
                        "provider_timeout": _NUMBER,
                        "charge_attempts": _POSITIVE_INT,
                        "charge_backoff": {"type": "number", "minimum": 0},
                    }
                ),
                "notifications": _section(
                    {
                        "instances": _POSITIVE_INT,
                        "max_workers": _POSITIVE_INT,
                        "database_password": _DB_PASSWORD,
                        "cursor_key": _KEY,
                        "smtp": _section(
                            {
                                "host": _STRING,
                                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                "security": {"enum": ["none", "starttls", "tls"]},
                                "username": {"type": "string"},
                                "password": {"type": "string"},
                                "sender": _STRING,
                                "timeout": _NUMBER,
                            }
                        ),
                        "sms": _section(
                            {
                                "provider": {"enum": ["none", "log", "http"]},
                                "url": {"type": "string"},
                                "token": {"type": "string"},
                                "timeout": _NUMBER,
                            }
                        ),
                        "send_interval": _NUMBER,
                        "max_attempts": _POSITIVE_INT,
                        "backoff_base": _NUMBER,
                        "backoff_max": _NUMBER,
                        "max_per_recipient_per_hour": _POSITIVE_INT,
                        "verify_email_url": {"type": "string", "pattern": "^https?://[^?#]+$"},
                    }
                ),
            }
        ),
        # null turns demo data off (production).
        "demo": {
            "oneOf": [
                {"type": "null"},
                _section(
                    {
                        "user_email": _STRING,
                        "user_password": {"type": "string", "minLength": 8},
                        "admin_email": _STRING,
                        "admin_password": {"type": "string", "minLength": 8},
                        "web_client_id": _STRING,
                        "web_redirect_uris": {
                            "type": "array",
                            "items": {"type": "string", "pattern": "^https?://[^#]+$"},
                        },
                        "integration_client_id": _STRING,
                        "integration_secret": {"type": "string", "minLength": 16},
                    }
                ),
            ]
        },
    }
)


def _error_key(error):
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        if missing:
            return f"{path}.{missing.group(1)}" if path else missing.group(1), "is required"
    return path or "<root>", error.message


# --- what each process reads (least privilege) ----------------------------------
#
# One rule: a process is given, and its config is resolved and validated for,
# only the key paths below. Secrets live in ``services.<name>`` (that service's
# own: its database password, the auth signing-key passphrase, SMTP and SMS
# credentials, cursor keys) or in ``postgres.admin`` (migrations only), so no
# process sees another's secrets, and ``${VAR}`` references outside its view are
# never resolved: a secret another process owns need not even be in its
# environment. ``agora migrate`` and the operator tools load the whole tree.

SHARED_SETTINGS = (
    "environment",
    # The broker's address; each principal adds its own password (settings_paths).
    "amqp.uri",
    "amqp.user_prefix",
    "postgres.url",
    "postgres.database_prefix",
    "postgres.pool_size",
    "postgres.connect_timeout",
    "redis",
    "tracing",
    "logging",
    "metrics",
    "discovery",
    "health_monitor",
    "events",
    # How a service calls other services (timeouts, retries, breakers, bulkheads).
    "rpc_clients",
    "shutdown_timeout",
)
# Shared sections a service reads beyond SHARED_SETTINGS and its services.<name>.
# The catalog writes absolute image URLs into product JSON: it reads where
# media is served from (the public gateway address, or the bucket's public
# URL), never the store's credentials.
_ALSO_READS = {
    "auth": ("auth",),
    "catalog": (
        "media.storage",
        "media.s3.public_url",
        "gateway.public_url",
        "gateway.host",
        "gateway.port",
    ),
}
# The gateway: no database, no events, no service's settings or secrets.
GATEWAY_SETTINGS = (
    "environment",
    "amqp.uri",
    "amqp.user_prefix",
    "amqp.passwords.gateway",
    "redis",
    "tracing",
    "logging",
    "metrics",
    "discovery",
    "gateway",
    "auth",
    # Product images: the gateway processes, stores and serves them.
    "media",
)


def settings_paths(process):
    """The key paths ``process`` may read: ``"gateway"``, a service's name,
    ``"migrate"`` (the admin role and every service role's password), or any
    other name (a test service, the CLI's RPC client), which gets the shared ones."""
    if process == "gateway":
        return GATEWAY_SETTINGS
    if process == "migrate":
        services = SCHEMA["properties"]["services"]["properties"]
        roles = tuple(f"services.{name}.database_password" for name in services)
        return SHARED_SETTINGS + ("postgres.admin",) + roles
    own = (f"services.{process}",)
    if process in BROKER_PRINCIPALS:
        own += (f"amqp.passwords.{process}",)
    return SHARED_SETTINGS + _ALSO_READS.get(process, ()) + own


def project(tree, paths):
    """A copy of ``tree`` holding only the dotted key ``paths`` that exist in it."""
    projected = {}
    for path in paths:
        *parents, leaf = path.split(".")
        source, target = tree, projected
        for key in parents:
            source = source.get(key) if isinstance(source, dict) else None
            if not isinstance(source, dict):
                break
            target = target.setdefault(key, {})
        else:
            if isinstance(source, dict) and leaf in source:
                target[leaf] = copy.deepcopy(source[leaf])
    return projected


def _project_schema(schema, paths):
    """SCHEMA narrowed to ``paths``: a section requires only the keys kept."""
    trie = {}
    for path in paths:
        node = trie
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if node is True:
                break
        else:
            node[leaf] = True

    def narrow(node, subschema):
        if node is True:
            return subschema
        # A path SCHEMA does not know (yet) is projected but not validated.
        properties = {
            k: narrow(v, subschema["properties"][k])
            for k, v in node.items()
            if k in subschema["properties"]
        }
        required = [k for k in subschema.get("required", ()) if k in properties]
        return {**subschema, "properties": properties, "required": required}

    return narrow(trie, schema)


def settings_for(config, process):
    """The part of a loaded ``config`` that ``process`` is given (see settings_paths)."""
    return project(config, settings_paths(process))


# Rules that depend on the environment, beyond what SCHEMA says of each value.
_SMTP_SECURITY = "services.notifications.smtp.security"


def _check_environment(config):
    if config.get("environment") != "production":
        return
    smtp = config.get("services", {}).get("notifications", {}).get("smtp")
    if smtp is None:  # a process that is not given the notifications settings
        return
    security = smtp["security"]
    if security not in ("starttls", "tls"):
        # Mail holds verification links and order details: never in clear text.
        raise ConfigError(_SMTP_SECURITY, f"must be starttls or tls in production, not {security}")


def validate(config, schema=None):
    validator = linear_validator(SCHEMA if schema is None else schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        key, message = _error_key(errors[0])
        raise ConfigError(key, message)
    _check_environment(config)
    return config


# What the public URL is made of; none of it is a secret, so every process may
# resolve it (a service needs it for the links it writes, not the gateway's settings).
_VERIFY_EMAIL = "services.notifications.verify_email_url"
_PUBLIC_URL_INPUTS = (
    "gateway.public_url",
    "gateway.host",
    "gateway.port",
    "auth.issuer",
    _VERIFY_EMAIL,
)
_WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "")


def _fill_public_url(merged, env, environment):
    """Resolve ``gateway.public_url`` once, before any process's view is taken,
    and derive from it what an empty setting leaves to it: ``auth.issuer`` and
    the email verification link. So a gateway moved to another port, or behind
    another name, needs one setting (AGORA_PUBLIC_URL) and the issuer, the
    first-party redirect URIs and the mailed links all follow.

    An empty public_url is an explicit ``auth.issuer`` if there is one (the
    issuer *is* the gateway's public address), else what ``agora gateway``
    binds, ``http://<gateway.host>:<gateway.port>`` (a wildcard bind is
    reached on 127.0.0.1). Production must name it: a bind address is not
    where clients reach a deployed gateway."""
    inputs = _substitute(project(merged, _PUBLIC_URL_INPUTS), "", env)
    gateway = inputs.get("gateway", {})
    issuer = str(inputs.get("auth", {}).get("issuer") or "").strip()
    url = str(gateway.get("public_url") or "").strip() or issuer
    if not url:
        if environment == "production":
            return merged  # load_config names what is missing, if the process reads it
        host = str(gateway.get("host", "127.0.0.1"))
        host = "127.0.0.1" if host in _WILDCARD_HOSTS else host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        url = f"http://{host}:{gateway.get('port', 8080)}"
    if not re.match(_PUBLIC_URL["pattern"], url):
        # Said here, before anything derived from it fails its own check.
        raise ConfigError(
            "gateway.public_url",
            f"{url!r} is not a scheme, host and port (like https://shop.example.com): "
            "no path, query or fragment",
        )
    url = url.rstrip("/")
    filled = {"gateway": {"public_url": url}}
    if not issuer and "auth" in merged:
        filled["auth"] = {"issuer": url}
    notifications = inputs.get("services", {}).get("notifications")
    if isinstance(notifications, dict) and not notifications.get("verify_email_url"):
        link = f"{url}/v1/users/verify-email"
        filled["services"] = {"notifications": {"verify_email_url": link}}
    return deep_merge(merged, filled)


def public_url(config):
    """The gateway's public base URL, without a trailing slash: what browsers and
    clients reach the platform at (gateway.public_url, filled in by load_config).
    A process that is not given the gateway's settings reads what was derived
    from it instead (auth.issuer, the verification link)."""
    return config["gateway"]["public_url"]


def load_config(env=None, config_dir=None, process=None):
    """Return the validated configuration as a plain dict: the whole tree, or with
    ``process`` only what that process reads (:func:`settings_paths`)."""
    env = dict(os.environ if env is None else env)
    config_dir = Path(config_dir or CONFIG_DIR)
    environment = env.get("AGORA_ENV", "development")
    layers = [config_dir / "agora.yaml"]
    overlay = config_dir / "environments" / f"{environment}.yaml"
    if not overlay.exists():
        raise ConfigError("environment", f"no overlay for AGORA_ENV={environment!r} ({overlay})")
    layers.append(overlay)
    if env.get("AGORA_CONFIG"):
        layers.append(Path(env["AGORA_CONFIG"]))
    merged = {}
    for layer in layers:
        merged = deep_merge(merged, _read_yaml(layer))
    merged = _fill_public_url(merged, env, environment)
    if process is None:
        config, schema = _substitute(merged, "", env), None
    else:
        paths = settings_paths(process)
        config, schema = (
            _substitute(project(merged, paths), "", env),
            _project_schema(SCHEMA, paths),
        )
    _require_public_url(config)
    return validate(config, schema)


def _require_public_url(config):
    """Production gives no default public address: a process that reads it, or
    what is derived from it, stops with one line naming the variable."""
    derived = (
        config.get("gateway", {}).get("public_url", "x"),
        config.get("auth", {}).get("issuer", "x"),
        config.get("services", {}).get("notifications", {}).get("verify_email_url", "x"),
    )
    if not all(derived):
        raise ConfigError(
            "gateway.public_url",
            "is empty: set AGORA_PUBLIC_URL (or AGORA_AUTH_ISSUER) to the address "
            "clients reach the gateway at (production has no default)",
        )


def amqp_vhost(config):
    """The RabbitMQ vhost named by ``amqp.uri`` (``/`` when the path is empty)."""
    return unquote(urlsplit(config["amqp"]["uri"]).path[1:]) or "/"


def broker_user(config, principal):
    """The RabbitMQ user name of one principal: ``agora-catalog``, ``agora-integration``."""
    return f"{config['amqp']['user_prefix']}{principal}"


def amqp_uri(config, principal=None):
    """The AMQP URI ``principal`` (a service, ``gateway`` or ``integration``)
    connects with: ``amqp.uri``'s host and vhost, its own user and password.

    Any other name (``None``, a test's service, ``agora-cli``) gets ``amqp.uri``
    as it is: the operator's account."""
    uri = config["amqp"]["uri"]
    if principal not in BROKER_PRINCIPALS:
        return uri
    password = config["amqp"]["passwords"][principal]
    if not password:
        raise ConfigError(f"amqp.passwords.{principal}", "is empty (set it in the environment)")
    parts = urlsplit(uri)
    address = parts.netloc.rpartition("@")[2]
    credentials = f"{quote(broker_user(config, principal), safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{address}"))


def database_name(config, service):
    """A service's database, and its own PostgreSQL role: ``<database_prefix><service>``."""
    return f"{config['postgres']['database_prefix']}{service}"


def database_url(config, service):
    """The SQLAlchemy URL of one service's own database, as its own role (the
    password from ``services.<service>.database_password``, none if unset)."""
    name = database_name(config, service)
    password = (config.get("services") or {}).get(service, {}).get("database_password")
    credentials = quote(name, safe="")
    if password:
        credentials += ":" + quote(password, safe="")
    scheme, server = config["postgres"]["url"].rstrip("/").split("://", 1)
    return f"{scheme}://{credentials}@{server}/{name}"


def nameko_config(config, service):
    """The dict a Nameko container for ``service`` runs with: its own settings
    only, and of the broker settings only its own URI (its user and password)."""
    settings = settings_for(config, service)
    own = settings.get("services", {}).get(service, {})
    uri = amqp_uri(config, service)
    settings["amqp"] = {"uri": uri}
    nameko = {
        "AMQP_URI": uri,
        "max_workers": own.get("max_workers", 10),
        "SERIALIZER": "json",
        "AGORA": settings,
    }
    if "postgres" in settings:
        nameko["DB_URIS"] = {f"{service}:Base": database_url(settings, service)}
    return nameko
