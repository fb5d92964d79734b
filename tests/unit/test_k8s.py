"""stackctl.k8s: the tag and registry it accepts, the overlay it renders with, the validators'
command lines and verdicts; and the manifests of deploy/k8s themselves, in step with
docker-compose.prod.yml and holding what the issue asks of every workload. The validators run
for real in tests/integration/test_k8s.py."""

import json
import re

import pytest
import yaml
from invoke import MockContext, Result

from stackctl import Problem, k8s
from tests.helpers import ROOT, project_config

MANIFESTS = ROOT / "deploy" / "k8s"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text())["services"]
WORKLOADS = ("Deployment", "StatefulSet", "Job")


def objects():
    """Every Kubernetes object of the manifests' files (YAML anchors resolved, as kustomize does)."""
    documents = [doc for path in sorted(MANIFESTS.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
    return [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") not in (None, "Kustomization")]


def find(kind, name=None):
    found = [o for o in objects() if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]
    assert found, f"no {kind} {name or ''}"
    return found


def pod(workload):
    return workload["spec"]["template"]["spec"]


def containers(workload, init=True):
    spec = pod(workload)
    return spec["containers"] + (spec.get("initContainers", []) if init else [])


@pytest.fixture
def paths(tmp_path):
    return {**k8s.settings(MockContext(config=project_config())), "tools": tmp_path / "tools"}


# --- the tag, the registry, the overlay -------------------------------------------------


@pytest.mark.parametrize("tag", ["abc1234", "v1.2.3", "Release_7", "a"])
def test_docker_tags_are_accepted(tag):
    assert k8s.check_tag(f" {tag} ") == tag


@pytest.mark.parametrize("tag", ["", "a b", "-x", ".x", "x:y", "x/y", "a" * 129])
def test_what_is_no_docker_tag_is_refused_in_one_line(tag):
    with pytest.raises(Problem, match="is not an image tag"):
        k8s.check_tag(tag)


def test_latest_is_refused_for_naming_no_particular_build():
    with pytest.raises(Problem, match="immutable tag"):
        k8s.check_tag("latest")


@pytest.mark.parametrize(
    "given, kept",
    [
        ("", ""),
        ("registry.example.com:5000/team/", "registry.example.com:5000/team"),
        ("localhost:5000", "localhost:5000"),
    ],
)
def test_registry_prefixes(given, kept):
    assert k8s.check_registry(given) == kept


@pytest.mark.parametrize("registry", ["https://registry.example.com", "reg istry", "host/Upper"])
def test_a_registry_that_is_no_prefix_is_refused(registry):
    with pytest.raises(Problem, match="is not HOST"):
        k8s.check_registry(registry)


@pytest.mark.parametrize(
    "tag, name",
    [("abc1234", "migrate-abc1234"), ("V1.2_3", "migrate-v1-2-3"), ("x_" * 60, "migrate-" + "x-" * 27 + "x")],
)
def test_the_migrate_job_is_named_after_the_tag_as_kubernetes_names_allow(tag, name):
    assert k8s.job_name(tag) == name
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name)


def test_the_overlay_tags_our_images_names_the_job_and_refers_to_the_base_relatively(tmp_path):
    spec = k8s.overlay(MANIFESTS, tmp_path / "overlay", "abc1234", "registry.example:5000/team", ["todostack/backend"])
    (base,) = spec["resources"]
    assert not base.startswith("/") and (tmp_path / "overlay" / base).resolve() == MANIFESTS.resolve()
    assert spec["images"] == [
        {"name": "todostack/backend", "newName": "registry.example:5000/team/todostack/backend", "newTag": "abc1234"}
    ]
    (patch,) = spec["patches"]
    assert patch["target"] == {"kind": "Job", "name": "migrate"}
    assert json.loads(patch["patch"]) == [{"op": "replace", "path": "/metadata/name", "value": "migrate-abc1234"}]


def test_without_a_registry_the_image_keeps_its_name(tmp_path):
    (image,) = k8s.overlay(MANIFESTS, tmp_path, "t1", "", ["todostack/frontend"])["images"]
    assert image == {"name": "todostack/frontend", "newName": "todostack/frontend", "newTag": "t1"}


# --- the tools and the validators' command lines -------------------------------------------


def test_installed_tools_are_not_installed_again(paths):
    (paths["tools"] / "bin").mkdir(parents=True)
    (paths["tools"] / "bin" / "python").touch()
    (paths["tools"] / ".requirements.sha256").write_text(k8s._digest(paths["requirements"]) + "\n")
    c = MockContext(config=project_config())  # any command would fail: none is expected
    assert k8s.ensure_tools(c, paths, say=lambda line: None) == paths["tools"]


def test_tools_install_from_the_pinned_lock_with_digests_checked(paths):
    c = MockContext(config=project_config(), run=[Result(), Result()])
    said = []
    k8s.ensure_tools(c, paths, say=said.append)
    venv, install = [call.args[0] for call in c.run.call_args_list]
    assert "-m venv --without-pip" in venv and str(paths["tools"]) in venv
    assert "--require-hashes" in install and f"-r {paths['requirements']}" in install
    assert (paths["tools"] / ".requirements.sha256").read_text().strip() == k8s._digest(paths["requirements"])
    assert said and "first use" in said[0]


def test_a_failed_install_is_one_line_pointing_at_pypi_and_the_log(paths):
    c = MockContext(config=project_config(), run=[Result(), Result(exited=1)])
    with pytest.raises(Problem, match=r"could not install the tools .*PyPI is reachable; log in "):
        k8s.ensure_tools(c, paths, say=lambda line: None)
    assert not (paths["tools"] / ".requirements.sha256").exists()


def test_schemas_are_validated_strictly_against_the_pinned_version(paths):
    c = MockContext(config=project_config(), run=Result())
    check = k8s.validate_schemas(c, paths, ROOT / "x.yaml")
    command = c.run.call_args.args[0]
    assert f"kubernetes-validate --kubernetes-version {paths['version']} --strict --quiet" in command
    assert command.startswith(str(paths["tools"] / "bin"))
    assert check.problems == [] and paths["version"] in check.name


def test_schema_errors_are_the_validators_lines(paths):
    output = "ERROR x.yaml did not validate for resource deployment/backend: Additional properties are not allowed\n"
    c = MockContext(config=project_config(), run=Result(stdout=output, exited=1))
    assert k8s.validate_schemas(c, paths, ROOT / "x.yaml").problems == [output.strip()]


def test_a_silent_schema_failure_still_fails(paths):
    c = MockContext(config=project_config(), run=Result(exited=2))
    assert k8s.validate_schemas(c, paths, ROOT / "x.yaml").problems == ["kubernetes-validate exited with status 2"]


CHECKOV_REPORT = {
    "check_type": "kubernetes",
    "results": {
        "failed_checks": [
            {
                "check_id": "CKV_K8S_22",
                "resource": "Deployment.todostack.frontend",
                "check_name": "Use read-only filesystem for containers where possible",
            }
        ]
    },
    "summary": {"passed": 400, "failed": 1, "checkov_version": "3.3.30"},
}


def test_every_skipped_policy_has_a_reason():
    skips = k8s.policy_skips(MANIFESTS / "checkov-skips.yaml")
    assert skips and all(len(reason) > 40 for reason in skips.values())


def test_a_skip_without_a_reason_is_refused(tmp_path):
    (tmp_path / "skips.yaml").write_text("- id: CKV_K8S_1\n  reason: ''\n")
    with pytest.raises(Problem, match="entry 1 of skips.yaml needs both an id and a reason"):
        k8s.policy_skips(tmp_path / "skips.yaml")


def test_policies_are_checked_offline_less_the_skipped_ones(paths):
    clean = {**CHECKOV_REPORT, "results": {"failed_checks": []}}
    c = MockContext(config=project_config(), run=Result(stdout=json.dumps(clean)))
    check = k8s.check_policies(c, paths, ROOT / "x.yaml")
    command = c.run.call_args.args[0]
    assert "--framework kubernetes" in command and "--skip-download" in command and "--output json" in command
    skipped = ",".join(k8s.policy_skips(paths["skips"]))
    assert f"--skip-check {skipped}" in command
    assert check.problems == [] and "3.3.30" in check.name and "400 passed" in check.summary


@pytest.mark.parametrize("report", [CHECKOV_REPORT, [CHECKOV_REPORT]], ids=["one framework", "several"])
def test_each_failed_policy_is_a_line_naming_check_and_object(paths, report):
    c = MockContext(config=project_config(), run=Result(stdout=json.dumps(report), exited=1))
    assert k8s.check_policies(c, paths, ROOT / "x.yaml").problems == [
        "CKV_K8S_22 Deployment.todostack.frontend: Use read-only filesystem for containers where possible"
    ]


def test_no_report_or_nothing_checked_fails(paths):
    c = MockContext(config=project_config(), run=Result(stderr="Traceback ...\nImportError: boom\n", exited=1))
    assert k8s.check_policies(c, paths, ROOT / "x.yaml").problems == ["checkov gave no report: ImportError: boom"]
    empty = {"check_type": "kubernetes", "results": {"failed_checks": []}, "summary": {"passed": 0}}
    c = MockContext(config=project_config(), run=Result(stdout=json.dumps(empty)))
    assert "checked nothing" in k8s.check_policies(c, paths, ROOT / "x.yaml").problems[0]


def test_an_unwritable_output_is_one_line_before_anything_renders(paths, tmp_path):
    (tmp_path / "file").write_text("")
    c = MockContext(config=project_config())
    with pytest.raises(Problem, match="cannot write to .*file/k8s"):
        k8s.render(c, paths, "t1", "", tmp_path / "file" / "k8s")


def test_a_render_error_names_the_manifests_and_kustomizes_last_line(paths, tmp_path):
    c = MockContext(config=project_config(), run=Result(stderr="Error: accumulating resources: bad\n", exited=1))
    with pytest.raises(Problem, match="could not render deploy/k8s: Error: accumulating resources: bad"):
        k8s.render(c, paths, "t1", "", tmp_path)
    assert "kubectl kustomize" in c.run.call_args.args[0]


# --- the manifests ----------------------------------------------------------------------


def test_our_images_are_the_ones_the_prod_compose_file_builds():
    built = {spec["image"].split(":")[0] for spec in COMPOSE.values() if "build" in spec}
    assert set(project_config().k8s.images) == built
    used = {c["image"] for w in objects() if w["kind"] in WORKLOADS for c in containers(w)}
    assert built <= used


def test_every_workload_is_hardened():
    for workload in (o for o in objects() if o["kind"] in WORKLOADS):
        spec = pod(workload)
        name = workload["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])


def test_long_running_containers_have_both_probes():
    for workload in (o for o in objects() if o["kind"] in ("Deployment", "StatefulSet")):
        for container in containers(workload, init=False):
            assert "readinessProbe" in container and "livenessProbe" in container, container["name"]


def test_memory_limits_are_the_compose_files():
    units = {"m": "Mi", "g": "Gi"}
    workloads = {o["metadata"]["name"]: o for o in objects() if o["kind"] in WORKLOADS}
    limited = {name: spec["mem_limit"] for name, spec in COMPOSE.items() if "mem_limit" in spec}
    assert {"backend", "frontend", "migrate", "postgres"} <= set(limited) <= set(workloads)
    for name, limit in limited.items():
        (main,) = containers(workloads[name], init=False)
        assert main["resources"]["limits"]["memory"] == limit[:-1] + units[limit[-1]], name


def test_postgres_runs_with_the_compose_files_settings():
    (postgres,) = containers(find("StatefulSet", "postgres")[0])
    assert postgres["args"] == COMPOSE["postgres"]["command"]
    assert "tcp_user_timeout=30000" in postgres["args"]


def test_what_compose_mounts_as_tmpfs_is_an_emptydir_of_the_same_path():
    for workload in (o for o in objects() if o["kind"] in WORKLOADS):
        service = COMPOSE.get(workload["metadata"]["name"], {})
        empty_dirs = {v["name"] for v in pod(workload).get("volumes", []) if "emptyDir" in v}
        for container in containers(workload):
            mounted = {m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in empty_dirs}
            wanted = {entry.split(":")[0] for entry in service.get("tmpfs", [])}
            assert wanted <= mounted, (container["name"], wanted - mounted)


def test_secrets_are_referenced_as_files_never_as_values():
    text = "\n".join(path.read_text() for path in MANIFESTS.glob("*.yaml"))
    assert "kind: Secret\n" not in text and "secretKeyRef" not in text and "stringData" not in text
    with_secrets = []
    for workload in (o for o in objects() if o["kind"] in WORKLOADS):
        files = {
            f"{mount['mountPath']}/{item['path']}"
            for container in containers(workload)
            for mount in container.get("volumeMounts", [])
            for volume in pod(workload)["volumes"]
            if volume["name"] == mount["name"] and "secret" in volume
            for item in volume["secret"]["items"]
        }
        wanted = {e["value"] for c in containers(workload) for e in c.get("env", []) if e["name"].endswith("_FILE")}
        assert wanted <= files, (workload["metadata"]["name"], wanted - files)
        with_secrets += [workload["metadata"]["name"]] if wanted else []
    assert sorted(with_secrets) == ["backend", "migrate", "postgres"]


def allowed_from(policy):
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in policy["spec"].get("ingress", [])
        for peer in rule["from"]
        if "podSelector" in peer and "namespaceSelector" not in peer
    }


def test_network_policies_deny_by_default_and_allow_only_the_stacks_paths():
    (deny,) = find("NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert allowed_from(find("NetworkPolicy", "postgres")[0]) == {"backend", "migrate"}
    assert allowed_from(find("NetworkPolicy", "backend")[0]) == {"frontend"}
    assert allowed_from(find("NetworkPolicy", "redis")[0]) == {"backend"}
    assert [rule["ports"] for rule in find("NetworkPolicy", "backend")[0]["spec"]["ingress"]] == [
        [{"protocol": "TCP", "port": 8000}]
    ]


def test_the_ingress_reaches_the_frontend_only_and_no_service_exposes_the_metrics_port():
    (ingress,) = find("Ingress")
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"frontend"}
    ports = {port.get("targetPort") for service in find("Service") for port in service["spec"]["ports"]}
    assert "metrics" not in ports and 9100 not in ports


def test_the_backend_runs_two_replicas_after_the_migrations():
    (backend,) = find("Deployment", "backend")
    assert backend["spec"]["replicas"] == 2
    (wait,) = pod(backend)["initContainers"]
    assert "alembic current --check-heads" in wait["command"][-1]
    (job,) = find("Job", "migrate")
    (migrate,) = containers(job)
    assert migrate["command"] == COMPOSE["migrate"]["command"]
    owner = next(e for e in migrate["env"] if e["name"] == "DB_USER")
    assert owner["valueFrom"]["configMapKeyRef"]["key"] == "POSTGRES_USER"


def test_every_replicated_workload_has_a_disruption_budget():
    budgets = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for b in find("PodDisruptionBudget")}
    assert {"backend", "frontend", "postgres"} <= budgets


def test_the_frontend_names_the_backend_by_its_absolute_name():
    """Its entrypoint resolves BACKEND_URL's host with a trailing dot: a short name would not
    get the namespace's search domain, and would never resolve."""
    (frontend,) = containers(find("Deployment", "frontend")[0])
    (url,) = [e["value"] for e in frontend["env"] if e["name"] == "BACKEND_URL"]
    namespace = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["namespace"]
    assert url == f"http://backend.{namespace}.svc.cluster.local:8000"
    assert 'getent ahostsv4 "$BACKEND_HOST."' in (ROOT / "frontend/docker/entrypoint.sh").read_text()
