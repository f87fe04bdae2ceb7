"""`agora reset` (make clean) against a throwaway environment of its own: its
vhost and broker users, databases and roles, Redis keys and state folder are
created here, then removed by the command, and nothing of anyone else's."""

import os
import subprocess
import sys
import uuid

import pytest

from agora.infra import _rabbitmqctl, ensure_vhost, vhost_exists
from services.chassis.config import BROKER_PRINCIPALS, broker_user, database_name, load_config
from services.chassis.migrations import ensure_database, maintenance_connection
from services.chassis.redis import make_client

pytestmark = pytest.mark.integration

# Two services' databases are enough to see them dropped (creating all seven
# would only cost time); reset drops every service's, absent or not.
SOME_SERVICES = ("catalog", "orders")


@pytest.fixture
def throwaway(tmp_path):
    """The environment of one `agora run` of its own, and the env that names it."""
    tag = uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "AGORA_AMQP_VHOST": f"{os.environ['AGORA_AMQP_VHOST']}-reset-{tag}",
        "AGORA_BROKER_USER_PREFIX": f"{os.environ['AGORA_BROKER_USER_PREFIX']}r{tag}-",
        "AGORA_DB_PREFIX": f"{os.environ['AGORA_DB_PREFIX']}r{tag}_",
        "AGORA_REDIS_PREFIX": f"{os.environ['AGORA_REDIS_PREFIX']}reset-{tag}:",
        "AGORA_STATE_DIR": str(tmp_path / "state"),
    }
    config = load_config(env)
    ensure_vhost(config)
    for service in SOME_SERVICES:
        ensure_database(config, service)
    redis = make_client(config["redis"])
    redis.set(redis.key("gateway", "something"), "1")
    redis.set(redis.key("catalog", "product", "x"), "2")
    # A neighbour whose prefix starts like ours, without the separator: kept.
    neighbour = config["redis"]["key_prefix"].rstrip(":") + "x:kept"
    redis.set(neighbour, "3")
    logs = tmp_path / "state" / "logs"
    logs.mkdir(parents=True)
    (logs / "orders.log").write_text("{}\n")
    yield config, env, redis, neighbour
    # Whatever a failed test left behind.
    subprocess.run(
        [sys.executable, "-m", "agora", "reset", "--yes"], env=env, capture_output=True, timeout=120
    )
    redis.delete(neighbour)
    redis.close()


def reset(env, *args, answer=None):
    return subprocess.run(
        [sys.executable, "-m", "agora", "reset", *args],
        input=answer,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def databases_and_roles(config):
    names = [database_name(config, service) for service in SOME_SERVICES]
    conn = maintenance_connection(config)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,))
            databases = {row[0] for row in cur.fetchall()}
            cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,))
            roles = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    return databases, roles


def broker_users(config):
    listed = set(_rabbitmqctl("list_users").split())
    return {broker_user(config, p) for p in BROKER_PRINCIPALS} & listed


def test_reset_with_yes_removes_everything_make_run_created(throwaway):
    config, env, redis, neighbour = throwaway
    assert vhost_exists(config) and broker_users(config)
    assert databases_and_roles(config) != (set(), set())

    result = reset(env, "--yes")

    assert result.returncode == 0, result.stderr
    assert not vhost_exists(config)
    assert broker_users(config) == set()
    assert databases_and_roles(config) == (set(), set())
    assert list(redis.scan_iter(match=f"{config['redis']['key_prefix']}*")) == []
    assert redis.get(neighbour) == "3"
    assert not os.path.exists(env["AGORA_STATE_DIR"])
    assert "deleted 2 Redis key(s)" in result.stdout


def test_reset_keeps_the_broker_users_another_vhost_still_uses(throwaway):
    """Broker users are named by the prefix alone: a second platform on its own
    vhost with the same prefix shares them, and a reset of the first must not
    pull them from under it."""
    config, env, _redis, _neighbour = throwaway
    other_env = {**env, "AGORA_AMQP_VHOST": env["AGORA_AMQP_VHOST"] + "-other"}
    other = load_config(other_env)
    ensure_vhost(other)
    try:
        result = reset(env, "--yes")
        assert result.returncode == 0, result.stderr
        assert not vhost_exists(config)
        assert broker_users(config) == {broker_user(config, p) for p in BROKER_PRINCIPALS}
        assert "kept broker users" in result.stdout
    finally:
        last = reset(other_env, "--yes")
    assert last.returncode == 0, last.stderr
    assert not vhost_exists(other)
    assert broker_users(config) == set()


def test_reset_asks_first_and_removes_nothing_unless_told_yes(throwaway):
    config, env, redis, _neighbour = throwaway
    result = reset(env, answer="no\n")
    assert result.returncode == 1
    assert "Type 'yes' to remove them" in result.stdout
    assert f"RabbitMQ vhost {env['AGORA_AMQP_VHOST']!r}" in result.stdout
    assert "nothing removed" in result.stderr
    assert vhost_exists(config)
    assert databases_and_roles(config)[0] == {database_name(config, s) for s in SOME_SERVICES}
    assert redis.get(redis.key("gateway", "something")) == "1"
    assert os.path.exists(env["AGORA_STATE_DIR"])

    result = reset(env, answer="yes\n")
    assert result.returncode == 0, result.stderr
    assert not vhost_exists(config)


def test_reset_keeps_the_keys_of_a_running_environment_nested_under_its_prefix(throwaway):
    """The development prefix agora: holds the test runs' agora:t<run>: keys:
    a reset must not pull them from under a run in progress."""
    config, env, redis, _neighbour = throwaway
    nested_settings = {**config["redis"], "key_prefix": config["redis"]["key_prefix"] + "t1:"}
    running = make_client(nested_settings, name="catalog")  # as a running service names itself
    try:
        running.set(running.key("catalog", "product", "y"), "4")
        result = reset(env, "--yes")
        assert result.returncode == 0, result.stderr
        assert running.get(running.key("catalog", "product", "y")) == "4"
        assert redis.get(redis.key("gateway", "something")) is None
        kept = f"kept the keys of running environments under {nested_settings['key_prefix']}"
        assert kept in result.stdout
    finally:
        running.delete_namespace()
        running.close()


def test_reset_refuses_a_state_folder_that_is_not_one():
    """Refused before anything is touched (no environment needed to see it)."""
    for folder in (os.path.expanduser("~"), "/"):
        result = reset({**os.environ, "AGORA_STATE_DIR": folder}, "--yes")
        assert result.returncode == 2
        assert "refusing to delete" in result.stderr
        assert "Traceback" not in result.stderr
