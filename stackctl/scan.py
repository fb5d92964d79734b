"""`inv scan`: security checks of built images, and of the prod stack's containers and headers.

An image fails when it runs as root, has no HEALTHCHECK, or carries a `.env` file,
a private key or the value of one of the project's secrets anywhere: in a file of
any layer (a file a later layer deletes is still in the image), in its config (Env,
Labels, Cmd, Entrypoint, Healthcheck) or in its build history (a build ARG used in
a RUN is recorded there). Messages name the secret's variable, never its value.

Layers are read from `docker save`; history steps are numbered oldest first, as in
the image's config (`docker history` lists them newest first).

The running prod stack, when it is up, is checked from outside as a reviewer would: its
public origin's page and an API answer must carry a Content-Security-Policy that lets no
foreign or inline script run and no one frame the app, X-Frame-Options DENY, nosniff, a
Referrer-Policy that sends no path to other origins, a Permissions-Policy, each header once.

The prod stack's containers (running or stopped) are checked too: no secret value anywhere in their
`docker inspect` document (Env, Cmd, Args, Labels, mounts: every string in it), and their
main process not root. A container configured without a user (postgres: its entrypoint
starts as root and drops to the postgres user) is judged by the uid its main process has,
read from /proc on the engine's host.
"""

import json
import posixpath
import re
import shlex
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import requests

from . import Problem
from .engine import inspect_image
from .smoke import Client, describe_error

# Files larger than this are checked by name only (a key or a .env file is small).
MAX_CONTENT_BYTES = 50 * 1024 * 1024
# Shorter values are too likely to occur by chance (`app`, `postgres`).
MIN_SECRET_LENGTH = 8
ROOT_USERS = {"", "0", "root"}
CONFIG_FIELDS = ("Env", "Labels", "Cmd", "Entrypoint", "Healthcheck")
# A whole PEM private key block: header, base64 body (encrypted keys carry
# Proc-Type/DEK-Info lines), matching footer. Certificates and public keys never match;
# neither does code that merely names the header (e.g. a parser's constant). Compiled
# programs and libraries are not checked: GnuTLS carries its FIPS self-test keys.
PRIVATE_KEY = re.compile(
    rb"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----"
    rb"[A-Za-z0-9+/=\s:,\-]{32,}?-----END \1PRIVATE KEY-----"
)
ELF = b"\x7fELF"


@dataclass(frozen=True)
class Finding:
    image: str  # the image, or the container, checked
    check: str  # user, healthcheck, env-file, private-key, secret
    message: str  # one line: what and where; never a secret's value

    def __str__(self):
        return f"{self.image}: {self.check}: {self.message}"


def usable_secrets(secrets):
    """{variable: value encoded} for the values long enough to search for."""
    return {name: value.encode() for name, value in secrets.items() if value and len(value) >= MIN_SECRET_LENGTH}


def redact(text, secrets):
    """text with every secret value replaced by its variable's name."""
    for name, value in secrets.items():
        text = text.replace(value.decode(errors="replace"), f"<{name}>")
    return text


def check_user(image, config):
    """The configured user (`USER`): root when unset, 0 or root, with any group."""
    user = (config.get("User") or "").strip()
    if user.split(":")[0] in ROOT_USERS:
        shown = f"USER {user}" if user else "no USER set"
        return [Finding(image, "user", f"runs as root ({shown}): add a non-root USER")]
    return []


def check_healthcheck(image, config):
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return [Finding(image, "healthcheck", "no HEALTHCHECK in the image")]
    return []


def check_config_secrets(image, config, secrets):
    """Secret values in the image config (secrets as usable_secrets returns them)."""
    findings = []
    for field in CONFIG_FIELDS:
        text = "\n".join(strings(config.get(field))).encode()
        findings += [
            Finding(image, "secret", f"value of {name} in config {field}")
            for name, value in secrets.items()
            if value in text
        ]
    return findings


def strings(value):
    """Every string in a JSON value: list items, dict keys and values, recursively."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def check_history_secrets(image, history, secrets):
    """Secret values in the build history (`created_by` of each step, oldest first)."""
    findings = []
    for step, entry in enumerate(history, start=1):
        created_by = (entry.get("created_by") or "").encode()
        for name, value in secrets.items():
            if value in created_by:
                findings.append(Finding(image, "secret", f"value of {name} in history step {step} of {len(history)}"))
    return findings


def is_env_file(name):
    return name == ".env" or (name.startswith(".env.") and name != ".env.example")


def scan_layer(image, where, layer, secrets):
    """Findings in one layer tar (a binary file object, read as a stream).

    `where` says which layer, e.g. "layer 3 (history step 7)"; secrets as
    usable_secrets returns them.
    """
    findings = []
    with tarfile.open(fileobj=layer, mode="r|*") as members:
        for member in members:
            if not (member.isreg() or member.islnk()):
                continue
            path = "/" + member.name.removeprefix("./").lstrip("/")
            name = PurePosixPath(path).name
            if name.startswith(".wh."):  # a deletion marker: the file it deletes was checked
                continue
            shown = redact(path, secrets)
            if is_env_file(name):
                findings.append(Finding(image, "env-file", f"environment file {shown} in {where}"))
            for secret, value in secrets.items():
                if value in path.encode():
                    findings.append(Finding(image, "secret", f"value of {secret} in the name of {shown} in {where}"))
            if not member.isreg() or member.size > MAX_CONTENT_BYTES:
                continue
            data = members.extractfile(member).read()
            if not data.startswith(ELF) and b"PRIVATE KEY-----" in data and PRIVATE_KEY.search(data):
                findings.append(Finding(image, "private-key", f"private key in {shown} in {where}"))
            for secret, value in secrets.items():
                if value in data:
                    findings.append(Finding(image, "secret", f"value of {secret} in {shown} in {where}"))
    return findings


def layer_steps(history):
    """History step (1-based, oldest first) that created each layer, in layer order."""
    return [step for step, entry in enumerate(history, start=1) if not entry.get("empty_layer")]


def scan_saved(image, archive, secrets):
    """Findings in the layers and history of a `docker save` archive (legacy
    `<id>/layer.tar` and OCI `blobs/sha256/<digest>` layouts alike: both have
    manifest.json). Secrets as usable_secrets returns them."""
    findings = []
    with tarfile.open(archive) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))[0]
        history = json.load(saved.extractfile(manifest["Config"])).get("history") or []
        findings += check_history_secrets(image, history, secrets)
        steps = layer_steps(history)
        if len(steps) != len(manifest["Layers"]):
            steps = [None] * len(manifest["Layers"])
        scanned = set()
        for number, (path, step) in enumerate(zip(manifest["Layers"], steps, strict=True), start=1):
            member = saved.getmember(path)
            while member.issym():  # a layer already saved under another id is a symlink to it
                member = saved.getmember(
                    posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
                )
            if member.name in scanned:
                continue
            scanned.add(member.name)
            where = f"layer {number}" + (f" (history step {step})" if step else "")
            findings += scan_layer(image, where, saved.extractfile(member), secrets)
    return findings


def inspect_paths(value, path=""):
    """(field, string) for every string in a `docker inspect` document (keys too); the field
    is the dotted path of its first two keys, e.g. Config.Env, HostConfig.Binds, Args."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            inner = f"{path}.{key}" if path and path.count(".") < 1 else (path or key)
            found += [(inner, key), *inspect_paths(item, inner)]
        return found
    if isinstance(value, list):
        return [pair for item in value for pair in inspect_paths(item, path)]
    return []


def check_inspect_secrets(container, info, secrets):
    """Secret values (as usable_secrets returns them) in a container's `docker inspect`
    document, one finding per secret and field."""
    fields = {}
    for field, text in inspect_paths(info):
        for name, value in secrets.items():
            if value in text.encode():
                fields.setdefault((name, field), None)
    return [Finding(container, "secret", f"value of {name} in docker inspect {field}") for name, field in fields]


def process_uid(pid, proc=Path("/proc")):
    """The real uid of a process on this host (its /proc status), or None when unreadable."""
    try:
        status = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M)
    return int(uid.group(1)) if uid else None


def check_container_user(container, info, proc=Path("/proc")):
    """The container runs as a non-root user: its configured user, or, when none is set (an
    entrypoint that drops privileges itself), the uid of its main process."""
    user = ((info.get("Config") or {}).get("User") or "").strip()
    if user.split(":")[0] not in ROOT_USERS:
        return []
    uid = process_uid((info.get("State") or {}).get("Pid") or 0, proc)
    if uid is not None and uid != 0:
        return []
    shown = f"user {user}" if user else "no user set"
    seen = "its main process has uid 0" if uid == 0 else "its main process could not be read"
    return [Finding(container, "user", f"runs as root ({shown}, {seen}): set a non-root user")]


def inspect_containers(c, ids):
    """`docker container inspect` of the containers, as a list of dicts."""
    if not ids:
        return []
    result = c.run(f"docker container inspect {' '.join(shlex.quote(i) for i in ids)}", hide=True, warn=True)
    if not result.ok:
        raise Problem(f"docker container inspect failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(result.stdout)


def scan_containers(c, ids, secrets, proc=Path("/proc")):
    """Every finding in the containers (ids): secret values in their inspect output, root
    users. Findings name the container."""
    needles = usable_secrets(secrets)
    findings = []
    for info in inspect_containers(c, ids):
        name = (info.get("Name") or info.get("Id", "?")[:12]).lstrip("/")
        findings += check_container_user(name, info, proc) + check_inspect_secrets(name, info, needles)
    return findings


def image_config(c, image):
    """The image's config (`docker image inspect` .Config); Problem when it is not there."""
    info = inspect_image(c, image)
    if info is None:
        raise Problem(f"image {image} not found: run `inv build --prod`")
    return info["Config"] or {}


def save_image(c, image, archive):
    """`docker save` the image to the archive file."""
    result = c.run(f"docker save -o {shlex.quote(str(archive))} {shlex.quote(image)}", hide=True, warn=True)
    if not result.ok:
        lines = result.stderr.strip().splitlines()
        raise Problem(f"docker save {image} failed: {lines[-1] if lines else 'no error message'}")


def scan_image(c, image, secrets):
    """Every finding in one image. secrets: {variable: value}; values shorter than
    MIN_SECRET_LENGTH are ignored."""
    config = image_config(c, image)
    needles = usable_secrets(secrets)
    findings = check_user(image, config) + check_healthcheck(image, config)
    findings += check_config_secrets(image, config, needles)
    with tempfile.TemporaryDirectory(prefix="stackctl-scan-") as tmp:
        archive = Path(tmp) / "image.tar"
        save_image(c, image, archive)
        findings += scan_saved(image, archive, needles)
    return findings


def configured_secrets(c, env):
    """{variable: value} of the secret variables (invoke.yaml stack.secret_vars) set in env."""
    return {name: env[name] for name in c.config.stack.secret_vars if env.get(name)}


# --- the running prod stack's security headers ----------------------------------------------

# Checked on these paths of the public origin: the app's page (nginx's static files) and a
# proxied API answer (the backend's, with nginx's headers added).
HEADER_PATHS = ("/", "/api/v1/todos")
SAFE_REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
# Sources that let a script run that the app did not ship itself.
UNSAFE_SCRIPT_SOURCES = {"'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:", "data:", "blob:"}
# The headers checked here, each of which must be sent once: a second copy (a location that
# adds what the server level adds too) is enforced as well and drifts. List-valued headers
# such as Vary may be repeated (RFC 9110 5.3): nginx's gzip adds one next to the backend's.
SECURITY_HEADERS = (
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
)


def csp_directives(policy):
    """{directive: [sources]} of a Content-Security-Policy value (the first of a repeated
    directive counts, as in browsers)."""
    directives = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives.setdefault(words[0].lower(), words[1:])
    return directives


def header_problems(headers):
    """What is missing or weak in one response's headers ((name, value) pairs as sent)."""
    values = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(value.strip())
    problems = [f"{name} sent {len(values[name])} times" for name in SECURITY_HEADERS if len(values.get(name, ())) > 1]

    def one(name):
        return (values.get(name.lower()) or [None])[0]

    policy = one("Content-Security-Policy")
    if policy is None:
        problems.append("no Content-Security-Policy")
    else:
        directives = csp_directives(policy)
        if "default-src" not in directives:
            problems.append("Content-Security-Policy without default-src")
        scripts = directives.get("script-src", directives.get("default-src", ["*"]))
        unsafe = sorted(set(scripts) & UNSAFE_SCRIPT_SOURCES)
        if unsafe:
            problems.append(f"Content-Security-Policy lets scripts run from {' '.join(unsafe)}")
        if directives.get("frame-ancestors") != ["'none'"]:
            problems.append("Content-Security-Policy without frame-ancestors 'none'")
    if (one("X-Frame-Options") or "").upper() != "DENY":
        problems.append(f"X-Frame-Options is {one('X-Frame-Options')!r}, not DENY")
    if (one("X-Content-Type-Options") or "").lower() != "nosniff":
        problems.append(f"X-Content-Type-Options is {one('X-Content-Type-Options')!r}, not nosniff")
    if (one("Referrer-Policy") or "").lower() not in SAFE_REFERRER_POLICIES:
        problems.append(
            f"Referrer-Policy is {one('Referrer-Policy')!r}, not one of {', '.join(sorted(SAFE_REFERRER_POLICIES))}"
        )
    if not one("Permissions-Policy"):
        problems.append("no Permissions-Policy")
    return problems


def origin_headers(base_url):
    """[(subject, findings)] for the security headers of each of HEADER_PATHS on a running
    stack's public origin; findings None (and the subject says why) where it does not answer."""
    client = Client(base_url)
    checked = []
    for path in HEADER_PATHS:
        subject = f"headers of {client.base_url}{path}"
        try:
            response = client.get(path)
        except requests.RequestException as error:
            checked.append((f"{subject}: {describe_error(error)}; is the prod stack up (`inv up --prod`)?", None))
            continue
        problems = header_problems(response.raw.headers.items())
        checked.append((subject, [Finding(subject, "headers", problem) for problem in problems]))
    return checked
