import pytest
from invoke import MockContext, Result

from stackctl import Problem, bases
from tests.helpers import project_config

ONE_LINE = """deb http://deb.debian.org/debian bookworm main
deb [signed-by=/k.gpg] http://security.debian.org/debian-security bookworm-security main
deb https://packages.example.org/apt stable main
"""
DEB822 = """Types: deb
URIs: http://mirror.example.net/debian/
Suites: bookworm bookworm-updates

Types: deb
URIs: http://mirror.example.net/debian-security
Suites: bookworm-security
"""


def test_mirrors_from_one_line_sources():
    assert bases.debian_mirrors(ONE_LINE) == ("http://deb.debian.org/debian",
                                              "http://security.debian.org/debian-security")


def test_mirrors_from_deb822_sources():
    assert bases.debian_mirrors(DEB822) == ("http://mirror.example.net/debian",
                                            "http://mirror.example.net/debian-security")


def test_no_debian_mirror():
    assert bases.debian_mirrors("deb https://packages.example.org/apt stable main") == (None, None)


def test_select_all_by_default_and_refuses_unknown_names():
    c = MockContext(config=project_config())
    assert bases.select(c, []) == ["python", "node", "postgres", "nginx"]
    assert bases.select(c, ["node"]) == ["node"]
    with pytest.raises(Problem, match="unknown base nosuch: choose from python, node, postgres, nginx"):
        bases.select(c, ["nosuch"])


def test_configured_images_prefer_env_over_official(tmp_path):
    env = tmp_path / ".env"
    env.write_text("PYTHON_IMAGE=localbase/python:3.13-slim\nNODE_IMAGE=\n")
    images = bases.configured_images(MockContext(config=project_config()), env)
    assert images["python"] == ("PYTHON_IMAGE", "localbase/python:3.13-slim")
    assert images["node"] == ("NODE_IMAGE", "node:22-slim")
    assert images["postgres"] == ("POSTGRES_IMAGE", "postgres:17")


def test_rootfs_key_depends_on_sources():
    assert bases.rootfs_key("trixie", "http://a/debian", None) != bases.rootfs_key("trixie", "http://b/debian", None)
    assert bases.rootfs_key("trixie", "http://a/debian", None) == bases.rootfs_key("trixie", "http://a/debian", None)


def test_rootfs_is_not_rebuilt_when_the_image_carries_the_same_key(monkeypatch):
    monkeypatch.setattr(bases, "host_mirrors", lambda c: ("http://a/debian", None))
    key = bases.rootfs_key("trixie", "http://a/debian", None)
    inspect = f'[{{"Config": {{"Labels": {{"org.localbase.rootfs": "{key}"}}}}}}]'
    c = MockContext(config=project_config(),
                    run={"docker image inspect localbase/debian:trixie-rootfs": Result(stdout=inspect)})
    assert bases.ensure_rootfs_image(c) == "cached"
    assert c.run.call_count == 1


def test_setup_builds_only_what_cannot_be_pulled(monkeypatch, tmp_path):
    env = tmp_path / ".env"
    env.write_text("PYTHON_IMAGE=python:3.13-slim\nNODE_IMAGE=node:22-slim\n")
    present = {"node:22-slim", "postgres:17"}
    built = []
    monkeypatch.setattr(bases, "image_exists", lambda c, image: image in present)
    monkeypatch.setattr(bases, "try_pull", lambda c, image, timeout=120: image.startswith("nginxinc/"))
    monkeypatch.setattr(bases, "provide", lambda c, names: built.extend(names))
    overrides = bases.ensure_for_stack(MockContext(config=project_config()), env)
    assert built == ["python"]
    assert overrides == {"PYTHON_IMAGE": "localbase/python:3.13-slim"}
    assert "PYTHON_IMAGE=localbase/python:3.13-slim" in env.read_text()
