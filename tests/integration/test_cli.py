"""`agora check` (the first step of `make run`) against real and missing backends."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def check(**env):
    return subprocess.run(
        [sys.executable, "-m", "agora", "check"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_all_backends_reachable(rabbit_vhost):
    result = check()
    assert result.returncode == 0, result.stderr
    assert "reachable" in result.stdout


def test_each_unreachable_backend_is_named_with_its_address_and_start_command():
    result = check(AGORA_AMQP_PORT="1", AGORA_PG_PORT="2", AGORA_REDIS_PORT="3")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("RabbitMQ is not reachable at 127.0.0.1:1 (")
    assert lines[1] == "  Start it with: rabbitmq-server -detached"
    assert lines[2].startswith("PostgreSQL is not reachable at 127.0.0.1:2 (")
    assert lines[3].startswith("  Start it with: pg_ctlcluster")
    assert lines[4].startswith("Redis is not reachable at 127.0.0.1:3 (")
    assert lines[5].startswith("  Start it with: redis-server")
    assert len(lines) == 6


def test_only_the_missing_backend_is_reported():
    result = check(AGORA_REDIS_PORT="3")
    assert result.returncode == 1
    assert result.stderr.startswith("Redis is not reachable at 127.0.0.1:3")
    assert "RabbitMQ" not in result.stderr and "PostgreSQL" not in result.stderr


def test_the_shell_has_the_dead_letter_helpers(rabbit_vhost):
    """`make shell` (`agora shell`): the helpers are there and reach the broker."""
    result = subprocess.run(
        [sys.executable, "-m", "agora", "shell"],
        input='print("letters:", dead_letters("billing"), callable(replay_dead_letters))\n',
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "letters: [] True" in result.stdout, result.stdout + result.stderr
