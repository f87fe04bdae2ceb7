"""Local state files: private, created afresh, never through a planted symlink;
a rendered service config holds that service's settings only."""

import os
import stat

import pytest
import yaml

from services.chassis.config import load_config
from services.chassis.files import UnsafeStateFolder, private_folder, write_private

pytestmark = pytest.mark.unit


def test_a_state_file_is_private(tmp_path):
    path = write_private(tmp_path / "users.yaml", "a: 1\n")
    assert path.read_text() == "a: 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_symlink_planted_at_the_target_is_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    target = tmp_path / "run" / "users.yaml"
    target.parent.mkdir()
    target.symlink_to(victim)

    write_private(target, "secret: yes\n")

    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not target.is_symlink()
    assert target.read_text() == "secret: yes\n"
    assert stat.S_IMODE(target.lstat().st_mode) == 0o600


def test_a_dangling_symlink_is_not_followed_to_create_a_file(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "created-by-attacker-link"
    elsewhere.parent.mkdir()
    target = tmp_path / "gateway-logging.json"
    target.symlink_to(elsewhere)
    write_private(target, "{}")
    assert not elsewhere.exists()
    assert target.read_text() == "{}" and not target.is_symlink()


def test_an_existing_file_is_replaced_not_rewritten_in_place(tmp_path):
    target = tmp_path / "users.yaml"
    target.write_text("old\n")
    os.chmod(target, 0o644)
    other_name = tmp_path / "hard-link"
    os.link(target, other_name)  # someone else's name for the old file
    write_private(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert other_name.read_text() == "old\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    with pytest.raises(TypeError):
        write_private(tmp_path / "x.yaml", b"not text")
    assert list(tmp_path.iterdir()) == []


def test_agora_service_renders_only_that_service_settings(tmp_path, monkeypatch):
    from agora import cli

    secrets = {
        "AGORA_AUTH_KEY_PASSPHRASE": "secret-auth-key-passphrase",
        "AGORA_SMTP_PASSWORD": "secret-smtp-password",
        "AGORA_USERS_DB_PASSWORD": "secret-users-db-password",
        "AGORA_PG_PASSWORD": "secret-postgres-admin-password",
    }
    monkeypatch.setenv("AGORA_STATE_DIR", str(tmp_path))
    # Even from the whole tree (as `agora run` holds it), only catalog's part is written.
    config = load_config({"AGORA_ENV": "development", **secrets})

    path = cli.render_nameko_config(config, "catalog")

    text = path.read_text()
    for value in secrets.values():
        assert value not in text
    rendered = yaml.safe_load(text)
    assert set(rendered["AGORA"]["services"]) == {"catalog"}
    assert "key_passphrase" not in text and "smtp" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_state_folder_planted_as_a_symlink_is_refused(tmp_path):
    readable_by_others = tmp_path / "shared"
    readable_by_others.mkdir(mode=0o755)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "agora").symlink_to(readable_by_others, target_is_directory=True)
    with pytest.raises(UnsafeStateFolder):
        private_folder(tmp_path / "run" / "agora")
    assert list(readable_by_others.iterdir()) == []


def test_an_existing_state_folder_is_made_private(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    assert private_folder(folder) == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
