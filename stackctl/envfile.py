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


def render(example_text, secret_vars, keep=None, only_missing=False):
    """.env text from .env.example: each key takes its value from `keep` when it has one there,
    else the example's (secrets get a fresh value). With only_missing, just the lines of keys
    `keep` lacks. Returns (text, keys given a value that was not in `keep`)."""
    keep = keep or {}
    lines, new_keys = [], []
    for line in example_text.splitlines():
        match = _ASSIGNMENT.match(line)
        key = match.group(1) if match else None
        if only_missing and (key is None or key in keep):
            continue
        if key in keep:
            line = f"{key}={keep[key]}"
        elif key in secret_vars:
            line = f"{key}={new_secret()}"
        lines.append(line)
        if key and key not in keep:
            new_keys.append(key)
    return ("\n".join(lines) + "\n" if lines else ""), new_keys


def backup_path(path):
    return Path(path).with_name(Path(path).name + ".bak")


def write_atomically(path, text, mode=0o600):
    """Replace path with text in one step: readers never see a half-written file. The file
    it replaces is kept as PATH.bak, with the same mode."""
    path = Path(path)
    if path.is_file():
        write_atomically_once(backup_path(path), path.read_text(), mode)
    write_atomically_once(path, text, mode)


def write_atomically_once(path, text, mode):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def assignments(text):
    """{key: raw value} of env-file text, as written (quotes and all), later lines winning."""
    values = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line)
        if match:
            values[match.group(1)] = line[match.end() :]
    return values


def create_or_complete(env_path, example_path, secret_vars, rewrite=False, regenerate=()):
    """Create .env from .env.example, or complete an existing one with the keys it lacks.

    An existing value is never replaced: `rewrite` lays the file out anew from the example,
    keeping every value it had (keys the example lacks are kept at the end), and only the
    secrets named in `regenerate` get new values. Returns ("created" | "completed" |
    "rewritten" | "unchanged", keys given a new value).
    """
    env_path, example_text = Path(env_path), Path(example_path).read_text()
    if not env_path.exists():
        text, keys = render(example_text, secret_vars)
        write_atomically(env_path, text)
        return "created", keys
    current = env_path.read_text()
    keep = {k: v for k, v in assignments(current).items() if k not in regenerate}
    if rewrite or regenerate:
        text, keys = render(example_text, secret_vars, keep=keep)
        extra = [f"{k}={v}" for k, v in keep.items() if k not in assigned_keys(example_text)]
        write_atomically(env_path, text + "".join(line + "\n" for line in extra))
        return "rewritten", keys
    text, keys = render(example_text, secret_vars, keep=keep, only_missing=True)
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
