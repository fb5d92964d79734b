"""Logic behind the Invoke tasks in tasks.py, one module per concern. Functions take the
Invoke context, so tests drive them with a MockContext; a task chooses its stack target once
(`compose.stack_target`) and passes it down.

    compose     the stack target and the one place `docker compose` command lines are made
    stack       a target's services, containers, health (`up --wait`), published URLs, `down`
    copies      an isolated copy of the working tree, for the bench and the tests
    wait        the one polling loop, for what Compose cannot wait for
    engine      is there an engine and Compose v2; `docker image inspect`
    provision   `setup --engine` / `--test-tools`: engine, Compose plugin (digest-checked), tools
    envfile     reading and writing .env files (atomically, the previous one kept)
    secrets     .env's secrets, never replaced while a database volume uses them
    confirm     asking before a task destroys data
    database    psql in a stack's postgres: a database's revision and row counts
    migrations  the code's Alembic revisions, the gate on unknown ones, `alembic check`
    backup      `inv db-backup` / `inv db-restore`: pg_dump archives, checked in a scratch database
    bases       local base images from Debian packages, when no registry answers
    images      the images a target builds, building them one by one, measuring them
    budgets     judging figures against budgets, their tables and JSON reports
    doctor      `inv doctor`'s checks; ports: who holds a host port
    lint        `inv lint`: every linter, one function each
    scan        `inv scan`: what the production images must not contain
    releases    a release's images in a registry: `inv registry`, `inv push`, digests to deploy by
    swarm       `inv deploy`: the stack file made from the prod file, migrations first, rollbacks
    smoke       `inv smoke`: readiness, then the tests/smoke suite against a base URL
    bench/      `inv bench`: builds, start-up, reloads and load, measured in a copy
"""

from pathlib import Path

from invoke.exceptions import Exit

ROOT = Path(__file__).resolve().parent.parent


class Problem(Exit):
    """An expected failure. Its message is one line: what is wrong and how to fix it.
    Uncaught, Invoke prints it without a traceback and exits 1."""

    def __str__(self):
        return self.message
