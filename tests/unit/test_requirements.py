"""requirements.txt locks what requirements.in names, each package with its digests; so does
deploy/k8s's lock of the tools inv k8s installs on first use."""

import re

import pytest

from tests.helpers import ROOT

# A package pinned with its extras (`cachecontrol[filecache]==...`, uv's --no-strip-extras) counts
# as that package.
PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)


def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path):
    return {normalized(name): version for name, version in PIN.findall(path.read_text())}


LOCKS = pytest.mark.parametrize("directory", [ROOT, ROOT / "deploy" / "k8s"], ids=["tasks", "k8s-tools"])


@LOCKS
def test_the_lock_pins_every_named_package_at_its_version(directory):
    named, locked = pins(directory / "requirements.in"), pins(directory / "requirements.txt")
    assert named and {name: locked.get(name) for name in named} == named


@LOCKS
def test_every_locked_package_carries_a_digest(directory):
    entries = re.split(r"\n(?=[A-Za-z0-9])", (directory / "requirements.txt").read_text())
    packages = [entry for entry in entries if PIN.match(entry)]
    assert packages and all(re.search(r"--hash=sha256:[0-9a-f]{64}", entry) for entry in packages), [
        entry.split()[0] for entry in packages if "--hash=sha256:" not in entry
    ]
