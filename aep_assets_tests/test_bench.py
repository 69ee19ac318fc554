"""Every benchmark script runs at a tiny size, so none can break unseen. The figures at full size are in
docs/benchmarks.md; here only that each script completes and prints its last line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = {
    "pipeline.py": (["--profiles", "3000"], "total_s="),
    "model_quality.py": (["--profiles", "3000", "--trials", "2"], "auc_to_oracle="),
    "outcomes.py": (["--profiles", "3000"], "planted_uplift="),
    "uplift.py": (["--profiles", "3000"], "qini_model="),
    "rescore.py": (["--profiles", "3000", "--changed", "0.05"], "speedup="),
    "sandbox_load.py": (["--clients", "2", "--seconds", "2", "--ingest-profiles", "1000"], "rps="),
    "scoring.py": (["--profiles", "5000", "--engine", "local", "--chunk-rows", "2000"], "engine=local rows=5000"),
    # A third of the orgs of test_real_orgs.py, with the sufficiency floors lowered to fit them.
    "goal_kinds.py": (["--scale", "0.3", "--min-goal-profiles", "100"], "value_vs_bgnbd="),
}


def test_every_benchmark_script_is_run_here():
    scripts = {p.name for p in BENCH.glob("*.py")} - {"measure.py"}  # measure.py is their shared helper
    assert scripts == set(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_benchmark_runs_at_a_tiny_size(script, tmp_path):
    args, last = SCRIPTS[script]
    temp = tmp_path / "tmp"  # the script's temporary directory, to see what it leaves behind
    temp.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "TMPDIR": str(temp)}
    env.pop("AEP_BENCH_KEEP", None)
    run = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                         timeout=900, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert run.stdout.strip().splitlines()[-1].startswith(last), run.stdout[-2000:]
    # A full-size run writes gigabytes (a million profiles' sandbox and storage): none of it may stay.
    assert sorted(p.name for p in temp.iterdir()) == []


def test_a_benchmark_keeps_its_work_dir_when_asked(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(f"import sys; sys.path.insert(0, {str(BENCH)!r})\n"
                      "from measure import work_dir\n(work_dir('aep-bench-probe-') / 'data').write_text('x')\n")
    temp = tmp_path / "tmp"
    temp.mkdir()
    for keep, left in (("0", []), ("1", ["aep-bench-probe-"])):
        env = {**os.environ, "TMPDIR": str(temp), "AEP_BENCH_KEEP": keep}
        run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 0, run.stderr
        assert [p.name[:len("aep-bench-probe-")] for p in temp.iterdir()] == left
    kept = next(temp.iterdir())
    assert (kept / "data").read_text() == "x"
    assert f"work_dir={kept}" in run.stderr
