"""`inv k8s` with the real tools (kubectl's kustomize, kubernetes-validate, checkov; installed on
first use): the manifests render and validate clean, and a manifest broken for the schemas or
for a policy is caught, each by its validator. The backend pods' migration gate, run in the
prod stack's backend as the app's role. `inv images --save` writes tarballs `docker load`
takes, and refuses what it cannot do in one line."""

import json
import os
import re
import shutil
import subprocess
import tarfile
import uuid

import pytest
import yaml
from dotenv import dotenv_values

from stackctl.wait import wait_until
from tests.helpers import ROOT, assert_one_line_failure, inv

TAG = "abc1234"
REGISTRY = "registry.example:5000/team"


def k8s(tmp_path, manifests=None):
    env = {"INVOKE_K8S_MANIFESTS": str(manifests)} if manifests else {}
    return inv("k8s", "--tag", TAG, "--registry", REGISTRY, "--output", str(tmp_path / "out"), env=env)


def rendered(tmp_path):
    return [doc for doc in yaml.safe_load_all((tmp_path / "out" / "todostack.yaml").read_text()) if doc]


def broken_copy(tmp_path, file, old, new):
    """deploy/k8s copied, with one change in one file."""
    copy = tmp_path / "k8s"
    shutil.copytree(ROOT / "deploy" / "k8s", copy)
    text = (copy / file).read_text()
    assert old in text
    (copy / file).write_text(text.replace(old, new, 1))
    return copy


def test_the_manifests_render_for_the_tag_and_validate_clean(tmp_path):
    result = k8s(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok    schemas (Kubernetes 1.") for line in lines), result.stdout
    assert any(line.startswith("ok    policies (checkov ") for line in lines), result.stdout
    objects = rendered(tmp_path)
    images = {
        c["image"]
        for o in objects
        if "template" in o.get("spec", {})
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert {f"{REGISTRY}/todostack/backend:{TAG}", f"{REGISTRY}/todostack/frontend:{TAG}"} <= images
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "Job"} == {f"migrate-{TAG}"}
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"todostack"}


def test_an_unknown_field_is_caught_by_the_schema_validation(tmp_path):
    manifests = broken_copy(tmp_path, "backend.yaml", "  replicas: 2\n", "  replicas: 2\n  replica: 2\n")
    result = k8s(tmp_path, manifests)
    assert_one_line_failure(result, "k8s: schemas (Kubernetes")
    assert "FAIL  schemas" in result.stdout and "deployment/backend" in result.stdout
    assert "ok    policies" in result.stdout


def test_a_writable_root_filesystem_is_caught_by_the_policy_check(tmp_path):
    manifests = broken_copy(tmp_path, "frontend.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
    result = k8s(tmp_path, manifests)
    assert_one_line_failure(result, "k8s: policies (checkov")
    assert "CKV_K8S_22 Deployment.todostack.frontend" in result.stdout
    assert "ok    schemas" in result.stdout


def test_latest_is_refused_in_one_line(tmp_path):
    result = inv("k8s", "--tag", "latest", "--output", str(tmp_path / "out"))
    assert_one_line_failure(result, "'latest' names no particular build")
    assert not (tmp_path / "out").exists()


def test_the_backends_migration_gate_passes_at_the_head_only(prod_stack):
    """backend.yaml's init container repeats a check until it passes: here it runs once, in the
    prod stack's backend (the same image, as the app's role), against the migrated database
    and against one without migrations (PostgreSQL's own `postgres` database)."""
    documents = yaml.safe_load_all((ROOT / "deploy" / "k8s" / "backend.yaml").read_text())
    (backend,) = [doc for doc in documents if doc["kind"] == "Deployment"]
    (gate,) = backend["spec"]["template"]["spec"]["initContainers"]
    check = re.fullmatch(r"until (.+?) >/dev/null 2>&1; do .*; done", gate["command"][-1]).group(1)
    container = prod_stack.container("backend", prod=True)
    at_head = subprocess.run(["docker", "exec", container, "sh", "-c", check], capture_output=True, text=True)
    assert at_head.returncode == 0, at_head.stdout + at_head.stderr
    elsewhere = ["docker", "exec", "-e", "DB_NAME=postgres", container, "sh", "-c", check]
    not_migrated = subprocess.run(elsewhere, capture_output=True, text=True)
    assert not_migrated.returncode != 0, not_migrated.stdout + not_migrated.stderr


def test_postgres_starts_as_its_statefulset_runs_it_on_a_claim_as_the_kubelet_makes_it(tmp_path):
    """postgres.yaml's settings on our postgres image: its user, group and fsGroup; a claim
    whose root belongs to root and the fsGroup (setgid, group-writable, as the kubelet leaves
    it) with a fresh ext4's lost+found; PGDATA in a subdirectory; a read-only root with its
    emptyDirs (tmpfs here); the password as a file only the group can read; its args."""
    documents = yaml.safe_load_all((ROOT / "deploy" / "k8s" / "postgres.yaml").read_text())
    (statefulset,) = [doc for doc in documents if doc["kind"] == "StatefulSet"]
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    user, group, fs_group = (pod["securityContext"][key] for key in ("runAsUser", "runAsGroup", "fsGroup"))
    env = {e["name"]: e.get("value", "app") for e in container["env"]}  # the config map's values: app
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    tmpfs = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs]
    claim = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "data")
    image = dotenv_values(ROOT / ".env").get("POSTGRES_IMAGE") or "postgres:17"
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o755)
    (secrets / "postgres_password").write_text("k8s-test-password")
    os.chown(secrets / "postgres_password", 0, fs_group)
    (secrets / "postgres_password").chmod(0o440)
    name = f"k8s-test-postgres-{uuid.uuid4().hex[:8]}"
    try:
        assert docker("volume", "create", name)
        layout = f"mkdir /claim/lost+found && chown 0:{fs_group} /claim && chmod 2775 /claim"
        assert docker("run", "--rm", "-v", f"{name}:/claim", "--entrypoint", "sh", image, "-c", layout)
        options = ["--user", f"{user}:{group}", "--group-add", str(fs_group), "--read-only", "--cap-drop", "ALL"]
        options += ["--security-opt", "no-new-privileges", "-v", f"{name}:{claim}", "-v", f"{secrets}:/run/secrets:ro"]
        options += [arg for path in tmpfs for arg in ("--tmpfs", path)]
        options += [arg for variable, value in env.items() for arg in ("-e", f"{variable}={value}")]
        assert docker("run", "-d", "--name", name, *options, image, *container["args"])
        probe = container["readinessProbe"]["exec"]["command"]
        ready = wait_until(lambda: docker("exec", name, *probe), timeout=60, interval=0.5)
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        assert ready is not None, (logs.stdout + logs.stderr)[-2000:]
        # Over TCP: the connection settings of the container's args apply (a unix socket shows 0).
        sql = "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_user_timeout')"
        query = ["sh", "-c", f'PGPASSWORD=k8s-test-password psql -h 127.0.0.1 -U app -d app -tAc "{sql}"']
        answer = subprocess.run(["docker", "exec", name, *query], capture_output=True, text=True, timeout=60)
        assert answer.stdout.strip() == "30|30000", answer.stdout + answer.stderr
    finally:
        docker("rm", "-f", name)
        docker("volume", "rm", name)


@pytest.fixture
def tagged_images():
    """The prod stack's two image names at a tag of their own, given to a small local image (the
    test is about saving, not about what is inside); the tags are removed afterwards."""
    tag = f"k8s-test-{uuid.uuid4().hex[:8]}"
    names = [f"todostack/backend:{tag}", f"todostack/frontend:{tag}"]
    source = "localbase/debian:trixie-slim"
    for name in names:
        assert docker("tag", source, name)
    yield tag, names
    for name in names:
        docker("rmi", name)


def docker(*args):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120).returncode == 0


def test_images_are_saved_one_tarball_each_with_their_names(tmp_path, tagged_images):
    tag, names = tagged_images
    result = inv("images", "--save", str(tmp_path / "images"), env={"IMAGE_TAG": tag})
    assert result.returncode == 0, result.stdout + result.stderr
    files = sorted((tmp_path / "images").iterdir())
    assert [f.name for f in files] == [f"todostack-backend-{tag}.tar", f"todostack-frontend-{tag}.tar"]
    for name, archive in zip(names, files, strict=True):
        assert any(line.startswith(f"images: {archive} ") and " MB " in line for line in result.stdout.splitlines())
        with tarfile.open(archive) as tar:
            (manifest,) = json.load(tar.extractfile("manifest.json"))
        assert manifest["RepoTags"] == [name]


def test_an_image_not_built_is_one_line_and_writes_nothing(tmp_path):
    result = inv("images", "--save", str(tmp_path / "images"), env={"IMAGE_TAG": f"k8s-none-{uuid.uuid4().hex[:8]}"})
    assert_one_line_failure(result, "not built: build them first: inv build --prod")
    assert not (tmp_path / "images").exists()


def test_a_directory_that_cannot_be_written_is_one_line(tmp_path, tagged_images):
    tag, _ = tagged_images
    (tmp_path / "file").write_text("")
    result = inv("images", "--save", str(tmp_path / "file" / "images"), env={"IMAGE_TAG": tag})
    assert_one_line_failure(result, "cannot write to")
