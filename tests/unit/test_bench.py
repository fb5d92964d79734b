import json

import pytest
from invoke import MockContext

import tasks
from stackctl import Problem, bench, budgets
from stackctl.bench import loopback, machine, reload, wrk
from stackctl.bench.figures import Figures, summarise
from tests.helpers import project_config
from tests.unit.test_budgets import bench_report, figures

# Real wrk 4.1.0 output (Debian), run with --latency and the harness's done() hook (wrk.DONE).
WRK_GET = """\
Running 2s test @ http://127.0.0.1:18765/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    46.21ms   13.30ms 127.18ms   94.02%
    Req/Sec    86.24     14.77   121.00     71.43%
  Latency Distribution
     50%   44.01ms
     75%   47.79ms
     90%   49.45ms
     99%  127.18ms
  181 requests in 2.10s, 22.53KB read
Requests/sec:     86.02
Transfer/sec:     10.71KB
BENCH_WRK {"requests": 181, "duration_us": 2104199, "bytes": 23073, "errors": {"connect": 0, "read": 0, \
"write": 0, "status": 0, "timeout": 0}, "latency_us": {"p50": 44013, "p90": 49454, "p99": 127176, "max": 127179, \
"mean": 46208.5}, "statuses": {}}
"""

# The POST script (wrk.POST_TODO) against a server that answers 501: every response counts as an
# error (the same run's output, its latency lines left out).
WRK_POST_REJECTED = """\
Running 2s test @ http://127.0.0.1:18766/
  1 threads and 4 connections
  175 requests in 2.03s, 22.02KB read
  Non-2xx or 3xx responses: 175
Requests/sec:     86.05
BENCH_WRK {"requests": 175, "duration_us": 2033804, "bytes": 22546, "errors": {"connect": 0, "read": 0, \
"write": 0, "status": 175, "timeout": 0}, "latency_us": {"p50": 43886, "p90": 48377, "p99": 83248, "max": 84161, \
"mean": 44766.0}, "statuses": {}}
"""

# A GET/POST mix with wrk.COUNT_STATUSES, 2 threads: done() merged both threads' counts (latency
# lines left out).
WRK_MIX_COUNTED = """\
Running 2s test @ http://127.0.0.1:18765/
  2 threads and 4 connections
  167 requests in 2.04s, 20.49KB read
Requests/sec:     81.86
BENCH_WRK {"requests": 167, "duration_us": 2040015, "bytes": 20984, "errors": {"connect": 0, "read": 0, \
"write": 0, "status": 0, "timeout": 0}, "latency_us": {"p50": 44518, "p90": 54849, "p99": 125849, "max": 129723, \
"mean": 48548.9}, "statuses": {"201": 33, "200": 134}}
"""

# Real `docker stats --no-stream --format '{{json .}}'` lines.
DOCKER_STATS = """\
{"BlockIO":"0B / 0B","CPUPerc":"0.40%","Container":"bszrun-backend-1","ID":"ac7d5ab21cba","MemPerc":"0.64%",\
"MemUsage":"153.1MiB / 23.54GiB","Name":"bszrun-backend-1","NetIO":"8.7MB / 12.1MB","PIDs":"10"}
{"BlockIO":"0B / 0B","CPUPerc":"2.65%","Container":"bszrun-postgres-1","ID":"7f7946199666","MemPerc":"0.17%",\
"MemUsage":"40MiB / 23.54GiB","Name":"bszrun-postgres-1","NetIO":"9.09MB / 30.4MB","PIDs":"16"}
"""


# -- summarising -------------------------------------------------------------


def test_summary_is_median_min_max_of_the_runs():
    assert summarise([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3}
    assert summarise([4, 1, 2, 10]) == {"median": 3.0, "min": 1.0, "max": 10.0, "runs": 4}
    assert summarise([5.5]) == {"median": 5.5, "min": 5.5, "max": 5.5, "runs": 1}


def test_summary_of_nothing_is_empty_not_zero():
    assert summarise([]) == {"median": None, "min": None, "max": None, "runs": 0}


def test_figures_collect_runs_under_one_key():
    measured = Figures()
    measured.add("vite_hmr_s", "Vite HMR", "s", "reload", 0.4)
    measured.add("vite_hmr_s", "Vite HMR", "s", "reload", 0.2)
    measured.add("backend_reload_s", "backend reload", "s", "reload", 1.1)
    assert list(measured.metrics) == ["vite_hmr_s", "backend_reload_s"]
    assert measured.metrics["vite_hmr_s"].summary == {"median": pytest.approx(0.3), "min": 0.2, "max": 0.4, "runs": 2}


# -- wrk ---------------------------------------------------------------------


def test_wrk_result_comes_from_the_done_hook_line():
    result = wrk.parse(WRK_GET)
    assert result["requests"] == 181 and result["errors"] == 0
    assert result["rps"] == pytest.approx(181 / 2.104199)
    assert result["p50_ms"] == pytest.approx(44.013) and result["p99_ms"] == pytest.approx(127.176)
    assert result["error_kinds"] == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    assert result["statuses"] == {}


def test_wrk_failed_responses_are_errors():
    result = wrk.parse(WRK_POST_REJECTED)
    assert result["errors"] == 175 and result["error_kinds"]["status"] == 175


def test_wrk_counted_statuses_are_merged_over_the_threads():
    result = wrk.parse(WRK_MIX_COUNTED)
    assert result["statuses"] == {200: 134, 201: 33} and sum(result["statuses"].values()) == result["requests"]


def test_wrk_without_the_done_hook_line_is_an_error():
    with pytest.raises(ValueError, match="no BENCH_WRK line"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")
    with pytest.raises(ValueError, match="no BENCH_WRK line"):
        wrk.parse("\n".join(line for line in WRK_GET.splitlines() if not line.startswith(wrk.MARK)))


def test_the_post_script_posts_json_and_the_done_hook_reports():
    assert 'wrk.method = "POST"' in wrk.POST_TODO and "application/json" in wrk.POST_TODO
    assert wrk.MARK.strip() in wrk.DONE and "percentile(99)" in wrk.DONE
    assert 'thread:get("statuses")' in wrk.DONE and "function response(" in wrk.COUNT_STATUSES


# -- docker stats ------------------------------------------------------------


@pytest.mark.parametrize(
    "text, used, limit",
    [
        ("123.4MiB / 512MiB", 123.4, 512.0),
        ("1.5GiB / 23.54GiB", 1536.0, 23.54 * 1024),
        ("812KiB / 128MiB", 812 / 1024, 128.0),
        ("0B / 0B", 0.0, 0.0),
        ("10MB / 1GB", 10e6 / 2**20, 1e9 / 2**20),
    ],
)
def test_mem_usage(text, used, limit):
    assert machine.parse_mem_usage(text) == (pytest.approx(used), pytest.approx(limit))


def test_mem_usage_rejects_other_text():
    with pytest.raises(ValueError):
        machine.parse_mem_usage("-- / --")


def test_docker_stats_lines_give_memory_and_cpu_per_container():
    assert machine.parse_stats(DOCKER_STATS) == {
        "bszrun-backend-1": {"mem_mib": pytest.approx(153.1), "cpu_pct": pytest.approx(0.40)},
        "bszrun-postgres-1": {"mem_mib": pytest.approx(40.0), "cpu_pct": pytest.approx(2.65)},
    }


def test_cgroup_v2_counters_give_cpu_seconds_and_peak_memory():
    output = (
        "/sys/fs/cgroup/cpu.stat usage_usec 2500000 user_usec 2000000 system_usec 500000 \n"
        "/sys/fs/cgroup/memory.peak 167772160 \n"
    )
    assert machine.parse_cgroup(output) == {"cpu_s": 2.5, "mem_peak_mib": 160.0}


def test_cgroup_v1_counters_give_cpu_seconds_and_peak_memory():
    output = (
        "/sys/fs/cgroup/cpuacct/cpuacct.usage 65858404549 \n"
        "/sys/fs/cgroup/memory/memory.max_usage_in_bytes 168595456 \n"
    )
    assert machine.parse_cgroup(output) == {
        "cpu_s": pytest.approx(65.858404549),
        "mem_peak_mib": pytest.approx(160.78, abs=0.01),
    }


def test_a_cgroup_without_a_cpu_counter_is_an_error_not_zero():
    with pytest.raises(ValueError, match="no cgroup CPU counter"):
        machine.parse_cgroup("/sys/fs/cgroup/memory.peak 1024 \n")


def test_host_cpu_busy_share_from_proc_stat():
    before = machine.cpu_times("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n")
    after = machine.cpu_times("cpu  250 0 150 750 150 0 0 0 0 0\n")
    assert before == (200, 1000) and after == (400, 1300)
    assert machine.busy_pct(before, after) == pytest.approx(200 / 300 * 100)


# -- sections, edits, guards -------------------------------------------------


def test_sections_default_to_all_in_a_fixed_order():
    assert bench.select_sections([]) == list(bench.SECTIONS)
    assert bench.select_sections(["reload,load", "build"]) == ["build", "load", "reload"]


def test_an_unknown_section_names_the_real_ones():
    with pytest.raises(Problem, match="unknown section speed: choose from build, rebuild, sizes, load, up, reload"):
        bench.select_sections(["speed"])


def test_an_edit_is_undone_even_when_the_block_fails(tmp_path):
    source = tmp_path / "main.py"
    source.write_text("a = 1\n")
    with pytest.raises(KeyboardInterrupt):
        with reload.edited(source, lambda text: text.replace("1", "2")) as changed:
            source.write_text(changed)
            raise KeyboardInterrupt
    assert source.read_text() == "a = 1\n"


def test_an_edit_that_changes_nothing_says_the_source_moved_on(tmp_path):
    source = tmp_path / "App.tsx"
    source.write_text("<h1>Tasks</h1>\n")
    with pytest.raises(Problem, match="no longer has the line the reload measurement edits"):
        with reload.edited(source, lambda text: text.replace(reload.FRONTEND_HEADING, "<h1>x</h1>")):
            pass


@pytest.fixture
def source(tmp_path, monkeypatch):
    """A tree with one source file whose content the fake server serves; no settling pauses."""
    monkeypatch.setattr(reload, "SETTLE_S", 0)
    (tmp_path / "main.py").write_text("name = 'old'\n")
    return tmp_path


def test_a_reload_is_timed_from_the_write_to_the_edit_served_then_restored(source):
    measured = reload.edit_until_served(
        source, "main.py", "'old'", "'new'", lambda: "'new'" in (source / "main.py").read_text(), wait_s=5
    )
    assert measured.source == "main.py" and 0 <= measured.seconds < 1 and measured.restored is True
    assert (source / "main.py").read_text() == "name = 'old'\n"


def test_an_edit_never_served_has_no_latency_and_is_restored(source):
    measured = reload.edit_until_served(source, "main.py", "'old'", "'new'", lambda: False, wait_s=0.2)
    assert measured.seconds is None and measured.restored is None
    assert (source / "main.py").read_text() == "name = 'old'\n"


def test_an_edit_still_served_after_the_restore_is_reported(source):
    measured = reload.edit_until_served(source, "main.py", "'old'", "'new'", lambda: True, wait_s=0.2)
    assert measured.seconds is not None and measured.restored is False


def test_only_loopback_is_ever_targeted():
    with pytest.raises(Problem, match="only 127.0.0.1"):
        loopback.http("GET", "http://example.com/api/v1/todos")
    with pytest.raises(Problem, match="only 127.0.0.1"):
        loopback.http("GET", "http://localhost:8080/")
    with pytest.raises(Problem, match="only 127.0.0.1"):
        wrk.run("http://localhost:8080/", seconds=1, connections=1)


# -- the task ----------------------------------------------------------------


@pytest.fixture
def bench_task(monkeypatch):
    """tasks.bench_ (inv bench) with the bench itself replaced: returns (call, the sections it was run with)."""
    calls = []

    def fake_run(c, *, quick, sections, say):
        calls.append(sections)
        measured = figures(vite_hmr_s=[1.5] if quick else [0.5])
        return bench_report(measured, budgets.judge_medians(measured.metrics.values(), {"vite_hmr_s": {"max": 1}}))

    monkeypatch.setattr(tasks, "_ready", lambda c: None)
    monkeypatch.setattr(bench, "run", fake_run)
    return lambda **flags: tasks.bench_(MockContext(config=project_config()), **flags), calls


def test_task_prints_the_table_and_passes_without_check(bench_task, capsys):
    call, calls = bench_task
    call(quick=True)
    assert capsys.readouterr().out.splitlines()[2].split()[0] == "metric"
    assert calls == [list(bench.SECTIONS)]


def test_task_json_prints_the_report(bench_task, capsys):
    call, calls = bench_task
    call(json=True, only=["reload"])
    assert json.loads(capsys.readouterr().out)["metrics"]["vite_hmr_s"]["median"] == 0.5
    assert calls == [["reload"]]


def test_task_check_fails_naming_each_breach(bench_task):
    call, _ = bench_task
    call(check=True)  # within budget: passes
    with pytest.raises(Problem) as failure:
        call(quick=True, check=True)
    assert str(failure.value) == "bench: 1 budget(s) breached: vite_hmr_s 1.5 s > 1 s; see reports/bench.json"


def test_task_refuses_an_unknown_section_before_anything_runs(bench_task):
    call, calls = bench_task
    with pytest.raises(Problem, match="unknown section"):
        call(only=["nosuch"])
    assert calls == []
