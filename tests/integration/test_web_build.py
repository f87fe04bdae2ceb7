"""`make run` builds the storefront before it starts the gateway, and says plainly
when it cannot (no npm, a failing build) while the API starts anyway.

Real npm on a tiny project of the test's own (a lockfile with no dependencies,
so ``npm ci`` needs no network, and a build script in plain Node), in place of
web/: agora.web's paths point there for the test."""

import os

import pytest

from agora import web
from agora.cli import build_web_or_explain

pytestmark = pytest.mark.integration

PACKAGE = """{"name": "agora-web-test", "version": "0.0.0", "private": true,
 "scripts": {"build": "node build.mjs"}}"""
LOCK = """{"name": "agora-web-test", "version": "0.0.0", "lockfileVersion": 3, "requires": true,
 "packages": {"": {"name": "agora-web-test", "version": "0.0.0"}}}"""
BUILD = """import { mkdirSync, writeFileSync } from "node:fs";
mkdirSync("dist/assets", { recursive: true });
writeFileSync("dist/index.html", "<!doctype html><title>Agora</title>");
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "web"
    (root / "src").mkdir(parents=True)
    (root / "package.json").write_text(PACKAGE)
    (root / "package-lock.json").write_text(LOCK)
    (root / "build.mjs").write_text(BUILD)
    (root / "src" / "main.ts").write_text("export const shop = 'agora';\n")
    for name, path in {
        "WEB": root,
        "DIST": root / "dist",
        "NODE_MODULES": root / "node_modules",
        "PACKAGES_STAMP": root / "node_modules" / ".agora-lock-hash",
        "BUILD_STAMP": root / "dist" / ".agora-build-hash",
        "LOCK": root / ".agora-build.lock",
    }.items():
        monkeypatch.setattr(web, name, path)
    return root


def test_make_run_builds_the_storefront_once_then_finds_it_up_to_date(project, capsys):
    assert build_web_or_explain() is True
    out = capsys.readouterr().out
    assert "building the storefront" in out and "storefront built" in out
    assert (project / "dist" / "index.html").is_file()
    assert build_web_or_explain() is True
    assert "storefront up to date" in capsys.readouterr().out
    # A changed source makes it stale: built again.
    (project / "src" / "main.ts").write_text("export const shop = 'stoa';\n")
    assert build_web_or_explain() is True
    assert "storefront built" in capsys.readouterr().out


def test_a_failing_build_is_said_plainly_and_the_platform_goes_on(project, capsys):
    (project / "build.mjs").write_text(
        "console.error('src/App.tsx(3,1): error TS1005'); process.exit(2);\n"
    )
    assert build_web_or_explain() is False
    err = capsys.readouterr().err
    assert "the storefront could not be built" in err
    assert "503 web_not_built" in err and "the API starts anyway" in err
    assert "npm run build failed (exit 2)" in err
    assert "error TS1005" in err  # the build's own words
    assert "Traceback" not in err


def test_without_npm_make_run_says_what_to_install(project, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(project))  # no npm, no node here
    assert "npm" not in os.listdir(project)
    assert build_web_or_explain() is False
    err = capsys.readouterr().err
    assert "npm is not on the PATH" in err and "Node.js 20.19" in err
    assert "503 web_not_built" in err


def test_without_a_web_project_there_is_nothing_to_build(project, capsys):
    (project / "package-lock.json").unlink()
    assert build_web_or_explain() is False
    assert "no package-lock.json" in capsys.readouterr().err
