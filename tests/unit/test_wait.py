from stackctl.wait import wait_until


def test_wait_until_counts_errors_as_not_yet():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("connection refused")
        return True

    assert wait_until(flaky, timeout=5, interval=0) is not None and len(calls) == 3
    assert wait_until(lambda: False, timeout=0.05, interval=0.01) is None
