"""stackctl.releases: release tags, where each image goes in the registry, and what `inv push`
and the digest look-up refuse in one line. tests/integration/test_swarm.py pushes and pulls
through a real registry."""

import pytest
from invoke import MockContext, Result

from stackctl import Problem, releases
from tests.helpers import project_config


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("todostack/backend:latest", "todostack/backend"),
        ("postgres:17", "postgres"),
        ("localbase/postgres:17", "localbase/postgres"),
        ("registry.example.com:5000/team/app@sha256:abc", "team/app"),
        ("localhost/app", "app"),
        ("127.0.0.1:5000/todostack/frontend:v1", "todostack/frontend"),
    ],
)
def test_the_repository_drops_registry_tag_and_digest(image, repository):
    assert releases.repository(image) == repository


def test_a_release_puts_every_image_under_its_tag():
    assert releases.reference("reg:5000", "localbase/valkey:8", "0123abcd") == "reg:5000/localbase/valkey:0123abcd"


def test_the_default_tag_is_the_commit_of_a_clean_tree():
    c = MockContext(
        run={
            "git status --porcelain --untracked-files=no": Result(""),
            "git rev-parse --short=12 HEAD": Result("0123456789ab\n"),
        }
    )
    assert releases.release_tag(c) == "0123456789ab"


def test_uncommitted_changes_have_no_commit_to_name_them():
    c = MockContext(run={"git status --porcelain --untracked-files=no": Result(" M tasks.py\n")})
    with pytest.raises(Problem, match=r"^the work tree has uncommitted changes.*commit them, or pass --tag TAG$"):
        releases.release_tag(c)


@pytest.mark.parametrize("tag", ["latest", "", "-x", "a b", "x" * 129, "v1/2"])
def test_a_tag_that_cannot_name_a_release_is_refused(tag):
    with pytest.raises(Problem, match="cannot name a release"):
        releases.release_tag(MockContext(), tag)


def test_an_explicit_tag_is_taken_as_it_is():
    assert releases.release_tag(MockContext(), "v1.2.3_rc-1") == "v1.2.3_rc-1"


def test_a_missing_image_stops_the_push_before_anything_is_pushed(monkeypatch):
    monkeypatch.setattr(
        releases, "stack_images", lambda c, t: {"backend": "todostack/backend:latest", "redis": "valkey/valkey:8"}
    )
    c = MockContext(config=project_config(), run=[Result("[{}]"), Result(exited=1, stderr="No such image")])
    with pytest.raises(Problem, match=r"^valkey/valkey:8 not on this engine: build them first"):
        releases.push(c, None, "reg:5000", "v1")


def test_a_registry_that_does_not_answer_is_one_line(monkeypatch):
    monkeypatch.setattr(releases, "stack_images", lambda c, t: {"backend": "todostack/backend:latest"})
    c = MockContext(
        config=project_config(),
        run=[
            Result("[{}]"),
            Result(""),
            Result(exited=1, stderr='Get "http://reg:5000/v2/": dial tcp: lookup reg: no such host\n'),
        ],
    )
    with pytest.raises(
        Problem,
        match=r"^pushing reg:5000/todostack/backend:v1 failed \(Get .*no such host\): check that the registry reg:5000",
    ):
        releases.push(c, None, "reg:5000", "v1")


def test_a_tag_the_registry_lacks_is_one_line():
    c = MockContext(
        run=Result(
            exited=1, stderr="Error response from daemon: manifest for reg:5000/a:v9 not found: manifest unknown\n"
        )
    )
    with pytest.raises(
        Problem, match=r"^cannot pull reg:5000/a:v9 \(Error response .*manifest unknown\): check that the registry"
    ):
        releases.pinned(c, "reg:5000/a:v9")


def test_the_digest_is_the_one_of_the_pulled_reference():
    c = MockContext(run=[Result(""), Result('["other:5000/a@sha256:1","reg:5000/a@sha256:2"]\n')])
    assert releases.pinned(c, "reg:5000/a:v1") == "reg:5000/a@sha256:2"
