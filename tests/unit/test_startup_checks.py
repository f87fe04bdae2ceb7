"""What a person sees when a process cannot start: one clear line, no traceback."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def run(code_or_args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, *code_or_args], capture_output=True, text=True, env=env, timeout=60
    )


def test_a_bad_setting_stops_the_command_with_one_line_naming_the_key():
    result = run(["-m", "agora", "check"], {"AGORA_GATEWAY_PORT": "eighty"})
    assert result.returncode == 2
    assert result.stderr.strip() == "config error: gateway.port: 'eighty' is not of type 'integer'"
    assert "Traceback" not in result.stderr


def test_an_unknown_environment_is_one_line():
    result = run(["-m", "agora", "check"], {"AGORA_ENV": "staging"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("config error: environment: no overlay")


def test_unpatched_psycopg2_is_refused_loudly():
    # A service started without eventlet's monkey patch would block on every query.
    code = "from services.chassis.db import assert_green_psycopg; assert_green_psycopg()"
    result = run(["-c", code])
    assert result.returncode != 0
    assert "GreenPsycopgRequired: psycopg2 is not greened" in result.stderr


def test_patched_psycopg2_is_accepted():
    code = (
        "import eventlet; eventlet.monkey_patch()\n"
        "from services.chassis.db import assert_green_psycopg; assert_green_psycopg()"
    )
    assert run(["-c", code]).returncode == 0
