"""The image SBOMs stackctl.sbom writes itself, from recorded tool output (tests/unit/fixtures):
dpkg-query's lines from the frontend image, cyclonedx-npm's SBOM of the frontend lock."""

import json
from pathlib import Path

import pytest
from invoke import MockContext, Result

from stackctl import Problem, sbom
from tests.helpers import project_config

FIXTURES = Path(__file__).parent / "fixtures"
DPKG = (FIXTURES / "dpkg-query-frontend.txt").read_text()
NPM = json.loads((FIXTURES / "cyclonedx-npm-frontend.json").read_text())


def test_installed_debian_packages_only_with_their_purl():
    components = sbom.deb_components(DPKG)
    assert [c["name"] for c in components] == ["base-files", "libc6", "nginx", "zlib1g"]
    zlib = components[-1]
    assert zlib["version"] == "1:1.3.dfsg+really1.3.1-1+b1"
    # The epoch's colon and the plus signs are percent-encoded; the source package is a qualifier.
    assert zlib["purl"] == "pkg:deb/debian/zlib1g@1%3A1.3.dfsg%2Breally1.3.1-1%2Bb1?arch=amd64&upstream=zlib"
    assert components[2]["purl"] == "pkg:deb/debian/nginx@1.26.3-3%2Bdeb13u11?arch=amd64"
    assert {"name": "deb:source", "value": "glibc"} in components[1]["properties"]
    assert all(c["bom-ref"] == c["purl"] for c in components)


def test_python_distributions_sorted_with_normalised_purls():
    components = sbom.pypi_components([["uvicorn", "0.38.0"], ["FastAPI", "0.121.0"], ["typing_extensions", "4.15.0"]])
    assert [(c["name"], c["purl"]) for c in components] == [
        ("FastAPI", "pkg:pypi/fastapi@0.121.0"),
        ("typing_extensions", "pkg:pypi/typing-extensions@4.15.0"),
        ("uvicorn", "pkg:pypi/uvicorn@0.38.0"),
    ]


def test_npm_runtime_components_leave_out_development_packages():
    shipped = sbom.npm_runtime_components(NPM)
    assert sorted((c.get("group"), c["name"]) for c in shipped) == [
        (None, "react"),
        (None, "react-dom"),
        (None, "scheduler"),
    ]
    assert sbom.npm_runtime_components({}) == []


def test_document_is_cyclonedx_with_its_subject():
    doc = sbom.document({"type": "container", "name": "img"}, [{"name": "x"}])
    assert (doc["bomFormat"], doc["specVersion"], doc["version"]) == ("CycloneDX", "1.6", 1)
    assert doc["serialNumber"].startswith("urn:uuid:") and doc["metadata"]["component"]["name"] == "img"
    assert doc["metadata"]["timestamp"].endswith("Z")


@pytest.mark.parametrize("service,carries", [("backend", "fastapi"), ("frontend", "react"), ("other", None)])
def test_image_sbom_adds_what_the_image_carries(monkeypatch, service, carries):
    ran = []

    def in_image(c, image, entrypoint, *args):
        ran.append(entrypoint)
        return DPKG if entrypoint == "dpkg-query" else json.dumps([["fastapi", "0.121.0"], ["asyncpg", "0.31.0"]])

    monkeypatch.setattr(sbom, "in_image", in_image)
    c = MockContext(config=project_config(), run=Result(stdout="sha256:abc\n"))
    doc = sbom.image_sbom(c, service, "todostack/x:tag", NPM)
    names = [component["name"] for component in doc["components"]]
    assert names[:4] == ["base-files", "libc6", "nginx", "zlib1g"]
    assert (carries in names) if carries else len(names) == 4
    assert ran == (["dpkg-query", "python"] if service == "backend" else ["dpkg-query"])
    assert doc["metadata"]["component"] == {
        "type": "container",
        "bom-ref": "todostack/x:tag",
        "name": "todostack/x:tag",
        "version": "sha256:abc",
    }


def test_a_command_failing_in_the_image_is_a_problem():
    c = MockContext(config=project_config(), run=Result(exited=127, stderr='exec: "dpkg-query": not found\n'))
    with pytest.raises(Problem, match=r"^sbom: `dpkg-query` failed in img: exec: \"dpkg-query\": not found$"):
        sbom.in_image(c, "img", "dpkg-query", "-W")
    assert c.run.call_args.args[0].startswith("docker run --rm --network none --entrypoint dpkg-query img -W")


def test_requirements_sbom_runs_cyclonedx_py_into_the_directory(tmp_path):
    def fake(command, **kwargs):
        (tmp_path / "requirements.txt.cdx.json").write_text('{"components": [{"name": "invoke"}]}')
        return Result(command=command)

    c = MockContext(config=project_config(), run=Result())
    c.run.side_effect = fake
    assert sbom.requirements_sbom(c, "/x/requirements.txt", tmp_path) == {"components": [{"name": "invoke"}]}
    assert c.run.call_args.args[0] == (
        f"cyclonedx-py requirements --of JSON --sv 1.6 -o {tmp_path}/requirements.txt.cdx.json /x/requirements.txt"
    )


@pytest.fixture
def makers(monkeypatch, tmp_path):
    """write_all with every SBOM maker recorded instead of run, into tmp_path."""
    made = []
    monkeypatch.setattr(sbom, "output_dir", lambda c: tmp_path)
    monkeypatch.setattr(sbom, "npm_lock_sbom", lambda c, d: made.append("npm") or NPM)
    monkeypatch.setattr(sbom, "uv_lock_sbom", lambda c, d: made.append("uv") or {"components": []})
    monkeypatch.setattr(sbom, "requirements_sbom", lambda c, r, d: made.append("tooling") or {"components": []})
    monkeypatch.setattr(sbom, "image_sbom", lambda c, s, i, n: made.append(s) or {"components": []})
    return made


def write_all_with_ids(monkeypatch, ids):
    monkeypatch.setattr(sbom, "image_id", lambda c, image: ids[image])
    c = MockContext(config=project_config())
    return sbom.write_all(c, {"backend": "b:tag", "frontend": "f:tag"})


def test_write_all_writes_every_sbom_then_only_what_changed(monkeypatch, makers, tmp_path):
    written = write_all_with_ids(monkeypatch, {"b:tag": "sha256:1", "f:tag": "sha256:2"})
    assert sorted(makers) == ["backend", "frontend", "npm", "tooling", "uv"]
    assert {path.name for path in written} == {
        "lock-python-backend.cdx.json",
        "lock-python-tooling.cdx.json",
        "lock-npm-frontend.cdx.json",
        "image-backend.cdx.json",
        "image-frontend.cdx.json",
    }
    assert all(path.is_file() for path in written)

    makers.clear()
    write_all_with_ids(monkeypatch, {"b:tag": "sha256:1", "f:tag": "sha256:2"})
    assert makers == []

    write_all_with_ids(monkeypatch, {"b:tag": "sha256:3", "f:tag": "sha256:2"})
    assert makers == ["backend"]

    makers.clear()
    (tmp_path / "image-frontend.cdx.json").unlink()
    write_all_with_ids(monkeypatch, {"b:tag": "sha256:3", "f:tag": "sha256:2"})
    assert makers == ["npm", "frontend"]  # the frontend's bundles the npm lock's packages
