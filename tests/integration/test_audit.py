"""`inv audit` with the real tools and whatever advisory services this machine reaches: where
PyPI's JSON API does not answer (our machines), one line and exit 3, never a pass."""

import requests

from stackctl.audit import UNAVAILABLE
from tests.helpers import assert_one_line_failure, inv


def pypi_answers():
    """Whether PyPI's JSON API answers the question pip-audit asks (a release's document, with
    its vulnerabilities) for a release that exists."""
    try:
        return requests.get("https://pypi.org/pypi/invoke/3.0.3/json", timeout=10).status_code == 200
    except requests.RequestException:
        return False


def test_audit_never_passes_without_an_advisory_service():
    result = inv("audit", timeout=600)
    if pypi_answers():
        assert result.returncode in (0, 1), result.stdout + result.stderr
        return
    assert result.returncode == UNAVAILABLE, result.stdout + result.stderr
    assert_one_line_failure(result, "the advisory service did not answer; nothing is known")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
