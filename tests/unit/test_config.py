import pytest

from services.chassis.config import (
    ConfigError,
    amqp_uri,
    deep_merge,
    load_config,
    nameko_config,
)


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


def test_nameko_config_points_each_service_at_its_own_database():
    config = load_config(base_env())
    users = nameko_config(config, "users")
    assert users["DB_URIS"] == {"users:Base": config["postgres"]["url"] + "/agora_users"}
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
    config = load_config(env)
    assert amqp_uri(config, "catalog") == "amqp://agora-catalog:catalog-secret@rabbitmq:5672/agora"
    with pytest.raises(ConfigError) as excinfo:
        amqp_uri(config, "billing")
    assert excinfo.value.key == "amqp.passwords.billing"
