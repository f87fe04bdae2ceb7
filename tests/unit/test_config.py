import pytest

from services.chassis.config import ConfigError, deep_merge, load_config, nameko_config


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
    assert users["AMQP_URI"] == config["amqp"]["uri"]


PRODUCTION = {
    "AGORA_ENV": "production",
    "AGORA_AMQP_URI": "amqps://agora:secret@mq.example.com/agora",
    "AGORA_PG_URL": "postgresql://agora:secret@db.example.com",
    "AGORA_REDIS_URL": "rediss://cache.example.com/0",
    "AGORA_AUTH_ISSUER": "https://api.example.com",
    "AGORA_AUTH_KEY_PASSPHRASE": "a-long-production-passphrase",
}


def test_production_requires_encrypted_smtp():
    config = load_config(PRODUCTION)
    assert config["services"]["notifications"]["smtp"]["security"] == "starttls"
    for security in ("starttls", "tls"):
        env = {**PRODUCTION, "AGORA_SMTP_SECURITY": security}
        assert load_config(env)["services"]["notifications"]["smtp"]["security"] == security
    with pytest.raises(ConfigError) as excinfo:
        load_config({**PRODUCTION, "AGORA_SMTP_SECURITY": "none"})
    message = str(excinfo.value)
    assert excinfo.value.key == "services.notifications.smtp.security"
    assert "starttls or tls" in message and "\n" not in message


def test_development_may_mail_in_clear_text_to_a_local_server():
    config = load_config(base_env(AGORA_SMTP_SECURITY="none"))
    assert config["services"]["notifications"]["smtp"]["security"] == "none"


def test_verification_links_point_at_the_public_gateway():
    config = load_config(PRODUCTION)
    url = config["services"]["notifications"]["verify_email_url"]
    assert url == "https://api.example.com/v1/users/verify-email"
