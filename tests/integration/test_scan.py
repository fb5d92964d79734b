"""The image scanner against real images: a deliberately insecure one, built on the
configured Python base with a secret generated for this run, and a clean one."""

import secrets
import shutil
import subprocess
import time
import uuid

import pytest
from invoke import Context

from stackctl import bases, scan
from stackctl.compose import Target, docker_compose
from tests.helpers import ROOT, project_config

FIXTURE = ROOT / "tests/integration/fixtures/bad-image"
SHORT = "abc1234"  # below the minimum length: never reported


@pytest.fixture(scope="module")
def c():
    return Context(project_config())


@pytest.fixture(scope="module")
def base_images(c):
    assert (ROOT / ".env").is_file(), "no .env: run `inv setup` first"
    return {name: image for name, (_, image) in bases.configured_images(c, ROOT / ".env").items()}


@pytest.fixture(scope="module")
def planted():
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def built(c, base_images, planted, tmp_path_factory):
    """{"bad": image, "good": image}, built for this run and removed afterwards."""
    context = tmp_path_factory.mktemp("bad-image-context")
    shutil.copytree(FIXTURE, context, dirs_exist_ok=True)
    (context / ".env").write_text(f"SECRET_KEY={planted}\nSHORT={SHORT}\n")
    (context / "leaked.txt").write_text(f"token: {planted}\n")
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(context / "id_ed25519")],
        check=True,
        capture_output=True,
    )
    tag = uuid.uuid4().hex[:8]
    images = {"bad": f"scancheck/bad-image:{tag}", "good": f"scancheck/good-image:{tag}"}
    env = {"PYTHON_IMAGE": base_images["python"], "SCAN_CONTEXT": str(context), "SCAN_TOKEN": planted, "SCAN_TAG": tag}
    try:
        result = docker_compose(
            c,
            Target(name="scancheck", project="scancheck", files=(FIXTURE / "compose.yaml",)),
            "build bad-image good-image",
            env=env,
            hide=True,
            warn=True,
        )
        assert result.ok, result.stdout + result.stderr
        yield images
    finally:
        subprocess.run(["docker", "rmi", *images.values()], check=False, capture_output=True)


@pytest.fixture(scope="module")
def bad_findings(c, built, planted):
    return scan.scan_image(c, built["bad"], {"SECRET_KEY": planted, "SHORT": SHORT})


def messages(findings, check):
    return [f.message for f in findings if f.check == check]


def test_bad_image_runs_as_root_without_healthcheck(bad_findings):
    assert messages(bad_findings, "user") == ["runs as root (no USER set): add a non-root USER"]
    assert messages(bad_findings, "healthcheck") == ["no HEALTHCHECK in the image"]


def test_bad_image_env_file_and_private_key(bad_findings):
    assert [m.split(" in layer")[0] for m in messages(bad_findings, "env-file")] == ["environment file /app/.env"]
    assert [m.split(" in layer")[0] for m in messages(bad_findings, "private-key")] == [
        "private key in /root/.ssh/id_ed25519"
    ]


def test_bad_image_secret_in_files_history_and_config(bad_findings):
    found = messages(bad_findings, "secret")
    assert any(m.startswith("value of SECRET_KEY in /app/.env in layer") for m in found), found
    # Deleted by a later layer, but still in the image.
    assert any(m.startswith("value of SECRET_KEY in /tmp/leaked.txt in layer") for m in found), found
    # The build ARG: in the RUN using it and the LABEL taking it.
    assert len([m for m in found if m.startswith("value of SECRET_KEY in history step")]) == 2, found
    assert "value of SECRET_KEY in config Labels" in found


def test_no_message_shows_a_secret_and_short_values_are_ignored(bad_findings, planted):
    assert all(planted not in str(f) for f in bad_findings)
    assert not [f for f in bad_findings if "SHORT" in f.message]


def test_clean_image_has_no_findings(c, built, planted):
    assert scan.scan_image(c, built["good"], {"SECRET_KEY": planted}) == []


def test_missing_image_is_a_problem(c):
    with pytest.raises(scan.Problem, match="image scancheck/nosuch:none not found: run `inv build --prod`"):
        scan.scan_image(c, "scancheck/nosuch:none", {})


@pytest.mark.parametrize("base", ["python", "nginx"])
def test_scanning_a_base_image_takes_seconds(c, base_images, base, measure):
    start = time.monotonic()
    findings = scan.scan_image(c, base_images[base], {"SECRET_KEY": secrets.token_urlsafe(24)})
    seconds = time.monotonic() - start
    measure(f"scan {base} base image", seconds, "s")
    assert {f.check for f in findings} <= {"user", "healthcheck"}, [str(f) for f in findings]
    assert seconds < 30


# --- running containers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def containers(base_images, planted):
    """Containers of the Python base, running for this module: {"leaky": root with the secret in
    its environment and a label, "dropping": started as root but its process drops to uid 1000
    (as postgres's entrypoint does), "clean": uid 1000, the secret passed as a file path}."""
    tag = uuid.uuid4().hex[:8]
    image = base_images["python"]
    specs = {
        "leaky": ["--user", "0", "-e", f"DB_PASSWORD={planted}", "--label", f"token={planted}", image, "sleep", "300"],
        "dropping": [image, "setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", "sleep", "300"],
        "clean": ["--user", "1000:1000", "-e", "DB_PASSWORD_FILE=/run/secrets/db_password", image, "sleep", "300"],
    }
    names = {}
    try:
        for kind, args in specs.items():
            names[kind] = f"scancheck-{kind}-{tag}"
            subprocess.run(["docker", "run", "-d", "--name", names[kind], *args], check=True, capture_output=True)
        yield names
    finally:
        subprocess.run(["docker", "rm", "-f", *names.values()], check=False, capture_output=True)


def test_running_container_leaking_a_secret_and_running_as_root(c, containers, planted):
    findings = scan.scan_containers(c, [containers["leaky"]], {"SECRET_KEY": planted})
    assert sorted(str(f) for f in findings) == [
        f"{containers['leaky']}: secret: value of SECRET_KEY in docker inspect Config.Env",
        f"{containers['leaky']}: secret: value of SECRET_KEY in docker inspect Config.Labels",
        f"{containers['leaky']}: user: runs as root (user 0, its main process has uid 0): set a non-root user",
    ]


def test_running_containers_that_drop_privileges_or_take_secrets_as_files_pass(c, containers, planted):
    # The dropping container has no user configured: its process's uid decides.
    assert scan.scan_containers(c, [containers["dropping"], containers["clean"]], {"SECRET_KEY": planted}) == []


def test_the_prod_stacks_containers_run_as_non_root_users(c, prod_stack):
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={prod_stack.prod_project}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(ids) >= 4  # postgres, redis, backend, frontend
    assert [f for f in scan.scan_containers(c, ids, {}) if f.check == "user"] == []
