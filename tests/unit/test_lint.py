"""inv lint: which files each linter gets, the command lines (run from .venv, or in one-off
dev containers through Compose), the API types' drift check, the one line per linter."""

import shlex
from contextlib import contextmanager

import pytest
from invoke import MockContext, Result

from stackctl import ROOT, lint
from stackctl.compose import stack_target
from tests.helpers import project_config

VOLUMES = "docker volume ls --format '{{.Name}}' --filter label=com.docker.compose.project=todostack"
NETWORKS = "docker network ls --format '{{.Name}}' --filter label=com.docker.compose.project=todostack"


def context(run=None):
    return MockContext(config=project_config(), run=run if run is not None else Result(), repeat=True)


def commands(c):
    return [call.args[0] for call in c.run.call_args_list]


def compose(c):
    """The `docker compose` prefix of the dev stack."""
    return shlex.join(stack_target(c).args())


def test_every_shell_script_we_write_is_checked():
    scripts = lint.shell_scripts()
    for script in [
        "inv",
        ".ci/run",
        "backend/scripts/start.sh",
        "bases/build-rootfs.sh",
        "bases/node/fetch.sh",
        "bases/postgres/docker-entrypoint.sh",
        "frontend/docker/entrypoint.sh",
        "frontend/docker/dev-entrypoint.sh",
        "frontend/docker/healthcheck.sh",
    ]:
        assert script in scripts
    assert not {"tasks.py", "backend/Dockerfile", "requirements.txt"} & set(scripts)


def test_scripts_are_found_by_suffix_or_shell_shebang_outside_dependencies(tmp_path, monkeypatch):
    monkeypatch.setattr(lint, "ROOT", tmp_path)
    files = {
        "run": "#!/usr/bin/env bash\n",
        "wrapper": "#!/bin/sh\nexec x\n",
        "tool": "#!/usr/bin/env python3\n",
        "lib/funcs.sh": "f() { :; }\n",
        "notes.txt": "#!/bin/sh\n",
        "blob": "\x00\x01",
        "frontend/node_modules/pkg/build.sh": "#!/bin/sh\n",
        ".cache/copy/inv": "#!/bin/sh\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert lint.shell_scripts() == ["lib/funcs.sh", "run", "wrapper"]


def test_every_dockerfile_is_checked():
    assert {"backend/Dockerfile", "frontend/Dockerfile"} <= set(lint.dockerfiles())


def test_every_kubernetes_manifest_is_checked_by_yamllint():
    manifests = {str(path.relative_to(ROOT)) for path in (ROOT / "deploy" / "k8s").glob("*.yaml")}
    assert {"deploy/k8s/kustomization.yaml", "deploy/k8s/backend.yaml"} <= manifests <= set(lint.YAML_FILES)


@pytest.mark.parametrize(
    ("linter", "expected"),
    [
        (lint.hadolint, ["hadolint", "--config", str(ROOT / ".hadolint.yaml"), *lint.dockerfiles()]),
        (lint.shellcheck, ["shellcheck", *lint.shell_scripts()]),
        (lint.ruff_check, ["ruff", "check", "--output-format", "concise", "."]),
        (lint.ruff_format, ["ruff", "format", "--check", "--output-format", "concise", "."]),
        (lint.yamllint, ["yamllint", "--strict", "-c", str(ROOT / ".yamllint.yaml"), *lint.YAML_FILES]),
    ],
)
def test_host_linters_run_from_the_venv_with_their_output_captured(linter, expected):
    c = context()
    assert linter(c, lint.Options()).ok
    assert shlex.split(commands(c)[0]) == expected
    assert c.run.call_args.kwargs == {"hide": True, "warn": True}


def test_a_failing_linter_returns_its_output():
    outcome = lint.hadolint(context(Result(stdout="Dockerfile:2 DL3003 use WORKDIR\n", exited=1)), lint.Options())
    assert not outcome.ok and outcome.output == "Dockerfile:2 DL3003 use WORKDIR"


def test_compose_config_fails_on_a_warning():
    c = context(Result(stderr="WARN the attribute `version` is obsolete\n"))
    outcome = lint.compose_config(prod=True)(c, lint.Options())
    assert not outcome.ok and "obsolete" in outcome.output
    assert commands(c) == [f"{shlex.join(stack_target(c, prod=True).args())} config --quiet"]


def test_eslint_runs_npm_lint_in_a_one_off_dev_frontend_container():
    c = context()
    assert lint.eslint(c, lint.Options()).ok
    assert commands(c) == [f"{compose(c)} run --rm --no-deps -T frontend npm run --silent lint"]


@pytest.fixture
def types_tree(tmp_path, monkeypatch):
    """A project root holding committed API types, and the scratch directory where the (mocked)
    generation leaves its types: the same ones, unless a test writes others."""
    root, scratch = tmp_path / "root", tmp_path / "scratch"
    (root / lint.API_TYPES).parent.mkdir(parents=True)
    (root / lint.API_TYPES).write_text("export interface paths {}\n")
    scratch.mkdir()
    (scratch / "schema.d.ts").write_text("export interface paths {}\n")
    monkeypatch.setattr(lint, "ROOT", root)

    @contextmanager
    def scratch_directory():
        yield scratch

    monkeypatch.setattr(lint, "scratch_directory", scratch_directory)
    return root / lint.API_TYPES, scratch


def test_api_types_are_generated_in_the_dev_containers_from_the_backends_document(types_tree):
    _, scratch = types_tree
    c = context()
    assert lint.api_types(c, lint.Options()) == lint.Outcome(True)
    mount = f"-v {shlex.quote(f'{scratch}:/lint')}"
    assert commands(c) == [
        f"{compose(c)} run --rm --no-deps -T {mount} backend python -c {shlex.quote(lint.OPENAPI_DUMP)} "
        "/lint/openapi.json",
        f"{compose(c)} run --rm --no-deps -T {mount} frontend "
        "node_modules/.bin/openapi-typescript /lint/openapi.json --output /lint/schema.d.ts",
    ]


def test_drifted_api_types_fail_in_one_line_naming_the_file(types_tree):
    committed, scratch = types_tree
    (scratch / "schema.d.ts").write_text("export interface paths { '/new': {} }\n")
    outcome = lint.api_types(context(), lint.Options())
    assert not outcome.ok
    assert outcome.output.count("\n") == 0 and lint.API_TYPES in outcome.output
    assert "inv lint --fix-types" in outcome.output
    assert committed.read_text() == "export interface paths {}\n"


def test_fix_types_rewrites_drifted_types(types_tree):
    committed, scratch = types_tree
    (scratch / "schema.d.ts").write_text("export interface paths { '/new': {} }\n")
    outcome = lint.api_types(context(), lint.Options(fix_types=True))
    assert outcome == lint.Outcome(True, note=f"{lint.API_TYPES} regenerated")
    assert committed.read_text() == "export interface paths { '/new': {} }\n"


def test_api_types_stop_when_the_backend_cannot_give_its_document(types_tree):
    c = context(Result(stderr="ModuleNotFoundError: No module named 'app'\n", exited=1))
    outcome = lint.api_types(c, lint.Options(fix_types=True))
    assert not outcome.ok and "ModuleNotFoundError" in outcome.output
    assert len(commands(c)) == 1
    assert types_tree[0].read_text() == "export interface paths {}\n"


def test_one_line_per_linter_failures_with_their_output(monkeypatch):
    monkeypatch.setattr(
        lint,
        "LINTERS",
        [
            ("clean", lambda c, o: lint.Outcome(True)),
            ("dirty", lambda c, o: lint.Outcome(False, "a.py:1: E1 bad")),
            ("fixed", lambda c, o: lint.Outcome(True, note="types regenerated")),
        ],
    )
    lines = []
    assert lint.run_linters(context(), out=lines.append) == ["dirty"]
    assert lines == ["ok    clean", "FAIL  dirty", "a.py:1: E1 bad", "ok    fixed (types regenerated)"]


def test_options_reach_every_linter(monkeypatch):
    seen = []
    monkeypatch.setattr(lint, "LINTERS", [("one", lambda c, o: seen.append(o) or lint.Outcome(True))])
    lint.run_linters(context(), lint.Options(fix_types=True), out=lambda line: None)
    assert seen == [lint.Options(fix_types=True)]


def test_volumes_and_networks_the_one_off_containers_created_are_removed(monkeypatch):
    monkeypatch.setattr(lint, "LINTERS", [])
    c = MockContext(
        config=project_config(),
        run={
            VOLUMES: [Result("todostack_old\n"), Result("todostack_old\ntodostack_postgres-data\n")],
            NETWORKS: [Result(""), Result("todostack_app\n")],
            "docker volume rm todostack_postgres-data": Result(),
            "docker network rm todostack_app": Result(),
        },
    )
    lint.run_linters(c, out=lambda line: None)
    assert commands(c) == [
        VOLUMES,
        NETWORKS,
        VOLUMES,
        NETWORKS,
        "docker network rm todostack_app",
        "docker volume rm todostack_postgres-data",
    ]


def test_the_linters_in_their_order():
    assert [name for name, _ in lint.LINTERS] == [
        "hadolint",
        "shellcheck",
        "ruff check",
        "ruff format",
        "yamllint",
        "compose config (dev)",
        "compose config (prod)",
        "alembic check",
        "api types",
        "eslint",
    ]
