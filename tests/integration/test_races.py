"""Concurrent writes to the same rows, through the frontend's origin: many clients PATCH and
DELETE the same todos at once, round after round. No request may get a server error; each
todo is deleted exactly once (one DELETE answers 204, the others 404); a PATCH updates the
todo (200) or finds it gone (404); afterwards every deleted todo is gone and the list's
total is what it was before the round."""

import collections
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

SEED = 20261123  # fixed: the same requests in the same order every run
ROUNDS = 5
TODOS = 20  # per round
DELETES_PER_TODO = 4
PATCHES_PER_TODO = 8
WORKERS = 24
TIMEOUT = 15


@pytest.fixture(scope="module")
def url(prod_stack):
    return prod_stack.url("PROD_PORT") + "/api/v1/todos"


class Clients:
    """One requests.Session (a keep-alive connection of its own) per worker thread."""

    def __init__(self):
        self.local = threading.local()
        self.sessions = []

    def session(self):
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.sessions.append(self.local.session)
        return self.local.session

    def send(self, job):
        """(method, id, status or None, response or the error) of one request."""
        method, url, todo_id, body = job
        try:
            response = self.session().request(method, f"{url}/{todo_id}", json=body, timeout=TIMEOUT)
        except requests.RequestException as error:
            return method, todo_id, None, error
        return method, todo_id, response.status_code, response

    def close(self):
        for session in self.sessions:
            session.close()


def first_page(url):
    response = requests.get(url, params={"limit": 100}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def jobs_for(url, ids, rng):
    """Every id's DELETEs and PATCHes in a random order, an id's requests next to each other:
    the workers take them at the same moment."""
    jobs = []
    for todo_id in ids:
        mine = [("DELETE", url, todo_id, None)] * DELETES_PER_TODO
        mine += [("PATCH", url, todo_id, {"title": f"raced {n}", "done": n % 2 == 0}) for n in range(PATCHES_PER_TODO)]
        rng.shuffle(mine)
        jobs += mine
    return jobs


def problems_in(results, ids):
    """What is wrong with the answers of one round."""
    deletes = collections.defaultdict(list)
    for method, todo_id, status, _ in results:
        if method == "DELETE":
            deletes[todo_id].append(status)
    problems = [
        f"DELETE {todo_id} answered {sorted(deletes[todo_id], key=str)}: not one 204 and the rest 404"
        for todo_id in ids
        if sorted(deletes[todo_id], key=str) != [204] + [404] * (DELETES_PER_TODO - 1)
    ]
    for method, todo_id, status, response in results:
        if status is None:
            problems.append(f"{method} {todo_id}: no answer ({response!r})")
        elif status >= 500 or status not in ((200, 404) if method == "PATCH" else (204, 404)):
            problems.append(
                f"{method} {todo_id}: {status} {response.headers.get('content-type')} {response.text[:200]!r}"
            )
        elif status != 204 and not response.headers.get("content-type", "").startswith("application/json"):
            problems.append(f"{method} {todo_id}: {status} not JSON ({response.headers.get('content-type')})")
        elif method == "PATCH" and status == 200 and response.json()["id"] != todo_id:
            problems.append(f"PATCH {todo_id}: 200 for another todo: {response.text[:200]}")
    return problems


def test_racing_patches_and_deletes_on_the_same_todos(url):
    rng = random.Random(SEED)
    clients = Clients()
    statuses = collections.Counter()
    problems = []
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for round_ in range(ROUNDS):
                before = first_page(url)["total"]
                ids = []
                for n in range(TODOS):
                    created = requests.post(url, json={"title": f"race {round_}.{n}"}, timeout=TIMEOUT)
                    assert created.status_code == 201, created.text
                    ids.append(created.json()["id"])
                results = list(pool.map(clients.send, jobs_for(url, ids, rng)))
                statuses.update((method, status) for method, _, status, _ in results)
                problems += [f"round {round_}: {problem}" for problem in problems_in(results, ids)]
                # The dust settled: every raced todo is gone, the list adds up.
                for todo_id in ids:
                    status = requests.get(f"{url}/{todo_id}", timeout=TIMEOUT).status_code
                    if status != 404:
                        problems.append(f"round {round_}: GET {todo_id} after its deletion: {status}")
                after = first_page(url)
                if after["total"] != before or set(ids) & {item["id"] for item in after["items"]}:
                    problems.append(f"round {round_}: list total {before} before, {after['total']} after")
    finally:
        clients.close()
    answers = dict(sorted(statuses.items(), key=str))
    print(f"races: {ROUNDS} rounds of {TODOS} todos; answers {answers}")
    assert not problems, f"{len(problems)} problems (answers {answers}), the first:\n" + "\n".join(problems[:20])
