import json

import pytest
from invoke import MockContext

import tasks
from stackctl import Problem, bench
from tests.helpers import project_config

# Real wrk 4.1.0 output (Debian), run with --latency and the bench's done() hook.
WRK_GET = """\
Running 2s test @ http://127.0.0.1:18765/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.34ms    3.90ms  43.45ms   90.35%
    Req/Sec     1.03k   253.77     1.64k    75.00%
  Latency Distribution
     50%    3.35ms
     75%    5.41ms
     90%    8.12ms
     99%   21.10ms
  2050 requests in 2.00s, 414.40KB read
Requests/sec:   1024.43
Transfer/sec:    207.09KB
BENCH_WRK {"requests": 2050, "duration_us": 2001116, "bytes": 424350, "errors": {"connect": 0, "read": 0, \
"write": 0, "status": 0, "timeout": 0}, "latency_us": {"p50": 3352, "p90": 8117, "p99": 21099, "max": 43452, \
"mean": 4341.8}}
"""

# The POST script against a server that answers 501: every response counts as an error.
WRK_POST_REJECTED = """\
Running 2s test @ http://127.0.0.1:18765/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.75ms    3.09ms  22.26ms   87.00%
    Req/Sec     2.04k   764.85     3.30k    65.00%
  Latency Distribution
     50%    1.47ms
     75%    3.44ms
     90%    6.80ms
     99%   15.31ms
  4051 requests in 2.00s, 0.88MB read
  Non-2xx or 3xx responses: 4051
Requests/sec:   2025.24
Transfer/sec:    453.01KB
BENCH_WRK {"requests": 4051, "duration_us": 2000255, "bytes": 927877, "errors": {"connect": 0, "read": 0, \
"write": 0, "status": 4051, "timeout": 0}, "latency_us": {"p50": 1465, "p90": 6803, "p99": 15310, "max": 22263, \
"mean": 2745.4}}
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
    assert bench.summarise([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3}
    assert bench.summarise([4, 1, 2, 10]) == {"median": 3.0, "min": 1.0, "max": 10.0, "runs": 4}
    assert bench.summarise([5.5]) == {"median": 5.5, "min": 5.5, "max": 5.5, "runs": 1}


def test_summary_of_nothing_is_empty_not_zero():
    assert bench.summarise([]) == {"median": None, "min": None, "max": None, "runs": 0}


def test_figures_collect_runs_under_one_key():
    figures = bench.Figures()
    figures.add("vite_hmr_s", "Vite HMR", "s", "reload", 0.4)
    figures.add("vite_hmr_s", "Vite HMR", "s", "reload", 0.2)
    figures.add("backend_reload_s", "backend reload", "s", "reload", 1.1)
    assert list(figures.metrics) == ["vite_hmr_s", "backend_reload_s"]
    assert figures.metrics["vite_hmr_s"].summary == {"median": pytest.approx(0.3), "min": 0.2, "max": 0.4, "runs": 2}


# -- wrk ---------------------------------------------------------------------

def test_wrk_result_comes_from_the_done_hook_line():
    result = bench.parse_wrk(WRK_GET)
    assert result["requests"] == 2050 and result["errors"] == 0
    assert result["rps"] == pytest.approx(2050 / 2.001116)
    assert result["p50_ms"] == pytest.approx(3.352) and result["p99_ms"] == pytest.approx(21.099)


def test_wrk_failed_responses_are_errors():
    assert bench.parse_wrk(WRK_POST_REJECTED)["errors"] == 4051


def test_wrk_without_the_done_hook_line_is_an_error():
    with pytest.raises(ValueError, match="no BENCH_WRK line"):
        bench.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
    with pytest.raises(ValueError, match="no BENCH_WRK line"):
        bench.parse_wrk("\n".join(line for line in WRK_GET.splitlines() if not line.startswith(bench.WRK_MARK)))


def test_the_post_script_posts_json_and_both_scripts_report():
    assert 'wrk.method = "POST"' in bench.WRK_POST and "application/json" in bench.WRK_POST
    assert bench.WRK_MARK.strip() in bench.WRK_DONE and "percentile(99)" in bench.WRK_DONE


# -- docker stats ------------------------------------------------------------

@pytest.mark.parametrize("text, used, limit", [
    ("123.4MiB / 512MiB", 123.4, 512.0),
    ("1.5GiB / 23.54GiB", 1536.0, 23.54 * 1024),
    ("812KiB / 128MiB", 812 / 1024, 128.0),
    ("0B / 0B", 0.0, 0.0),
    ("10MB / 1GB", 10e6 / 2**20, 1e9 / 2**20),
])
def test_mem_usage(text, used, limit):
    assert bench.parse_mem_usage(text) == (pytest.approx(used), pytest.approx(limit))


def test_mem_usage_rejects_other_text():
    with pytest.raises(ValueError):
        bench.parse_mem_usage("-- / --")


def test_docker_stats_lines_give_memory_and_cpu_per_container():
    assert bench.parse_stats(DOCKER_STATS) == {
        "bszrun-backend-1": {"mem_mib": pytest.approx(153.1), "cpu_pct": pytest.approx(0.40)},
        "bszrun-postgres-1": {"mem_mib": pytest.approx(40.0), "cpu_pct": pytest.approx(2.65)}}


def test_host_cpu_busy_share_from_proc_stat():
    before = bench.cpu_times("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n")
    after = bench.cpu_times("cpu  250 0 150 750 150 0 0 0 0 0\n")
    assert before == (200, 1000) and after == (400, 1300)
    assert bench.busy_pct(before, after) == pytest.approx(200 / 300 * 100)


# -- budgets, table, JSON ----------------------------------------------------

def figures(**samples):
    result = bench.Figures()
    for key, values in samples.items():
        for value in values:
            result.add(key, key.replace("_", " "), "s" if key.endswith("_s") else "req/s", "test", value)
    return result


def test_budgets_hold_the_median():
    measured = figures(rebuild_backend_s=[9.0, 30.0, 8.0], api_list_via_frontend_rps=[900.0, 1200.0, 1100.0],
                       vite_hmr_s=[0.9, 1.5, 1.2])
    breaches = bench.judge(measured, {"rebuild_backend_s": {"max": 10}, "api_list_via_frontend_rps": {"min": 1000},
                                      "vite_hmr_s": {"max": 1}})
    assert breaches == ["vite_hmr_s 1.2 s > 1 s"]
    metrics = measured.metrics
    assert metrics["rebuild_backend_s"].verdict == "ok" and metrics["api_list_via_frontend_rps"].verdict == "ok"
    assert metrics["vite_hmr_s"].verdict == "BREACH: 1.2 s > 1 s"


def test_a_minimum_can_be_breached():
    breaches = bench.judge(figures(api_list_via_frontend_rps=[700.0]), {"api_list_via_frontend_rps": {"min": 1000}})
    assert breaches == ["api_list_via_frontend_rps 700 req/s < 1000 req/s"]


def test_unmeasured_budgets_and_unbudgeted_figures_are_not_judged():
    measured = figures(up_from_stopped_s=[3.0])
    assert bench.judge(measured, {"vite_hmr_s": {"max": 1}}) == []
    assert measured.metrics["up_from_stopped_s"].verdict is None


def test_failed_requests_are_a_breach():
    measured = figures(api_create_direct_rps=[500.0])
    metric = measured.metrics["api_create_direct_rps"]
    metric.errors, metric.requests = 12, 2500
    assert bench.judge(measured, {}) == ["api_create_direct_rps 12 of 2500 requests failed"]


def report(measured, breaches, notes=()):
    return bench.make_report(measured, breaches, quick=True, runs=1, sections=["reload"],
                             load={"duration_s": 5, "connections": 20, "threads": 1, "warmup_s": 2, "rows": 20},
                             machine={"cpus": 2, "memory_gib": 23.5, "docker": "20.10.24", "compose": "2.40.0",
                                      "kernel": "6.1", "loadavg_start": 1.5, "other_containers": 3},
                             notes=list(notes))


def test_json_report_has_every_figure_with_median_min_max_and_samples():
    measured = figures(backend_reload_s=[1.0, 3.0, 2.0], vite_hmr_s=[0.5])
    breaches = bench.judge(measured, {"backend_reload_s": {"max": 2}})
    data = json.loads(bench.as_json(report(measured, breaches)))
    assert data["ok"] is True and data["breaches"] == [] and data["mode"] == "quick"
    assert data["metrics"]["backend_reload_s"] == {
        "label": "backend reload s", "unit": "s", "section": "test", "samples": [1.0, 3.0, 2.0],
        "budget": {"max": 2}, "verdict": "ok", "errors": 0, "requests": 0,
        "median": 2.0, "min": 1.0, "max": 3.0, "runs": 3}
    assert data["metrics"]["vite_hmr_s"]["budget"] is None


def test_table_lists_each_figure_under_its_section_with_its_verdict():
    measured = figures(backend_reload_s=[2.5], vite_hmr_s=[0.25])
    breaches = bench.judge(measured, {"backend_reload_s": {"max": 2}})
    lines = bench.table(report(measured, breaches, notes=["backend direct: skipped"])).splitlines()
    assert "2 CPUs" in lines[0] and "quick" in lines[0] and "Docker 20.10.24" in lines[0]
    assert lines[2].split() == ["metric", "median", "min", "max", "unit", "budget", "verdict"]
    assert lines[4] == "[test]"
    assert lines[5].split() == ["backend", "reload", "s", "2.5", "2.5", "2.5", "s", "<=", "2",
                                "BREACH:", "2.5", "s", ">", "2", "s"]
    assert lines[6].split() == ["vite", "hmr", "s", "0.25", "0.25", "0.25", "s", "-"]
    assert lines[-2] == "note: backend direct: skipped"
    assert lines[-1] == "budgets: BREACHED: backend_reload_s 2.5 s > 2 s"


def test_project_budgets_are_the_issue_targets():
    budgets = project_config().bench.budgets
    assert dict(budgets.rebuild_backend_s) == dict(budgets.rebuild_frontend_s) == {"max": 10}
    assert dict(budgets.up_from_stopped_s) == dict(budgets.up_from_nothing_s) == {"max": 15}
    assert dict(budgets.backend_reload_s) == {"max": 2} and dict(budgets.vite_hmr_s) == {"max": 1}
    assert dict(budgets.cold_build_total_s) == {"max": 120}
    assert dict(budgets.api_list_via_frontend_rps) == {"min": 1000}
    assert dict(budgets.api_list_via_frontend_p99_ms) == {"max": 50}


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
        with bench.edited(source, lambda text: text.replace("1", "2")) as changed:
            source.write_text(changed)
            raise KeyboardInterrupt
    assert source.read_text() == "a = 1\n"


def test_an_edit_that_changes_nothing_says_the_source_moved_on(tmp_path):
    source = tmp_path / "App.tsx"
    source.write_text("<h1>Tasks</h1>\n")
    with pytest.raises(Problem, match="no longer has the line the bench edits"):
        with bench.edited(source, lambda text: text.replace(bench.FRONTEND_HEADING, "<h1>x</h1>")):
            pass


def test_only_loopback_is_ever_targeted():
    with pytest.raises(Problem, match="only 127.0.0.1"):
        bench._http("GET", "http://example.com/api/v1/todos")
    with pytest.raises(Problem, match="only 127.0.0.1"):
        bench._http("GET", "http://localhost:8080/")


# -- the task ----------------------------------------------------------------

@pytest.fixture
def bench_task(monkeypatch):
    """tasks.bench with the bench itself replaced: returns (call, the sections it was run with)."""
    calls = []

    def fake_run(c, *, quick, sections, say):
        calls.append(sections)
        measured = figures(vite_hmr_s=[1.5] if quick else [0.5])
        return report(measured, bench.judge(measured, {"vite_hmr_s": {"max": 1}}))
    monkeypatch.setattr(tasks, "_ready", lambda c: None)
    monkeypatch.setattr(bench, "run", fake_run)
    return lambda **flags: tasks.bench(MockContext(config=project_config()), **flags), calls


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
