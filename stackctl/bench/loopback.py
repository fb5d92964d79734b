"""The bench's one HTTP client (requests, as the tests use), held to 127.0.0.1: the bench
loads and edits only the stacks of its own copy, which publish nowhere else."""

from urllib.parse import urlsplit

import requests

from .. import Problem


def require_loopback(url):
    if urlsplit(url).hostname != "127.0.0.1":
        raise Problem(f"refusing to load {url}: only 127.0.0.1 is ever targeted")


def http(method, url, timeout=5, **kwargs):
    """One request (requests.request's keywords); raises OSError (requests' errors) when nothing answers."""
    require_loopback(url)
    return requests.request(method, url, timeout=timeout, **kwargs)
