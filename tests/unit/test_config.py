import pytest

from services.chassis.config import (
    ConfigError,
    amqp_uri,
    deep_merge,
    load_config,
    nameko_config,
)

pytestmark = pytest.mark.unit


def base_env(**extra):
    return {"AGORA_ENV": "development", **extra}


def test_defaults_load_and_validate():
    config = load_config(base_env())
    assert config["gateway"]["port"] == 8080
    assert config["amqp"]["uri"] == "amqp://guest:guest@127.0.0.1:5672/agora"
    assert config["tracing"]["zipkin_url"] == "http://127.0.0.1:9411/api/v2/spans"


def test_environment_variables_substitute_with_yaml_typing():
    config = load_config(base_env(AGORA_GATEWAY_PORT="9090", AGORA_AMQP_VHOST="other"))
    assert config["gateway"]["port"] == 9090
    assert config["amqp"]["uri"].endswith("/other")


def test_environment_overlay_applies():
    config = load_config({"AGORA_ENV": "test"})
    assert config["services"]["users"]["password_hash"]["memory_cost"] == 8192
    assert config["gateway"]["rpc"]["breaker"]["fail_max"] == 3


def test_invalid_value_names_the_key_in_one_line():
    with pytest.raises(ConfigError) as excinfo:
        load_config(base_env(AGORA_GATEWAY_PORT="not-a-port"))
    message = str(excinfo.value)
    assert message.startswith("config error: gateway.port:")
    assert "\n" not in message


def test_missing_required_variable_names_the_key():
    with pytest.raises(ConfigError) as excinfo:
        load_config({"AGORA_ENV": "production"})
    assert excinfo.value.key == "amqp.uri"
    assert "AGORA_AMQP_URI" in str(excinfo.value)


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigError) as excinfo:
        load_config({"AGORA_ENV": "staging"})
    assert excinfo.value.key == "environment"


def test_missing_key_in_extra_overlay_is_named(tmp_path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("tracing:\n  sample_rate: 2\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(base_env(AGORA_CONFIG=str(overlay)))
    assert excinfo.value.key == "tracing.sample_rate"


def test_deep_merge_keeps_siblings():
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_nameko_config_points_each_service_at_its_own_database_as_its_own_role():
    config = load_config(base_env(AGORA_USERS_DB_PASSWORD="s3cret/p@ss"))
    users = nameko_config(config, "users")
    assert users["DB_URIS"] == {
        "users:Base": "postgresql+psycopg2://agora_users:s3cret%2Fp%40ss@127.0.0.1:5432/agora_users"
    }
    # Its own broker user, not the operator's (issue 9, item 1).
    assert users["AMQP_URI"] == "amqp://agora-users:agora-users-broker-dev@127.0.0.1:5672/agora"
    assert "passwords" not in users["AGORA"]["amqp"]


def test_each_principal_connects_as_its_own_broker_user():
    config = load_config(
        base_env(
            AGORA_BROKER_USER_PREFIX="x-",
            AGORA_INTEGRATION_BROKER_PASSWORD="p@ss/w:rd",
            AGORA_AMQP_VHOST="v",
        )
    )
    assert (
        amqp_uri(config, "integration") == "amqp://x-integration:p%40ss%2Fw%3Ard@127.0.0.1:5672/v"
    )
    assert amqp_uri(config, "gateway").startswith("amqp://x-gateway:agora-gateway-broker-dev@")
    # Operator tools and test services use amqp.uri as it is.
    assert amqp_uri(config, "agora-cli") == amqp_uri(config) == config["amqp"]["uri"]


def test_production_needs_only_the_own_broker_password():
    env = {
        "AGORA_ENV": "production",
        "AGORA_AMQP_URI": "amqp://rabbitmq:5672/agora",
        "AGORA_PG_URL": "postgresql://db",
        "AGORA_REDIS_URL": "redis://redis",
        "AGORA_AUTH_ISSUER": "https://agora.example",
        "AGORA_AUTH_KEY_PASSPHRASE": "x" * 20,
        "AGORA_BROKER_CATALOG_PASSWORD": "catalog-secret",
    }
    env["AGORA_CATALOG_DB_PASSWORD"] = "catalog-db-secret"
    env["AGORA_CATALOG_CURSOR_KEY"] = "catalog-cursor-secret"
    config = load_config(env, process="catalog")
    assert amqp_uri(config, "catalog") == "amqp://agora-catalog:catalog-secret@rabbitmq:5672/agora"
    assert nameko_config(config, "catalog")["AGORA"]["amqp"] == {
        "uri": "amqp://agora-catalog:catalog-secret@rabbitmq:5672/agora"
    }
    # Another principal's password is not even in this process's view.
    assert set(config["amqp"]["passwords"]) == {"catalog"}
    with pytest.raises(ConfigError) as excinfo:
        amqp_uri(
            load_config({**env, "AGORA_BROKER_CATALOG_PASSWORD": ""}, process="catalog"), "catalog"
        )
    assert excinfo.value.key == "amqp.passwords.catalog"


SERVICES = ("users", "auth", "catalog", "inventory", "orders", "billing", "notifications")
CURSOR_SIGNERS = ("catalog", "orders", "notifications")
# A value only one process may see, for each secret in the tree.
SECRET_ENV = {
    "AGORA_AUTH_KEY_PASSPHRASE": "secret-auth-key-passphrase",
    "AGORA_SMTP_PASSWORD": "secret-smtp-password",
    "AGORA_SMS_TOKEN": "secret-sms-token",
    "AGORA_PG_PASSWORD": "secret-postgres-admin-password",
    **{f"AGORA_{s.upper()}_DB_PASSWORD": f"secret-{s}-db-password" for s in SERVICES},
    **{f"AGORA_{s.upper()}_CURSOR_KEY": f"secret-{s}-cursor-key" for s in CURSOR_SIGNERS},
    **{f"AGORA_BROKER_{s.upper()}_PASSWORD": f"secret-{s}-broker" for s in (*SERVICES, "gateway")},
    "AGORA_INTEGRATION_BROKER_PASSWORD": "secret-integration-broker",
    "AGORA_S3_SECRET_ACCESS_KEY": "secret-s3-secret-access-key",
}
OWNER = {
    "AGORA_AUTH_KEY_PASSPHRASE": "auth",
    "AGORA_SMTP_PASSWORD": "notifications",
    "AGORA_SMS_TOKEN": "notifications",
    "AGORA_PG_PASSWORD": None,  # the migrations' admin role: no running process
    **{f"AGORA_{s.upper()}_DB_PASSWORD": s for s in SERVICES},
    **{f"AGORA_{s.upper()}_CURSOR_KEY": s for s in CURSOR_SIGNERS},
    **{f"AGORA_BROKER_{s.upper()}_PASSWORD": s for s in (*SERVICES, "gateway")},
    "AGORA_INTEGRATION_BROKER_PASSWORD": None,  # outside consumers, not a platform process
    # The object store's credentials: the gateway stores and serves images.
    "AGORA_S3_SECRET_ACCESS_KEY": "gateway",
}


@pytest.mark.parametrize("process", (*SERVICES, "gateway", "agora-cli"))
def test_each_process_is_given_only_its_own_secrets(process):
    config = load_config(base_env(**SECRET_ENV))
    given = repr(nameko_config(config, process))
    for name, value in SECRET_ENV.items():
        if OWNER[name] == process:
            assert value in given, name
        else:
            assert value not in given, f"{process} is given {name}"


def test_a_service_sees_its_own_section_and_the_shared_ones_only():
    settings = nameko_config(load_config(base_env()), "catalog")["AGORA"]
    assert set(settings["services"]) == {"catalog"}
    assert "admin" not in settings["postgres"]
    assert "demo" not in settings and "auth" not in settings
    # Of the gateway's settings, only what image URLs are built from.
    assert set(settings.get("gateway", {})) <= {"public_url", "host", "port"}
    assert settings["media"] == {"storage": "filesystem", "s3": {"public_url": ""}}
    assert settings["rpc_clients"]["default"]["timeout"] > 0
    auth = nameko_config(load_config(base_env()), "auth")["AGORA"]
    assert set(auth["services"]) == {"auth"} and auth["auth"]["audience"] == "agora-api"


PRODUCTION = {
    "AGORA_ENV": "production",
    "AGORA_AMQP_URI": "amqp://gateway:pw@rabbit:5672/agora",
    "AGORA_REDIS_URL": "redis://redis:6379/0",
    "AGORA_PG_URL": "postgresql+psycopg2://postgres:5432",
    "AGORA_AUTH_ISSUER": "https://api.example.com",
}


def test_a_process_needs_only_its_own_secrets_in_its_environment():
    # No service's secret is set: the gateway and catalog still start, and each
    # service asks for its own (and only its own) missing secret.
    assert load_config(PRODUCTION, process="gateway")["auth"]["issuer"] == "https://api.example.com"
    catalog = load_config(
        {**PRODUCTION, "AGORA_CATALOG_DB_PASSWORD": "pw", "AGORA_CATALOG_CURSOR_KEY": "k" * 32},
        process="catalog",
    )
    assert catalog["services"]["catalog"]["database_password"] == "pw"
    with pytest.raises(ConfigError) as excinfo:
        load_config(PRODUCTION, process="auth")
    assert excinfo.value.key == "services.auth.database_password"
    with pytest.raises(ConfigError) as excinfo:
        load_config({**PRODUCTION, "AGORA_AUTH_DB_PASSWORD": "pw"}, process="auth")
    assert excinfo.value.key == "services.auth.key_passphrase"
    # The whole tree (agora migrate) needs the admin role too.
    with pytest.raises(ConfigError) as excinfo:
        load_config(PRODUCTION)
    assert excinfo.value.key.startswith("postgres.admin")


def test_a_process_view_is_still_validated():
    with pytest.raises(ConfigError) as excinfo:
        load_config(base_env(AGORA_GATEWAY_PORT="not-a-port"), process="gateway")
    assert excinfo.value.key == "gateway.port"
    with pytest.raises(ConfigError) as excinfo:
        load_config(base_env(AGORA_MAX_CONCURRENT_HASHES="0"), process="users")
    assert excinfo.value.key == "services.users.password_hash.max_concurrent"


def test_postgres_url_carries_no_credentials():
    with pytest.raises(ConfigError) as excinfo:
        load_config(base_env(AGORA_PG_HOST="admin:pw@db"))
    assert excinfo.value.key == "postgres.url"


def test_migrations_need_the_admin_role_and_the_service_roles_only():
    env = {
        **PRODUCTION,
        "AGORA_PG_ADMIN_USER": "admin",
        "AGORA_PG_ADMIN_PASSWORD": "admin-pw",
        **{f"AGORA_{s.upper()}_DB_PASSWORD": f"{s}-pw" for s in SERVICES},
    }
    # No signing-key passphrase, SMTP or cursor key in the migration job's environment.
    config = load_config(env, process="migrate")
    assert config["postgres"]["admin"] == {"user": "admin", "password": "admin-pw"}
    assert {s: v for s, v in config["services"].items()} == {
        s: {"database_password": f"{s}-pw"} for s in SERVICES
    }


NOTIFICATIONS_PRODUCTION = {
    **PRODUCTION,
    "AGORA_NOTIFICATIONS_DB_PASSWORD": "pw",
    "AGORA_NOTIFICATIONS_CURSOR_KEY": "k" * 32,
}


def test_production_requires_encrypted_smtp():
    config = load_config(NOTIFICATIONS_PRODUCTION, process="notifications")
    assert config["services"]["notifications"]["smtp"]["security"] == "starttls"
    for security in ("starttls", "tls"):
        env = {**NOTIFICATIONS_PRODUCTION, "AGORA_SMTP_SECURITY": security}
        settings = load_config(env, process="notifications")["services"]["notifications"]
        assert settings["smtp"]["security"] == security
    with pytest.raises(ConfigError) as excinfo:
        load_config(
            {**NOTIFICATIONS_PRODUCTION, "AGORA_SMTP_SECURITY": "none"}, process="notifications"
        )
    message = str(excinfo.value)
    assert excinfo.value.key == "services.notifications.smtp.security"
    assert "starttls or tls" in message and "\n" not in message


def test_development_may_mail_in_clear_text_to_a_local_server():
    config = load_config(base_env(AGORA_SMTP_SECURITY="none"))
    assert config["services"]["notifications"]["smtp"]["security"] == "none"


def test_verification_links_point_at_the_public_gateway():
    config = load_config(NOTIFICATIONS_PRODUCTION, process="notifications")
    url = config["services"]["notifications"]["verify_email_url"]
    assert url == "https://api.example.com/v1/users/verify-email"


def test_the_public_url_is_what_make_run_binds_unless_set():
    config = load_config(base_env())
    assert config["gateway"]["public_url"] == "http://127.0.0.1:8080"
    assert config["auth"]["issuer"] == "http://127.0.0.1:8080"
    moved = load_config(base_env(AGORA_GATEWAY_PORT="8095", AGORA_GATEWAY_HOST="0.0.0.0"))
    # A wildcard bind is reached on the loopback address.
    assert moved["gateway"]["public_url"] == "http://127.0.0.1:8095"
    assert moved["services"]["notifications"]["verify_email_url"] == (
        "http://127.0.0.1:8095/v1/users/verify-email"
    )
    with pytest.raises(ConfigError) as excinfo:
        load_config(base_env(AGORA_PUBLIC_URL="https://shop.example/path?x=1"))
    assert excinfo.value.key == "gateway.public_url"
    with pytest.raises(ConfigError) as excinfo:
        load_config(base_env(AGORA_PUBLIC_URL="https://shop.example/path"))
    assert excinfo.value.key == "gateway.public_url"


def test_production_names_the_public_url_or_says_it_is_missing():
    env = {k: v for k, v in PRODUCTION.items() if k != "AGORA_AUTH_ISSUER"}
    with pytest.raises(ConfigError) as excinfo:
        load_config(env, process="gateway")
    assert excinfo.value.key == "gateway.public_url"
    assert "AGORA_PUBLIC_URL" in str(excinfo.value) and "\n" not in str(excinfo.value)
    # A process that writes no link and issues nothing does not need it.
    catalog = {**env, "AGORA_CATALOG_DB_PASSWORD": "pw", "AGORA_CATALOG_CURSOR_KEY": "k" * 32}
    assert "gateway" not in load_config(catalog, process="catalog")
    named = load_config({**env, "AGORA_PUBLIC_URL": "https://shop.example.com"}, process="gateway")
    assert named["gateway"]["public_url"] == "https://shop.example.com"
    assert named["auth"]["issuer"] == "https://shop.example.com"
    assert named["gateway"]["cors"]["origins"] == []
