"""stackctl.images.save (`inv images --save DIR`): what it refuses before writing anything,
and how a failed `docker save` ends. tests/integration/test_k8s.py saves and reads real tarballs."""

import pytest
from invoke import MockContext, Result

from stackctl import Problem, images
from stackctl.compose import stack_target
from tests.helpers import project_config

BUILT = {"backend": "todostack/backend:abc1234", "frontend": "todostack/frontend:abc1234"}
INSPECTED = Result(stdout='[{"Id": "sha256:1", "Size": 1}]')


@pytest.fixture
def prod(monkeypatch):
    monkeypatch.setattr(images, "built_images", lambda c, target: BUILT)
    return stack_target(MockContext(config=project_config()), prod=True)


def test_archives_are_named_after_the_image():
    assert images.archive_name("todostack/backend:abc1234") == "todostack-backend-abc1234.tar"
    assert images.archive_name("registry.example:5000/team/x:v1.2") == "registry.example-5000-team-x-v1.2.tar"


def test_an_image_not_built_stops_it_before_anything_is_written(prod, tmp_path):
    c = MockContext(config=project_config(), run=[INSPECTED, Result(exited=1, stderr="No such image")])
    with pytest.raises(Problem, match=r"^todostack/frontend:abc1234 not built: build them first: inv build --prod$"):
        images.save(c, prod, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_directory_it_cannot_write_to_is_one_line(prod, tmp_path):
    (tmp_path / "file").write_text("")
    c = MockContext(config=project_config(), run=[INSPECTED, INSPECTED])
    with pytest.raises(Problem, match=r"cannot write to .*file/out \(Not a directory\): choose another directory"):
        images.save(c, prod, tmp_path / "file" / "out")


def test_a_failed_save_leaves_no_partial_file_and_names_the_image(prod, tmp_path):
    failed = Result(exited=1, stderr="Error response from daemon: write /x: no space left on device\n")
    c = MockContext(config=project_config(), run=[INSPECTED, INSPECTED, failed])
    with pytest.raises(Problem, match="docker save todostack/backend:abc1234 failed: .*no space left on device"):
        images.save(c, prod, tmp_path)
    command = c.run.call_args.args[0]
    assert command == f"docker save --output {tmp_path}/todostack-backend-abc1234.tar.partial todostack/backend:abc1234"
    assert list(tmp_path.iterdir()) == []
