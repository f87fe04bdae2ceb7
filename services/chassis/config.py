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
from urllib.parse import unquote, urlsplit

import jsonschema
import yaml

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


_NUMBER = {"type": "number", "exclusiveMinimum": 0}
_POSITIVE_INT = {"type": "integer", "minimum": 1}
_STRING = {"type": "string", "minLength": 1}


_RATE_LIMIT = {
    "type": "string",
    "pattern": r"^\s*\d+\s*(/|per)\s*\d*\s*[a-z]+(\s*;\s*\d+\s*(/|per)\s*\d*\s*[a-z]+)*\s*$",
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
    }
)

SCHEMA = _section(
    {
        "environment": {"enum": ["development", "test", "production"]},
        "amqp": _section({"uri": {"type": "string", "pattern": "^amqps?://"}}),
        "postgres": _section(
            {
                "url": {"type": "string", "pattern": "^postgresql(\\+psycopg2)?://"},
                "database_prefix": {"type": "string", "pattern": "^[a-z_][a-z0-9_]*$"},
                "pool_size": _POSITIVE_INT,
                "connect_timeout": _NUMBER,
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
                "zipkin_url": {"type": "string", "pattern": "^https?://"},
                "sample_rate": {"type": "number", "minimum": 0, "maximum": 1},
                "batch_size": _POSITIVE_INT,
                "flush_interval": _NUMBER,
                "queue_size": _POSITIVE_INT,
                "send_timeout": _NUMBER,
            }
        ),
        "logging": _section({"level": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]}}),
        "gateway": _section(
            {
                "host": _STRING,
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "workers": _POSITIVE_INT,
                "threads": _POSITIVE_INT,
                "rpc": _section(
                    {
                        "pool_size": _POSITIVE_INT,
                        "timeout": _NUMBER,
                        "acquire_timeout": _NUMBER,
                        "breaker": _section({"fail_max": _POSITIVE_INT, "reset_timeout": _NUMBER}),
                    }
                ),
                "readiness_timeout": _NUMBER,
                "max_body_bytes": _POSITIVE_INT,
                "trusted_proxies": {"type": "array", "items": _STRING},
                "rate_limits": _section(
                    {
                        "enabled": {"type": "boolean"},
                        "strategy": {"enum": ["moving-window", "fixed-window", "sliding-window"]},
                        "groups": _section(
                            {
                                group: _RATE_LIMIT
                                for group in (
                                    "read",
                                    "write",
                                    "oauth",
                                    "token_per_client",
                                    "token_per_ip",
                                )
                            }
                        ),
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
                "clock_skew": {"type": "integer", "minimum": 0, "maximum": 300},
                "jwks_cache_ttl": _POSITIVE_INT,
                "jwks_min_refresh_interval": _NUMBER,
            }
        ),
        "events": _section(
            {
                "relay_interval": _NUMBER,
                "relay_batch": _POSITIVE_INT,
                "outbox_retention": _POSITIVE_INT,
                "inbox_retention": _POSITIVE_INT,
                "max_attempts": _POSITIVE_INT,
                "backoff_base": _NUMBER,
                "backoff_max": _NUMBER,
                "validate": {"type": "boolean"},
            }
        ),
        "services": _section(
            {
                "users": _section(
                    {
                        "max_workers": _POSITIVE_INT,
                        "password_hash": _ARGON2,
                    }
                ),
                "auth": _section(
                    {
                        "max_workers": _POSITIVE_INT,
                        "key_passphrase": {"type": "string", "minLength": 16},
                        "key_size": {"enum": [2048, 3072, 4096]},
                        "client_secret_hash": _ARGON2,
                    }
                ),
                "catalog": _section(
                    {
                        "max_workers": _POSITIVE_INT,
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
                        "max_workers": _POSITIVE_INT,
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
                        "max_workers": _POSITIVE_INT,
                        "saga_timeout": _POSITIVE_INT,
                        "cancellation_window": {"type": "integer", "minimum": 0},
                        "sweep_interval": _NUMBER,
                        "max_lines": _POSITIVE_INT,
                        "max_quantity": _POSITIVE_INT,
                    }
                ),
                "billing": _section(
                    {
                        "max_workers": _POSITIVE_INT,
                        "provider": {"enum": ["simulated"]},
                        "provider_timeout": _NUMBER,
                        "charge_attempts": _POSITIVE_INT,
                        "charge_backoff": {"type": "number", "minimum": 0},
                    }
                ),
                "notifications": _section(
                    {
                        "max_workers": _POSITIVE_INT,
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


def validate(config):
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        key, message = _error_key(errors[0])
        raise ConfigError(key, message)
    return config


def load_config(env=None, config_dir=None):
    """Return the validated configuration as a plain dict."""
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
    return validate(_substitute(merged, "", env))


def amqp_vhost(config):
    """The RabbitMQ vhost named by ``amqp.uri`` (``/`` when the path is empty)."""
    return unquote(urlsplit(config["amqp"]["uri"]).path[1:]) or "/"


def database_url(config, service):
    """The SQLAlchemy URL of one service's own database."""
    pg = config["postgres"]
    return f"{pg['url'].rstrip('/')}/{pg['database_prefix']}{service}"


def nameko_config(config, service):
    """The dict a Nameko container for ``service`` runs with."""
    settings = config["services"].get(service, {})
    return {
        "AMQP_URI": config["amqp"]["uri"],
        "max_workers": settings.get("max_workers", 10),
        "DB_URIS": {f"{service}:Base": database_url(config, service)},
        "SERIALIZER": "json",
        "AGORA": config,
    }
