"""Tests for ``python -m minifer.bench`` and its fair protocol (fresh processes, clean environments)."""
import json
import subprocess
import sys
from pathlib import Path

from minifer import timing

ROOT = Path(__file__).resolve().parents[1]


def test_clean_env_drops_thread_and_kernel_variables(monkeypatch):
    for k in ("OMP_WAIT_POLICY", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "NUMBA_NUM_THREADS",
              "MKL_NUM_THREADS"):
        monkeypatch.setenv(k, "1")
    monkeypatch.setenv("MINIFER_DEVICE", "gpu")
    monkeypatch.setenv("KEEP_ME_MINIFER", "yes")
    env = timing.clean_env()
    assert not [k for k in env if k.startswith(timing.THREAD_VARIABLES)] and "MINIFER_DEVICE" not in env
    assert env["KEEP_ME_MINIFER"] == "yes"
    # a side's fresh process sees the cleaned environment
    code = ("import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith(('OMP_', 'OPENBLAS_', 'NUMBA_', 'MKL_', 'MINIFER_'))}))")
    assert timing.run_side([sys.executable, "-c", code]) == {}


def test_median_round():
    rounds = [{"train_ips": 1.0, "infer_ips": 5.0, "latency_ms": 3.0, "version": "x"},
              {"train_ips": 3.0, "infer_ips": 4.0, "latency_ms": 9.0, "version": "x"},
              {"train_ips": 2.0, "infer_ips": 6.0, "latency_ms": 1.0, "version": "x"}]
    assert timing.median_round(rounds) == {"train_ips": 2.0, "infer_ips": 5.0, "latency_ms": 3.0,
                                           "version": "x"}


def test_bench_runs_alternating_fresh_rounds():
    r = subprocess.run([sys.executable, "-m", "minifer.bench", "--rounds", "2", "--repeat", "1",
                        "--train-batch", "4", "--infer-batch", "4", "--no-split",
                        "--torch-python", sys.executable], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "GFLOP/s" in out and "round 1: minifer" in out and "round 2: minifer" in out
    assert "median of 2 rounds" in out and "latency (batch 1), ms" in out
    one = subprocess.run([sys.executable, "-m", "minifer.bench", "--one-round", "--repeat", "1",
                          "--train-batch", "4", "--infer-batch", "4"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    figures = json.loads(one.stdout)
    assert set(figures) == {"train_ips", "infer_ips", "latency_ms"} and figures["train_ips"] > 0
