import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from invoke import MockContext, Result

from stackctl import Problem, scan
from stackctl.copies import free_port
from tests.helpers import project_config

SECRET = "s3cr3t-value-0123456789"
SECRETS = scan.usable_secrets({"POSTGRES_PASSWORD": SECRET, "SHORT": "abc1234", "EMPTY": ""})


def pem(kind):
    body = base64.encodebytes(os.urandom(120)).decode()
    return f"-----BEGIN {kind}-----\n{body}-----END {kind}-----\n"


# The CA bundle every base image carries: certificates, never a finding.
CA_BUNDLE = pem("CERTIFICATE") + pem("CERTIFICATE")


def layer_tar(files):
    """An uncompressed layer tar: {path: bytes}; a None value makes a directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def scan_files(files):
    return scan.scan_layer("img", "layer 1", io.BytesIO(layer_tar(files)), SECRETS)


def test_usable_secrets_drop_short_and_empty_values():
    assert SECRETS == {"POSTGRES_PASSWORD": SECRET.encode()}


@pytest.mark.parametrize("user", ["", "0", "root", "0:0", "root:root", "root:1000", " "])
def test_root_users(user):
    [finding] = scan.check_user("img", {"User": user})
    assert finding.check == "user"
    assert finding.message.startswith("runs as root")


def test_no_user_key_is_root_and_non_root_users_pass():
    assert scan.check_user("img", {})[0].message == "runs as root (no USER set): add a non-root USER"
    assert scan.check_user("img", {"User": "root:0"})[0].message == "runs as root (USER root:0): add a non-root USER"
    for user in ["app", "1000", "1000:0", "65534:65534", "101"]:
        assert scan.check_user("img", {"User": user}) == []


@pytest.mark.parametrize("healthcheck", [None, {}, {"Test": []}, {"Test": ["NONE"]}])
def test_missing_or_disabled_healthcheck(healthcheck):
    assert scan.check_healthcheck("img", {"Healthcheck": healthcheck}) == [
        scan.Finding("img", "healthcheck", "no HEALTHCHECK in the image")
    ]


def test_healthcheck_present():
    assert scan.check_healthcheck("img", {"Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"]}}) == []


def test_secrets_in_config_fields_named_without_the_value():
    config = {
        "Env": ["PATH=/usr/bin", f"TOKEN={SECRET}"],
        "Labels": {"a": "b", "c": f"x{SECRET}y"},
        "Cmd": ["app", "--key", SECRET],
        "Entrypoint": None,
        "User": SECRET,
        "Healthcheck": {"Test": ["CMD", "curl", "-H", f"Authorization: {SECRET}"]},
    }
    findings = scan.check_config_secrets("img", config, SECRETS)
    assert [f.message for f in findings] == [
        f"value of POSTGRES_PASSWORD in config {field}" for field in ("Env", "Labels", "Cmd", "Healthcheck")
    ]
    assert scan.check_config_secrets("img", {"Env": ["SHORT=abc1234"]}, SECRETS) == []


def test_secret_in_a_label_name():
    assert scan.check_config_secrets("img", {"Labels": {SECRET: "x"}}, SECRETS)


def test_secrets_in_history_by_step():
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:abc in /"},
        {"created_by": "ARG TOKEN", "empty_layer": True},
        {"created_by": f"RUN |1 TOKEN={SECRET} /bin/sh -c echo $TOKEN # buildkit"},
        {"comment": "no created_by"},
        {"created_by": "RUN |1 SHORT=abc1234 /bin/sh -c true"},
    ]
    assert [str(f) for f in scan.check_history_secrets("img", history, SECRETS)] == [
        "img: secret: value of POSTGRES_PASSWORD in history step 3 of 5"
    ]


def test_layer_walk_flags_env_files_keys_and_secrets():
    findings = scan_files(
        {
            "app": None,
            "app/.env": f"POSTGRES_PASSWORD={SECRET}\n".encode(),
            "app/.env.production": b"DEBUG=false\n",
            "app/.env.example": b"POSTGRES_PASSWORD=\n",
            "app/settings.py": f"KEY = '{SECRET}'\n".encode(),
            "app/short.txt": b"abc1234\n",
            "root/.ssh/id_rsa": pem("RSA PRIVATE KEY").encode(),
            "srv/tls/server.key": pem("EC PRIVATE KEY").encode(),
            "srv/tls/pkcs8.pem": pem("PRIVATE KEY").encode(),
            "home/u/.ssh/id_ed25519": pem("OPENSSH PRIVATE KEY").encode(),
            "etc/ssl/certs/ca-certificates.crt": CA_BUNDLE.encode(),
            "srv/tls/server.pem": pem("CERTIFICATE").encode(),
            "srv/tls/public.pem": pem("PUBLIC KEY").encode(),
            "usr/lib/python3/site-packages/ssh.py": b'_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"\n',
            "usr/lib/libgnutls.so": b"\x7fELF\x02\x01" + pem("PRIVATE KEY").encode(),
        }
    )
    assert sorted(str(f) for f in findings) == sorted(
        [
            "img: env-file: environment file /app/.env in layer 1",
            "img: env-file: environment file /app/.env.production in layer 1",
            "img: secret: value of POSTGRES_PASSWORD in /app/.env in layer 1",
            "img: secret: value of POSTGRES_PASSWORD in /app/settings.py in layer 1",
            "img: private-key: private key in /root/.ssh/id_rsa in layer 1",
            "img: private-key: private key in /srv/tls/server.key in layer 1",
            "img: private-key: private key in /srv/tls/pkcs8.pem in layer 1",
            "img: private-key: private key in /home/u/.ssh/id_ed25519 in layer 1",
        ]
    )


def test_encrypted_private_key_is_flagged():
    key = pem("RSA PRIVATE KEY").replace(
        "-----\n", "-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0A1B2C3D4E5F60718293A4B5C6D7E8F9\n\n", 1
    )
    assert [f.check for f in scan_files({"key.pem": key.encode()})] == ["private-key"]


def test_whiteouts_are_not_env_files_and_dot_slash_names_are_normalised():
    assert scan_files({"app/.wh..env": b"", "./srv/.env": b"X=1\n"}) == [
        scan.Finding("img", "env-file", "environment file /srv/.env in layer 1")
    ]


def test_big_files_are_checked_by_name_only(monkeypatch):
    monkeypatch.setattr(scan, "MAX_CONTENT_BYTES", 100)
    big = SECRET.encode() + b"x" * 200
    assert [str(f) for f in scan_files({"data.bin": big, ".env.local": big})] == [
        "img: env-file: environment file /.env.local in layer 1"
    ]


def test_secret_in_a_file_name_is_reported_redacted():
    [finding] = scan_files({f"tmp/{SECRET}.txt": b"nothing"})
    assert finding.message == "value of POSTGRES_PASSWORD in the name of /tmp/<POSTGRES_PASSWORD>.txt in layer 1"


def saved_image(tmp_path, layers, history, oci=False, gzip_layers=False):
    """A `docker save` archive: legacy (<id>/layer.tar, duplicates as symlinks) or OCI (blobs/sha256)."""

    def add(tar, name, data=None, link=None):
        info = tarfile.TarInfo(name)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    archive = tmp_path / "image.tar"
    config = json.dumps({"config": {}, "history": history}).encode()
    with tarfile.open(archive, "w") as tar:
        paths, seen = [], {}
        for files in layers:
            data = layer_tar(files)
            data = gzip.compress(data) if gzip_layers else data
            digest = hashlib.sha256(data).hexdigest()
            if oci:
                path = f"blobs/sha256/{digest}"
                if digest not in seen:
                    add(tar, path, data)
            else:
                path = f"{hashlib.sha256(str(len(paths)).encode()).hexdigest()}/layer.tar"
                if digest in seen:
                    add(tar, path, link=f"../{seen[digest].split('/')[0]}/layer.tar")
                else:
                    add(tar, path, data)
            seen.setdefault(digest, path)
            paths.append(path)
        config_path = "blobs/sha256/" + hashlib.sha256(config).hexdigest() if oci else "abc.json"
        add(tar, config_path, config)
        add(
            tar,
            "manifest.json",
            json.dumps([{"Config": config_path, "RepoTags": ["img:latest"], "Layers": paths}]).encode(),
        )
    return archive


LAYERS = [
    {"etc/ssl/certs/ca-certificates.crt": CA_BUNDLE.encode()},
    {"tmp/leak.txt": SECRET.encode()},
    {"tmp/.wh.leak.txt": b""},
    {"tmp/leak.txt": SECRET.encode()},
]  # identical to layer 2: saved and scanned once
HISTORY = [
    {"created_by": "ADD rootfs.tar /"},
    {"created_by": "ENV A=b", "empty_layer": True},
    {"created_by": "COPY leak.txt /tmp/"},
    {"created_by": "RUN rm /tmp/leak.txt"},
    {"created_by": f"LABEL token={SECRET}", "empty_layer": True},
    {"created_by": "COPY leak.txt /tmp/"},
]


@pytest.mark.parametrize("oci,gzip_layers", [(False, False), (True, False), (True, True)])
def test_saved_image_layers_and_history(tmp_path, oci, gzip_layers):
    archive = saved_image(tmp_path, LAYERS, HISTORY, oci=oci, gzip_layers=gzip_layers)
    assert [str(f) for f in scan.scan_saved("img", archive, SECRETS)] == [
        "img: secret: value of POSTGRES_PASSWORD in history step 5 of 6",
        # Deleted by the next layer, still in the image.
        "img: secret: value of POSTGRES_PASSWORD in /tmp/leak.txt in layer 2 (history step 3)",
    ]


def test_layers_without_matching_history_are_numbered_only(tmp_path):
    archive = saved_image(tmp_path, LAYERS[:2], [])
    assert [f.message for f in scan.scan_saved("img", archive, SECRETS)] == [
        "value of POSTGRES_PASSWORD in /tmp/leak.txt in layer 2"
    ]


def test_scan_image_combines_config_and_layers(tmp_path, monkeypatch):
    archive = saved_image(tmp_path, LAYERS, HISTORY)
    inspect = json.dumps([{"Config": {"User": "", "Env": [f"K={SECRET}"], "Healthcheck": None}}])
    c = MockContext(config=project_config(), run={"docker image inspect img:1": Result(stdout=inspect)})
    saved = []
    monkeypatch.setattr(
        scan, "save_image", lambda c, image, target: saved.append(image) or shutil.copyfile(archive, target)
    )
    findings = scan.scan_image(c, "img:1", {"POSTGRES_PASSWORD": SECRET, "SHORT": "abc1234"})
    assert saved == ["img:1"]
    assert [f.check for f in findings] == ["user", "healthcheck", "secret", "secret", "secret"]
    assert [f.message for f in findings][2] == "value of POSTGRES_PASSWORD in config Env"
    assert all(SECRET not in str(f) for f in findings)


def test_missing_image_is_a_problem():
    c = MockContext(
        config=project_config(),
        run={"docker image inspect todostack/backend:latest": Result(exited=1, stderr="Error: No such image")},
    )
    with pytest.raises(Problem, match=r"image todostack/backend:latest not found: run `inv build --prod`"):
        scan.scan_image(c, "todostack/backend:latest", {})


def test_save_runs_docker_save_to_the_file(tmp_path):
    c = MockContext(config=project_config(), run=Result())
    scan.save_image(c, "img:1", tmp_path / "a b.tar")
    c.run.assert_called_once_with(f"docker save -o '{tmp_path}/a b.tar' img:1", hide=True, warn=True)


def test_configured_secrets_take_the_secret_variables_that_are_set():
    c = MockContext(config=project_config())
    # SECRET_KEY: left over in an older .env; no longer one of the secret variables.
    env = {"POSTGRES_PASSWORD": SECRET, "SECRET_KEY": "left-over-0123456789", "POSTGRES_USER": "app"}
    assert scan.configured_secrets(c, env) == {"POSTGRES_PASSWORD": SECRET}
    assert scan.configured_secrets(c, {**env, "POSTGRES_PASSWORD": ""}) == {}


# --- the running stack's security headers -------------------------------------------------

GOOD_HEADERS = [
    ("Content-Security-Policy", "default-src 'self'; script-src 'self'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Permissions-Policy", "camera=()"),
]


def replaced(name, value):
    """GOOD_HEADERS with one header's value replaced (None: left out)."""
    return [(key, value if key == name else old) for key, old in GOOD_HEADERS if key != name or value is not None]


def test_good_headers_have_no_problems():
    assert scan.header_problems(GOOD_HEADERS) == []
    assert scan.header_problems([(name.lower(), value) for name, value in GOOD_HEADERS]) == []


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("Content-Security-Policy", None, "no Content-Security-Policy"),
        ("Content-Security-Policy", "script-src 'self'; frame-ancestors 'none'", "without default-src"),
        (
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'; script-src 'self' 'unsafe-inline'",
            "lets scripts run from 'unsafe-inline'",
        ),
        ("Content-Security-Policy", "default-src * ; frame-ancestors 'none'", "lets scripts run from *"),
        ("Content-Security-Policy", "default-src 'self'", "without frame-ancestors 'none'"),
        ("X-Frame-Options", None, "X-Frame-Options is None, not DENY"),
        ("X-Frame-Options", "SAMEORIGIN", "X-Frame-Options is 'SAMEORIGIN', not DENY"),
        ("X-Content-Type-Options", None, "not nosniff"),
        ("Referrer-Policy", "unsafe-url", "Referrer-Policy is 'unsafe-url', not one of"),
        ("Referrer-Policy", None, "Referrer-Policy is None"),
        ("Permissions-Policy", None, "no Permissions-Policy"),
    ],
)
def test_each_missing_or_weak_header_is_one_problem(name, value, problem):
    [found] = scan.header_problems(replaced(name, value))
    assert problem in found


def test_a_script_src_replaces_default_src_for_scripts():
    policy = "default-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'"
    assert scan.header_problems(replaced("Content-Security-Policy", policy)) == []


def test_a_header_sent_twice_is_a_problem():
    """What nginx does when a location adds a header that the server level adds too."""
    [found] = scan.header_problems([*GOOD_HEADERS, ("X-Content-Type-Options", "nosniff")])
    assert found == "x-content-type-options sent 2 times"


def test_a_list_valued_header_may_be_sent_twice():
    """nginx's gzip_vary adds Vary: Accept-Encoding next to the backend's Vary: Origin."""
    assert scan.header_problems([*GOOD_HEADERS, ("Vary", "Origin"), ("Vary", "Accept-Encoding")]) == []


@pytest.fixture
def origin():
    """A real HTTP origin on a free loopback port answering every GET with .headers."""

    class Handler(BaseHTTPRequestHandler):
        headers_sent = list(GOOD_HEADERS)

        def do_GET(self):  # noqa: N802 (the http.server API)
            self.send_response(200)
            for name, value in Handler.headers_sent:
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}", handler=Handler)
    server.shutdown()
    server.server_close()


def test_origin_headers_checks_the_page_and_the_api(origin):
    assert scan.origin_headers(origin.url) == [
        (f"headers of {origin.url}/", []),
        (f"headers of {origin.url}/api/v1/todos", []),
    ]
    origin.handler.headers_sent = replaced("X-Frame-Options", None)
    [(subject, [finding]), _] = scan.origin_headers(origin.url)
    assert subject == f"headers of {origin.url}/"
    assert (finding.image, finding.check) == (subject, "headers")
    assert str(finding).endswith("headers: X-Frame-Options is None, not DENY")


def test_origin_headers_of_a_stack_that_is_not_up_says_so():
    url = f"http://127.0.0.1:{free_port()}"
    [(subject, findings), _] = scan.origin_headers(url)
    assert findings is None
    assert subject == f"headers of {url}/: connection refused; is the prod stack up (`inv up --prod`)?"


# --- the prod stack's containers ----------------------------------------------------------

# A running container's `docker inspect` document, recorded (tests/unit/fixtures): user
# 1000:1000, a label, and a password in its environment, as the prod stack passed its secrets
# before they became files.
RECORDED_SECRET = "fixture-secret-value-0123456789"
INSPECT = json.loads((Path(__file__).parent / "fixtures/docker-inspect-container.json").read_text())


def test_secret_in_the_inspect_output_is_named_by_field():
    secrets = scan.usable_secrets({"POSTGRES_PASSWORD": RECORDED_SECRET})
    assert [f.message for f in scan.check_inspect_secrets("supply-record", INSPECT, secrets)] == [
        "value of POSTGRES_PASSWORD in docker inspect Config.Env"
    ]


def test_secret_anywhere_in_the_inspect_output_is_found_and_never_shown():
    info = json.loads(json.dumps(INSPECT).replace(RECORDED_SECRET, "gone"))
    info["Args"] = ["--password", SECRET]
    info["Config"]["Labels"][f"x-{SECRET}"] = "label name"
    info["HostConfig"]["Binds"] = [f"/srv/{SECRET}:/data"]
    findings = scan.check_inspect_secrets("c1", info, SECRETS)
    assert sorted(f.message for f in findings) == [
        f"value of POSTGRES_PASSWORD in docker inspect {field}"
        for field in ("Args", "Config.Labels", "HostConfig.Binds")
    ]
    assert all(SECRET not in str(f) for f in findings)


def test_secrets_as_files_leave_only_paths_in_the_inspect_output():
    info = json.loads(json.dumps(INSPECT).replace(f"DB_PASSWORD={RECORDED_SECRET}", "DB_USER=app"))
    assert "DB_PASSWORD_FILE=/run/secrets/db_password" in info["Config"]["Env"]
    assert scan.check_inspect_secrets("c1", info, scan.usable_secrets({"POSTGRES_PASSWORD": RECORDED_SECRET})) == []


def proc_with(tmp_path, pid, uid):
    (tmp_path / str(pid)).mkdir()
    (tmp_path / str(pid) / "status").write_text(f"Name:\tpostgres\nPid:\t{pid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    return tmp_path


def test_container_with_a_non_root_user_passes_without_looking_at_its_process(tmp_path):
    assert INSPECT["Config"]["User"] == "1000:1000"
    assert scan.check_container_user("c1", INSPECT, proc=tmp_path) == []


def test_container_without_user_is_judged_by_its_main_process(tmp_path):
    info = {**INSPECT, "Config": {**INSPECT["Config"], "User": ""}, "State": {**INSPECT["State"], "Pid": 4242}}
    # An entrypoint that drops to the postgres user (uid 999) before exec'ing the server.
    assert scan.check_container_user("db", info, proc=proc_with(tmp_path, 4242, 999)) == []
    root = {**info, "State": {"Pid": 5151}}
    [finding] = scan.check_container_user("db", root, proc=proc_with(tmp_path, 5151, 0))
    assert finding.message == "runs as root (no user set, its main process has uid 0): set a non-root user"
    [unreadable] = scan.check_container_user("db", {**info, "State": {"Pid": 1}}, proc=tmp_path / "nothing")
    assert unreadable.message == "runs as root (no user set, its main process could not be read): set a non-root user"


def test_container_configured_as_root(tmp_path):
    info = {**INSPECT, "Config": {**INSPECT["Config"], "User": "0:0"}, "State": {"Pid": 77}}
    [finding] = scan.check_container_user("c1", info, proc=proc_with(tmp_path, 77, 0))
    assert finding.message == "runs as root (user 0:0, its main process has uid 0): set a non-root user"


def test_scan_containers_inspects_them_and_names_each(tmp_path):
    c = MockContext(
        config=project_config(), run={"docker container inspect abc def": Result(stdout=json.dumps([INSPECT, INSPECT]))}
    )
    findings = scan.scan_containers(c, ["abc", "def"], {"POSTGRES_PASSWORD": RECORDED_SECRET}, proc=tmp_path)
    assert [str(f) for f in findings] == [
        "supply-record: secret: value of POSTGRES_PASSWORD in docker inspect Config.Env"
    ] * 2
    assert scan.scan_containers(c, [], {}) == []
