"""inv audit's parsing, threshold and allow-list on recorded advisory responses
(tests/unit/fixtures): pip-audit's and npm audit's JSON with findings, and what they answered
on a machine where no advisory service is reachable."""

import datetime
import json
from pathlib import Path

import pytest
from invoke import MockContext, Result

from stackctl import Problem, audit
from tests.helpers import project_config

FIXTURES = Path(__file__).parent / "fixtures"
TODAY = datetime.date(2026, 11, 23)


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def allowed(*entries):
    return audit.allow_list([{"id": i, "reason": "not reachable from our code", "expires": e} for i, e in entries])


def test_pip_audit_findings_carry_ids_aliases_and_no_severity():
    findings = audit.pip_audit_findings("backend/uv.lock", fixture("pip-audit-findings.json"))
    assert [(f.package, f.version, f.advisory, f.aliases, f.severity) for f in findings] == [
        ("starlette", "0.38.2", "GHSA-f96h-pmfr-66vw", ("CVE-2024-47874",), "unknown"),
        ("jinja2", "3.1.4", "GHSA-q2x7-8rv6-6q7h", ("CVE-2024-56326",), "unknown"),
        ("jinja2", "3.1.4", "PYSEC-2024-139", ("GHSA-gmj6-6f8f-6699", "CVE-2024-56201"), "unknown"),
    ]
    assert findings[0].line() == (
        "backend/uv.lock: starlette 0.38.2: GHSA-f96h-pmfr-66vw (CVE-2024-47874) [unknown] "
        "Starlette Denial of service (DoS) via multipart/form-data"
    )


def test_pip_audit_that_could_look_nothing_up_is_not_a_pass():
    # Recorded here: PyPI's JSON API answers 404, pip-audit skips every package and exits 0.
    with pytest.raises(audit.AdvisoriesUnavailable) as raised:
        audit.pip_audit_findings("requirements.txt", fixture("pip-audit-unreachable.json"))
    assert raised.value.code == audit.UNAVAILABLE == 3
    assert str(raised.value) == (
        "audit: pip-audit could not look up 4 of 4 packages of requirements.txt (Dependency not found on PyPI "
        "and could not be audited): the advisory service did not answer; nothing is known"
    )


def test_one_skipped_package_is_enough_to_say_so():
    report = fixture("pip-audit-findings.json")
    report["dependencies"].append(fixture("pip-audit-unreachable.json")["dependencies"][0])
    with pytest.raises(audit.AdvisoriesUnavailable, match="could not look up 1 of 5 packages"):
        audit.pip_audit_findings("requirements.txt", report)


def test_npm_audit_findings_one_per_advisory_with_severity():
    findings = audit.npm_audit_findings("frontend/package-lock.json", fixture("npm-audit-findings.json"))
    # vite is vulnerable only through esbuild (a name in `via`): esbuild's advisory is the finding.
    assert sorted((f.package, f.advisory, f.severity) for f in findings) == [
        ("brace-expansion", "GHSA-v6h2-p8h4-qcjw", "low"),
        ("cross-spawn", "GHSA-3xgq-45jj-v275", "high"),
        ("esbuild", "GHSA-67mh-4wv8-2f99", "moderate"),
        ("form-data", "GHSA-fjxv-7rqg-78g4", "critical"),
    ]
    assert audit.npm_audit_findings("x", fixture("npm-audit-clean.json")) == []


def test_npm_audit_endpoint_refusing_is_not_a_pass():
    # Recorded here: the registry's audit endpoint answers 405.
    with pytest.raises(audit.AdvisoriesUnavailable) as raised:
        audit.npm_audit_findings("frontend/package-lock.json", fixture("npm-audit-405.json"))
    assert raised.value.code == 3
    assert str(raised.value).startswith(
        "audit: npm audit got no report for frontend/package-lock.json (405: 405 Method Not Allowed - POST "
    )


@pytest.mark.parametrize(
    "threshold,failing",
    [
        ("critical", ["form-data"]),
        ("high", ["cross-spawn", "form-data"]),
        ("moderate", ["cross-spawn", "esbuild", "form-data"]),
        ("low", ["brace-expansion", "cross-spawn", "esbuild", "form-data"]),
    ],
)
def test_threshold(threshold, failing):
    findings = audit.npm_audit_findings("lock", fixture("npm-audit-findings.json"))
    fails, excused = audit.judge(findings, [], threshold, TODAY)
    assert sorted(f.package for f in fails) == failing and excused == []


def test_findings_without_severity_fail_at_any_threshold():
    findings = audit.pip_audit_findings("lock", fixture("pip-audit-findings.json"))
    assert len(audit.judge(findings, [], "critical", TODAY)[0]) == 3


def test_allow_list_excuses_by_id_or_alias_until_it_expires():
    findings = audit.pip_audit_findings("lock", fixture("pip-audit-findings.json"))
    entries = allowed(("GHSA-f96h-pmfr-66vw", "2026-12-31"), ("CVE-2024-56201", "2026-11-23"))
    fails, excused = audit.judge(findings, entries, "high", TODAY)
    assert [f.advisory for f in excused] == ["GHSA-f96h-pmfr-66vw", "PYSEC-2024-139"]
    assert [f.advisory for f in fails] == ["GHSA-q2x7-8rv6-6q7h"]
    # The day after the entry's expiry it excuses nothing.
    fails, _ = audit.judge(findings, entries, "high", TODAY + datetime.timedelta(days=1))
    assert [f.advisory for f in fails] == ["GHSA-q2x7-8rv6-6q7h", "PYSEC-2024-139"]
    assert audit.expired(entries, TODAY + datetime.timedelta(days=1)) == entries[1:]


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"reason": "r", "expires": "2027-01-01"}, "audit.allow entry 1 has no id: each needs id, reason, expires"),
        ({"id": "GHSA-1", "expires": "2027-01-01"}, "audit.allow entry 1 has no reason"),
        ({"id": "GHSA-1", "reason": " "}, "audit.allow entry 1 has no reason, expires"),
        ({"id": "GHSA-1", "reason": "r", "expires": "soon"}, "audit.allow entry GHSA-1: expires 'soon' is not a"),
    ],
)
def test_allow_list_entries_need_id_reason_and_expiry(entry, message):
    with pytest.raises(Problem, match=message):
        audit.allow_list([entry])


def test_yaml_dates_are_taken_as_they_come():
    [entry] = audit.allow_list([{"id": "GHSA-1", "reason": "r", "expires": datetime.date(2027, 1, 1)}])
    assert entry.expires == datetime.date(2027, 1, 1)


def test_unknown_threshold_is_a_problem():
    with pytest.raises(Problem, match="audit.fail_on is 'severe'; use one of info, low, moderate, high, critical"):
        audit.judge([], [], "severe", TODAY)


def context(allow=(), fail_on="high"):
    return MockContext(config=project_config(audit={"allow": list(allow), "fail_on": fail_on}))


def test_expired_entry_fails_before_any_service_is_asked(monkeypatch):
    monkeypatch.setattr(audit, "collect", lambda c: pytest.fail("asked the advisory services"))
    c = context([{"id": "GHSA-old", "reason": "waiting for 2.0", "expires": "2026-11-22"}])
    with pytest.raises(Problem) as raised:
        audit.run(c, today=TODAY)
    assert raised.value.code == 1
    assert str(raised.value) == (
        "audit: expired audit.allow entries: GHSA-old (expired 2026-11-22, waiting for 2.0): "
        "fix the dependency or renew the entry with a new date"
    )


def test_run_reports_allowed_and_failing_findings(monkeypatch):
    findings = audit.npm_audit_findings("lock", fixture("npm-audit-findings.json"))
    monkeypatch.setattr(audit, "collect", lambda c: findings)
    lines = []
    c = context([{"id": "GHSA-fjxv-7rqg-78g4", "reason": "form-data only in the test tools", "expires": "2027-01-31"}])
    with pytest.raises(Problem, match=r"^audit: 1 known vulnerabilities at or above high; see above$"):
        audit.run(c, today=TODAY, out=lines.append)
    assert [line.split(":")[0] for line in lines] == ["allowed  lock", "FAIL     lock"]
    assert "GHSA-3xgq-45jj-v275" in lines[1]


def test_run_passes_below_the_threshold(monkeypatch):
    monkeypatch.setattr(audit, "collect", lambda c: audit.npm_audit_findings("l", fixture("npm-audit-findings.json")))
    lines = []
    c = context(fail_on="critical", allow=[{"id": "GHSA-fjxv-7rqg-78g4", "reason": "r", "expires": "2027-01-01"}])
    audit.run(c, today=TODAY, out=lines.append)
    assert lines[-1] == "audit: no known vulnerability at or above critical (4 finding(s) below it or allowed)"


def test_npm_audit_runs_in_the_dev_frontend_container_and_its_output_is_parsed():
    report = (FIXTURES / "npm-audit-405.json").read_text()
    c = MockContext(config=project_config(), run=Result(stdout=report, exited=1))
    assert audit.run_npm_audit(c)["statusCode"] == 405
    commands = [call.args[0] for call in c.run.call_args_list]
    assert any("run --rm --no-deps -T -e SKIP_DEPS_CHECK=true frontend npm audit --json" in cmd for cmd in commands)


def test_npm_audit_without_json_is_unavailable():
    c = MockContext(config=project_config(), run=Result(stdout="", stderr="npm error network ENOTFOUND\n", exited=1))
    with pytest.raises(audit.AdvisoriesUnavailable, match=r"npm audit gave no JSON \(npm error network ENOTFOUND\)"):
        audit.run_npm_audit(c)


def test_pip_audit_without_a_report_is_unavailable(tmp_path):
    c = MockContext(config=project_config(), run=Result(stderr="requests.exceptions.ConnectionError: api.osv.dev\n"))
    with pytest.raises(audit.AdvisoriesUnavailable, match="pip-audit got no report for requirements.txt"):
        audit.run_pip_audit(c, "requirements.txt", tmp_path / "requirements.txt", tmp_path)
