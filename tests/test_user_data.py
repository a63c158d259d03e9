"""A user's own data as a user meets it: a CSV and a parquet file through `serl reproduce --scale smoke`, SE-RL
included (its sandboxed workers get the parent's loaded data, never the file to re-parse); `--out` keeps the reports
and the run records; bad datasets, LLM specs and folders fail in seconds, before any training, with exit code 2."""
import json, re, socket, time
from pathlib import Path

import pandas as pd
import pytest

from serl.core import repo_root
from serl.market.bars import panel_to_bars
from serl.market.data import min_trading_days
from serl.market.synthetic import generate_synthetic
from serl.app.cli import main, run_experiment

METHODS = ["TWAP", "VWAP", "POV", "AC", "Immediate", "TWAP-passive", "Untrained", "Random", "PPO", "HALOP", "MacMic", "CW-LN", "Dirichlet", "SE-RL"]


def user_bars(days: int = 6, instruments: int = 2) -> pd.DataFrame:
    "A small long table like a user's: synthetic minutes (just enough days), with three bad rows to repair."
    b = panel_to_bars(generate_synthetic("synthetic-nasdaq100", instruments, days, seed=0))
    b.loc[10, "volume"] = -5.0                                        # negative volume: dropped
    b.loc[20, ["high", "low"]] = b.loc[20, ["low", "high"]].values     # high < low: repaired
    return pd.concat([b, b.iloc[[30]]]).sort_values(["instrument", "datetime"], kind="stable")   # a duplicate minute


def test_minimum_is_six_days():
    assert min_trading_days() == 6


def test_csv_through_reproduce_with_serl(tmp_path, capsys):
    csv = tmp_path / "mybars.csv"
    user_bars(min_trading_days()).to_csv(csv, index=False)
    out = tmp_path / "out"
    assert main(["reproduce", "--scale", "smoke", "--dataset", f"csv:{csv}", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    t = pd.read_csv(out / "user-mybars" / "main_table.csv", index_col="method")
    assert list(t.index) == METHODS and t["PA"].notna().all() and (t["n_orders"] > 0).all()
    d = pd.read_csv(out / "user-mybars" / "main_table_dynamic.csv", index_col="method")
    assert list(d.index) == METHODS and d["PA"].notna().all()
    for f in ("serl_iterations.png", "serl_components.md", "orders.csv.gz", "orders_dynamic.csv.gz"): assert (out / "user-mybars" / f).exists(), f
    # everything of this run under --out: reports and run records; nothing in the repository's runs/
    assert (out / "runs" / "user-mybars" / "smoke" / "serl-seed0" / "records.jsonl").exists()
    assert (out / "runs" / "user-mybars" / "smoke" / "learned-seed0" / "PPO").is_dir()
    assert not (repo_root() / "runs" / "user-mybars").exists()
    trained = [json.loads(l) for l in (out / "runs" / "user-mybars" / "smoke" / "serl-seed0" / "records.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "trained" and r["ok"] for r in trained)
    # the terminal: checks, the data repairs in one line, phases
    assert "checks passed" in err and re.search(r"repaired 1 \(high < low 1\); dropped 2", err)
    assert "learned baselines" in err and "SE-RL seed 0" in err


def test_parquet_through_main_table_with_serl(tmp_path):
    # the learned baselines are not data-format specific (the CSV test covers them); SE-RL's sandboxed workers are
    pq = tmp_path / "mybars.parquet"
    user_bars(min_trading_days()).to_parquet(pq, index=False)
    nb = run_experiment("main_table", dataset=f"parquet:{pq}", scale="smoke", out_dir=tmp_path / "out", learned=False, progress=False)
    t = pd.read_csv(nb.parent / "main_table.csv", index_col="method")
    assert list(t.index) == ["TWAP", "VWAP", "POV", "AC", "Immediate", "TWAP-passive", "Untrained", "Random", "SE-RL"] and t["PA"].notna().all()
    assert (tmp_path / "out" / "runs" / "user-mybars" / "smoke" / "serl-seed0" / "records.jsonl").exists()


def _dead_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.mark.parametrize("case", ["few_days", "llm_model", "llm_server", "second_dataset", "out_is_file", "llm_path"])
def test_bad_input_fails_fast_before_training(tmp_path, capsys, case):
    good = tmp_path / "good.csv"; user_bars(6).to_csv(good, index=False)
    few = tmp_path / "five.csv"; b = user_bars(6); d = b.datetime.dt.normalize()
    b[d < sorted(d.unique())[5]].to_csv(few, index=False)
    (tmp_path / "afile").write_text("")
    argv, culprit = {
        "few_days": ([f"--dataset=csv:{few}"], "five.csv"),
        "llm_model": ([f"--dataset=csv:{good}", "--llm", "nosuch-model"], "nosuch-model"),
        "llm_server": ([f"--dataset=csv:{good}", "--llm", f"openai:m@http://127.0.0.1:{_dead_port()}/v1"], "127.0.0.1"),
        "second_dataset": ([f"--dataset=csv:{good}", f"--dataset=csv:{tmp_path / 'missing.csv'}"], "missing.csv"),
        "out_is_file": ([f"--dataset=csv:{good}"], "afile"),
        "llm_path": ([f"--dataset=csv:{good}", "--llm", str(tmp_path / "no-model-dir")], "no-model-dir"),
    }[case]
    out = tmp_path / ("afile/sub" if case == "out_is_file" else "out")
    t0 = time.perf_counter()
    rc = main(["reproduce", "--scale", "smoke", "--out", str(out), *argv])
    dt = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 2 and culprit in err and "serl: error" in err, err
    assert dt < 10, dt
    if case == "few_days": assert "needs at least 6" in err
    assert not (tmp_path / "out" / "user-good").exists()                               # nothing ran


def test_experiment_notebooks_never_default_to_committed_reports():
    for nb in sorted((repo_root() / "nbs" / "experiments").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        params = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
        assert re.search(r"^out_dir = None", params, re.M), nb.name
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert 'repo_root()/"reports"' not in code and 'repo_root()/"runs"' not in code and "experiment_dirs(out_dir" in code, nb.name


def test_run_folder_of_another_llm_is_refused_up_front(tmp_path, capsys):
    good = tmp_path / "good.csv"; user_bars(6).to_csv(good, index=False)
    old = tmp_path / "runs" / "user-good" / "smoke" / "serl-seed0"; old.mkdir(parents=True)
    (old / "records.jsonl").write_text(json.dumps({"kind": "config", "llm": "HFLLM('some/other-model')"}) + "\n")
    t0 = time.perf_counter()
    rc = main(["reproduce", "--dataset", f"csv:{good}", "--out", str(tmp_path / "o"), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and str(old) in err and "--runs" in err and time.perf_counter() - t0 < 10, err


def test_failed_notebook_names_its_executed_copy(tmp_path):
    from serl.core import SerlError
    with pytest.raises(SerlError) as e:        # a bad parameter: the notebook fails in its first code cell
        run_experiment("main_table", dataset="synthetic-csi100", scale="smoke", seed="not-a-seed", out_dir=tmp_path,
                       learned=False, se_rl=False, progress=False)
    dest = tmp_path / "synthetic-csi100" / "main_table.ipynb"
    assert str(dest) in str(e.value) and "TypeError" in str(e.value) and dest.exists()


def test_run_folder_of_other_settings_is_refused_up_front(tmp_path, capsys):
    # e.g. made by an older serl: found by the checks, not after the learned baselines have trained for minutes
    from serl.core import scale_config
    from serl.loop.inner import evolve_config
    from serl.loop.evolve import run_config_record
    good = tmp_path / "good.csv"; user_bars(6).to_csv(good, index=False)
    cfg = scale_config("smoke", f"csv:{good}", 0)
    old = tmp_path / "runs" / "user-good" / "smoke" / "serl-seed0"; old.mkdir(parents=True)
    rec = run_config_record(evolve_config("smoke", K=5), cfg.data, cfg.env, 0, 0)
    (old / "records.jsonl").write_text(json.dumps({"kind": "config", **rec}) + "\n")
    t0 = time.perf_counter()
    rc = main(["reproduce", "--dataset", f"csv:{good}", "--out", str(tmp_path / "o"), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and str(old) in err and "evolve.K" in err and "--runs" in err and time.perf_counter() - t0 < 10, err
    rec = run_config_record(evolve_config("smoke"), cfg.data, cfg.env, 0, 0)   # the same settings pass the checks
    (old / "records.jsonl").write_text(json.dumps({"kind": "config", **rec}) + "\n")
    from serl.app.cli import check_runs
    check_runs("main_table", [f"csv:{good}"], "smoke", tmp_path / "runs", None, 0)
