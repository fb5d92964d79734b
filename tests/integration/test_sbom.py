"""`inv build --prod` writes a CycloneDX SBOM per prod image and per lock (reports/sbom/),
valid against the CycloneDX 1.6 schema, listing what is really there."""

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

SBOMS = {
    "image-backend": {"fastapi", "asyncpg", "uvicorn", "python3"},
    "image-frontend": {"nginx", "react", "react-dom"},
    "image-postgres": {"postgresql-17", "libpq5"},
    "image-redis": {"valkey-server", "libssl3t64"},
    "lock-python-backend": {"fastapi", "asyncpg", "alembic", "pytest"},
    "lock-python-tooling": {"invoke", "pytest", "cyclonedx-bom", "pip-audit"},
    "lock-npm-frontend": {"react", "vite", "typescript"},
}


@pytest.fixture(scope="module")
def sboms(prod_stack):
    """{name: document} of the SBOMs the shared prod stack's `inv build --prod` wrote."""
    directory = prod_stack.path / "reports/sbom"
    return {path.name.removesuffix(".cdx.json"): json.loads(path.read_text()) for path in directory.glob("*.cdx.json")}


def test_every_sbom_is_written(sboms):
    assert set(sboms) == set(SBOMS)


@pytest.mark.parametrize("name", SBOMS)
def test_sbom_is_valid_cyclonedx_listing_known_packages(sboms, name):
    document = sboms[name]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document)) is None
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.6")
    names = {component["name"] for component in document["components"]}
    assert SBOMS[name] <= names, SBOMS[name] - names


def test_image_sboms_list_the_images_packages_not_the_dev_tools(sboms):
    backend = {c["name"] for c in sboms["image-backend"]["components"]}
    frontend = {c["name"] for c in sboms["image-frontend"]["components"]}
    # The prod images carry no test runner, bundler or compiler.
    assert not {"pytest", "ruff", "uv"} & backend
    assert not {"vite", "typescript", "eslint", "nodejs"} & frontend
    assert all(c["purl"].startswith(("pkg:deb/debian/", "pkg:pypi/")) for c in sboms["image-backend"]["components"])
    subject = sboms["image-backend"]["metadata"]["component"]
    assert subject["type"] == "container" and subject["version"].startswith("sha256:")
