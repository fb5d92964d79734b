"""The project's .env: created from .env.example with fresh secrets, checked for completeness."""
import os
import re
import secrets
import tempfile
from pathlib import Path

from dotenv import dotenv_values

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def read_env(path):
    """Variables of an env file ({} when it does not exist)."""
    path = Path(path)
    return dict(dotenv_values(path)) if path.is_file() else {}


def assigned_keys(text):
    """Variable names assigned in env-file text, in order."""
    return [m.group(1) for m in map(_ASSIGNMENT.match, text.splitlines()) if m]


def new_secret():
    # URL-safe, so it can go into a DATABASE_URL unquoted.
    return secrets.token_urlsafe(32)


def render(example_text, secret_vars, existing=None):
    """Lines of example_text missing from `existing` (all of them when it is None), with
    each secret variable given a fresh value. Returns (text, keys it assigns)."""
    lines, keys = [], []
    for line in example_text.splitlines():
        match = _ASSIGNMENT.match(line)
        key = match.group(1) if match else None
        if existing is not None and (key is None or key in existing):
            continue
        if key in secret_vars:
            line = f"{key}={new_secret()}"
        lines.append(line)
        if key:
            keys.append(key)
    return ("\n".join(lines) + "\n" if lines else ""), keys


def write_atomically(path, text, mode=0o600):
    """Replace path with text in one step: readers never see a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def create_or_complete(env_path, example_path, secret_vars, force=False):
    """Create .env from .env.example (or, when it exists, append the keys it lacks).

    Returns ("created" | "completed" | "unchanged", keys written). Never overwrites
    an existing .env unless force is true.
    """
    env_path, example_text = Path(env_path), Path(example_path).read_text()
    if force or not env_path.exists():
        text, keys = render(example_text, secret_vars)
        write_atomically(env_path, text)
        return "created", keys
    current = env_path.read_text()
    text, keys = render(example_text, secret_vars, existing=set(assigned_keys(current)))
    if not keys:
        return "unchanged", []
    separator = "" if current.endswith("\n") or not current else "\n"
    write_atomically(env_path, current + separator + text)
    return "completed", keys


def set_values(env_path, values):
    """Set KEY=VALUE lines in an env file, replacing existing assignments in place."""
    env_path = Path(env_path)
    lines = env_path.read_text().splitlines()
    pending = dict(values)
    for index, line in enumerate(lines):
        match = _ASSIGNMENT.match(line)
        if match and match.group(1) in pending:
            key = match.group(1)
            lines[index] = f"{key}={pending.pop(key)}"
    lines += [f"{key}={value}" for key, value in pending.items()]
    write_atomically(env_path, "\n".join(lines) + "\n")


def missing_keys(env_path, example_path):
    """Keys .env.example assigns that the env file does not."""
    present = set(assigned_keys(Path(env_path).read_text()))
    return [k for k in assigned_keys(Path(example_path).read_text()) if k not in present]
