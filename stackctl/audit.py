"""`inv audit`: the locked dependencies against known vulnerabilities.

pip-audit checks the Python locks (backend/uv.lock as `uv export` writes it, and
requirements.txt), pinned with digests so that nothing is resolved or installed; `npm audit`
checks frontend/package-lock.json in the dev frontend container. Findings at or above
audit.fail_on fail, unless audit.allow lists their advisory (id or alias) with a reason and an
expiry date; an expired entry fails by itself. pip-audit reports no severity: a Python finding
fails whatever the threshold, unless allowed.

Where no advisory service answers (pip-audit then skips every package, npm audit returns no
report), the audit has checked nothing: that is its own outcome and exit code, never a pass.
"""

import datetime
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from . import ROOT, Problem
from .compose import docker_compose, stack_target
from .lint import leaving_no_objects, scratch_directory
from .sbom import export_uv_lock

SEVERITIES = ["info", "low", "moderate", "high", "critical"]
# Exit codes: 1 findings (or a bad allow-list), UNAVAILABLE when an advisory service did not answer.
UNAVAILABLE = 3
UNKNOWN = "unknown"  # pip-audit's findings: no severity in its report


class AdvisoriesUnavailable(Problem):
    """No advisory service answered: nothing was checked."""

    def __init__(self, message):
        super().__init__(message, code=UNAVAILABLE)


@dataclass(frozen=True)
class Finding:
    source: str  # which lock
    package: str
    version: str
    advisory: str  # GHSA-/PYSEC-/CVE- id
    aliases: tuple = ()
    severity: str = UNKNOWN
    title: str = ""

    def line(self):
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        where = f"{self.source}: {self.package} {self.version}"
        return f"{where}: {self.advisory}{also} [{self.severity}] {self.title}".rstrip()


@dataclass(frozen=True)
class Allowed:
    advisory: str
    reason: str
    expires: datetime.date


def allow_list(entries):
    """The allow-list from invoke.yaml; Problem for an entry without an id, reason or expiry."""
    allowed = []
    for number, entry in enumerate(entries or [], start=1):
        entry = dict(entry)
        missing = [key for key in ("id", "reason", "expires") if not str(entry.get(key) or "").strip()]
        if missing:
            raise Problem(
                f"audit: audit.allow entry {number} has no {', '.join(missing)}: each needs id, reason, expires"
            )
        expires = entry["expires"]
        if not isinstance(expires, datetime.date):
            try:
                expires = datetime.date.fromisoformat(str(expires))
            except ValueError:
                raise Problem(
                    f"audit: audit.allow entry {entry['id']}: expires {expires!r} is not a YYYY-MM-DD date"
                ) from None
        allowed.append(Allowed(str(entry["id"]), str(entry["reason"]), expires))
    return allowed


def expired(allowed, today):
    return [entry for entry in allowed if entry.expires < today]


def pip_audit_findings(source, report):
    """Findings in pip-audit's JSON (`--format json`); AdvisoriesUnavailable when it could not
    look packages up (every one it skipped is a package nobody checked)."""
    dependencies = report.get("dependencies") or []
    skipped = [d for d in dependencies if d.get("skip_reason")]
    if skipped:
        raise AdvisoriesUnavailable(
            f"audit: pip-audit could not look up {len(skipped)} of {len(dependencies)} packages of {source} "
            f"({skipped[0]['skip_reason'].split(':')[0]}): the advisory service did not answer; nothing is known"
        )
    return [
        Finding(source, d["name"], d.get("version", ""), v["id"], tuple(v.get("aliases") or ()), UNKNOWN,
                (v.get("description") or "").split("\n")[0][:100])
        for d in dependencies
        for v in d.get("vulns") or []
    ]  # fmt: skip


def npm_audit_findings(source, report):
    """Findings in `npm audit --json` (auditReportVersion 2): one per advisory and package;
    AdvisoriesUnavailable when the output is an error instead of a report."""
    if "auditReportVersion" not in report:
        error = report.get("error") or {}
        summary = error.get("summary") or report.get("message") or "no report"
        code = error.get("code") or report.get("statusCode") or "error"
        raise AdvisoriesUnavailable(
            f"audit: npm audit got no report for {source} ({code}: "
            f"{summary.splitlines()[0]}): the advisory service did not answer; nothing is known"
        )
    findings = {}
    for package, vulnerability in (report.get("vulnerabilities") or {}).items():
        # `via` names the advisories (objects) and the vulnerable packages it depends on (names).
        for via in vulnerability.get("via") or []:
            if not isinstance(via, dict):
                continue
            advisory = (via.get("url") or "").rstrip("/").rsplit("/", 1)[-1] or str(via.get("source"))
            findings[(package, advisory)] = Finding(
                source, package, vulnerability.get("range", ""), advisory, (), via.get("severity", UNKNOWN),
                via.get("title", ""),
            )  # fmt: skip
    return list(findings.values())


def at_or_above(severity, threshold):
    """Whether a finding of this severity fails at the threshold; an unknown one always does."""
    if severity not in SEVERITIES:
        return True
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


def judge(findings, allowed, threshold, today):
    """(failing findings, findings the allow-list excuses) at the threshold."""
    if threshold not in SEVERITIES:
        raise Problem(f"audit: audit.fail_on is {threshold!r}; use one of {', '.join(SEVERITIES)}")
    valid = {entry.advisory for entry in allowed if entry.expires >= today}
    failing, excused = [], []
    for finding in findings:
        if not at_or_above(finding.severity, threshold):
            continue
        (excused if valid & {finding.advisory, *finding.aliases} else failing).append(finding)
    return failing, excused


def last_line(result):
    """The last line of a command's error output (a tool's own one-line verdict), shortened."""
    return (result.stderr.strip().splitlines() or ["no error output"])[-1][:160]


def run_pip_audit(c, source, requirements, directory):
    """pip-audit's JSON report of a requirements file pinned with digests (nothing resolved)."""
    output = Path(directory) / f"pip-audit-{Path(requirements).stem}.json"
    args = ["pip-audit", "--requirement", str(requirements), "--require-hashes", "--disable-pip",
            "--format", "json", "--progress-spinner", "off", "--output", str(output)]  # fmt: skip
    result = c.run(shlex.join(args), hide=True, warn=True)
    if not output.is_file() or not output.read_text().strip():
        raise AdvisoriesUnavailable(
            f"audit: pip-audit got no report for {source} ({last_line(result)}); nothing is known"
        )
    return json.loads(output.read_text())


def run_npm_audit(c):
    """`npm audit --json` of the lock, in the dev frontend container: its parsed output."""
    target = stack_target(c)
    with leaving_no_objects(c, target):
        result = docker_compose(
            c,
            target,
            "run --rm --no-deps -T -e SKIP_DEPS_CHECK=true frontend npm audit --json --package-lock-only",
            hide=True,
            warn=True,
        )
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise AdvisoriesUnavailable(f"audit: npm audit gave no JSON ({last_line(result)}); nothing is known") from None


def collect(c):
    """Every finding of every lock. AdvisoriesUnavailable as soon as one tool got no answer."""
    with scratch_directory() as directory:
        findings = pip_audit_findings(
            "backend/uv.lock", run_pip_audit(c, "backend/uv.lock", export_uv_lock(c, directory), directory)
        )
        findings += pip_audit_findings(
            "requirements.txt", run_pip_audit(c, "requirements.txt", ROOT / "requirements.txt", directory)
        )
    return findings + npm_audit_findings("frontend/package-lock.json", run_npm_audit(c))


def run(c, today=None, out=print):
    """`inv audit`: the allow-list first (an expired entry fails without asking anyone), then
    every lock; Problem on a failing finding, AdvisoriesUnavailable when nothing was checked."""
    today = today or datetime.date.today()
    threshold = c.config.audit.fail_on
    allowed = allow_list(c.config.audit.allow)
    stale = expired(allowed, today)
    if stale:
        raise Problem(
            "audit: expired audit.allow entries: "
            + "; ".join(f"{e.advisory} (expired {e.expires}, {e.reason})" for e in stale)
            + ": fix the dependency or renew the entry with a new date"
        )
    findings = collect(c)
    failing, excused = judge(findings, allowed, threshold, today)
    for finding in excused:
        out(f"allowed  {finding.line()}")
    for finding in failing:
        out(f"FAIL     {finding.line()}")
    if failing:
        raise Problem(f"audit: {len(failing)} known vulnerabilities at or above {threshold}; see above")
    out(f"audit: no known vulnerability at or above {threshold} ({len(findings)} finding(s) below it or allowed)")
