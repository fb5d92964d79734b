"""`inv setup` and `inv doctor` on a clean checkout, run as a user runs them."""

import os
import socket
import subprocess
import sys

import pytest
from invoke import Context

from stackctl.copies import TreeCopy, free_port
from stackctl.envfile import assigned_keys, read_env, set_values
from tests.helpers import ROOT, assert_one_line_failure, project_config

UNREACHABLE_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


@pytest.fixture(scope="module")
def checkout():
    """A clean checkout (the working tree's tracked and unignored files, no .env) with
    Compose project names of its own: a developer's stack on this engine does not matter.
    Its `inv()` runs the tasks there."""
    copy = TreeCopy(Context(project_config()), "todostack-setup", env=False)
    yield copy
    copy.remove()


@pytest.fixture(scope="module")
def set_up(checkout):
    result = checkout.inv("setup")
    assert result.returncode == 0, result.stdout + result.stderr
    return checkout, result


@pytest.fixture
def free_ports(set_up):
    """Point the checkout's ports at free ones, so other stacks on this machine don't matter."""
    checkout, _ = set_up
    set_values(
        checkout.path / ".env",
        {"FRONTEND_PORT": free_port(), "BACKEND_PORT": free_port(), "POSTGRES_PORT": free_port()},
    )
    return checkout


def test_doctor_without_env_says_run_setup(checkout):
    assert not (checkout.path / ".env").exists()
    result = checkout.inv("doctor")
    assert result.returncode == 1
    assert "FAIL  env      .env not found: run `inv setup`" in result.stdout


def test_setup_creates_a_complete_env_with_secrets(set_up):
    checkout, result = set_up
    env = read_env(checkout.path / ".env")
    assert set(assigned_keys((checkout.path / ".env.example").read_text())) <= set(env)
    assert len(env["POSTGRES_PASSWORD"]) >= 32
    assert "setup: created .env" in result.stdout
    for variable in ("PYTHON_IMAGE", "NODE_IMAGE", "POSTGRES_IMAGE", "NGINX_IMAGE", "REDIS_IMAGE"):
        assert subprocess.run(["docker", "image", "inspect", env[variable]], capture_output=True).returncode == 0, (
            f"{variable}={env[variable]} missing"
        )


def test_setup_again_changes_nothing(set_up):
    checkout, _ = set_up
    before = (checkout.path / ".env").read_bytes()
    result = checkout.inv("setup")
    assert result.returncode == 0, result.stderr
    assert "left as it is" in result.stdout
    assert (checkout.path / ".env").read_bytes() == before


def test_doctor_passes_after_setup(free_ports):
    result = free_ports.inv("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "doctor: all checks passed" in result.stdout


def test_doctor_names_the_process_holding_a_busy_port(free_ports):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        set_values(free_ports.path / ".env", {"FRONTEND_PORT": port})
        result = free_ports.inv("doctor")
    assert result.returncode == 1
    assert f"port {port} (FRONTEND_PORT) is in use by" in result.stdout
    assert f"(pid {os.getpid()}): stop it or set FRONTEND_PORT to a free port in .env" in result.stdout
    assert_one_line_failure(result, "doctor: 1 problem(s) found")


def test_doctor_reports_a_missing_env_key(free_ports):
    env = free_ports.path / ".env"
    original = env.read_text()
    env.write_text("".join(line for line in original.splitlines(True) if not line.startswith("WEB_CONCURRENCY=")))
    try:
        result = free_ports.inv("doctor")
    finally:
        env.write_text(original)
    assert result.returncode == 1
    assert "FAIL  env      .env lacks WEB_CONCURRENCY: run `inv setup` to add them" in result.stdout


def test_doctor_flags_db_host_localhost(free_ports):
    set_values(free_ports.path / ".env", {"DB_HOST": "localhost"})
    try:
        result = free_ports.inv("doctor")
    finally:
        set_values(free_ports.path / ".env", {"DB_HOST": "postgres"})
    assert result.returncode == 1
    assert "DB_HOST in .env points at localhost" in result.stdout


def test_doctor_with_the_daemon_down(free_ports):
    result = free_ports.inv("doctor", env=UNREACHABLE_ENGINE)
    assert result.returncode == 1
    assert "FAIL  engine   Docker daemon is not running: start it" in result.stdout


def test_setup_with_the_daemon_down_fails_in_one_line(set_up):
    checkout, _ = set_up
    result = checkout.inv("setup", env=UNREACHABLE_ENGINE)
    assert_one_line_failure(result, "Docker daemon is not running: start it")


def test_unknown_base_name(checkout):
    assert_one_line_failure(
        checkout.inv("bases", "--base", "nosuch"), "unknown base nosuch: choose from python, node, postgres, nginx"
    )


def test_unreachable_mirror_fails_cleanly_and_leaves_nothing(checkout):
    result = checkout.inv("bases", "--base", "python", env={"INVOKE_BASES_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"})
    assert_one_line_failure(result, "debootstrap of 'trixie' from http://127.0.0.1:9/debian failed")
    assert "check that the mirror is reachable" in result.stderr
    assert not list((checkout.path / ".cache").glob("bases/rootfs-*.tar"))


def test_engine_provisioning_refuses_without_root():
    # As nobody, with the engine out of reach: provisioning would have to start dockerd.
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            sys.executable,
            "-m",
            "invoke",
            "setup",
            "--engine",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **UNREACHABLE_ENGINE, "HOME": "/nonexistent"},
    )
    assert_one_line_failure(result, "needs root: rerun as root (sudo ./inv setup --engine)")


def test_engine_provisioning_leaves_a_working_engine_alone(set_up):
    checkout, _ = set_up
    result = checkout.inv("setup", "--engine")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "provision: the Docker engine answers: left as it is" in result.stdout
    assert "provision: Compose v2 is installed: left as it is" in result.stdout
