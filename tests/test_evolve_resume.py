"""Algorithm 1 survives `kill -9` in the middle of an iteration and in the middle of the final training: the resumed run
redoes no finished training and ends with exactly the numbers of an uninterrupted run with the same seed."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent('''
    import json, sys
    from serl.core import DataConfig, EnvConfig, EXPERIMENT_WINDOWS
    from serl.market.data import load_dataset
    from serl.design.designers import ScriptedLLM
    from serl.loop.evolve import run_serl
    from serl.loop.inner import evolve_config
    GOOD = "fill / quantity * W"                 # the reward template's hole (serl.design.components.reward.REWARD_TEMPLATE)
    dc = DataConfig(dataset="synthetic-nasdaq100", n_instruments=3, n_days=30, window_options=EXPERIMENT_WINDOWS)
    ds = load_dataset(dc, seed=0)
    cfg = evolve_config("smoke", hle=False, lle=False, iterations=2, K=3, workers=1, screen_env_steps=300, train_env_steps=6_000,
                        eta=2, static_num_envs=32, dynamic_num_envs=1, val_orders=8, designers=("reward",), epsilon=0.0)
    llm = ScriptedLLM(fn=lambda p, i: GOOD.replace("W", str(0.1 * (i + 1))))   # distinct: duplicates are never trained
    r = run_serl(llm, ds, dc, EnvConfig(step_minutes=30), cfg, run_dir=sys.argv[1], seed=3, show_progress=False)
    print(json.dumps(dict(best=r.best.key, val=[t.val_pa for t in r.candidates], rungs=[[t.key, t.val_pa] for t in r.rungs],
                          final=r.final.val_pa, steps=[r.train_env_steps, r.screen_env_steps], history=r.history.best_so_far.tolist())))
''')


def run(run_dir: Path, stderr=subprocess.DEVNULL):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(run_dir)], stdout=subprocess.PIPE, stderr=stderr,
                            text=True, start_new_session=True)


def records(run_dir: Path) -> list[dict]:
    f = run_dir / "records.jsonl"
    if not f.exists(): return []
    out = []
    for line in f.read_text().splitlines():
        try: out.append(json.loads(line))
        except json.JSONDecodeError: pass
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    "The uninterrupted run's output."
    full = run(tmp_path_factory.mktemp("full") / "run")
    return json.loads(full.communicate(timeout=900)[0].strip().splitlines()[-1])


def kill_when(run_dir: Path, ready, what: str) -> list[dict]:
    "Start a run in `run_dir`, kill -9 it once `ready(records)` holds; the records it left."
    p = run(run_dir)
    t0 = time.time()
    while time.time() - t0 < 900:
        if ready(records(run_dir)): break
        if p.poll() is not None: pytest.fail(f"the run finished before it could be interrupted {what}")
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    return records(run_dir)


def resume(run_dir: Path) -> tuple[dict, str]:
    resumed = run(run_dir, stderr=subprocess.PIPE)
    stdout, stderr = resumed.communicate(timeout=900)
    return json.loads(stdout.strip().splitlines()[-1]), stderr


def test_kill9_mid_iteration_then_resume_matches_uninterrupted(tmp_path, reference):
    cut = tmp_path / "cut"           # kill once iteration 2 has one screened candidate of three
    before = [r["key"] for r in kill_when(cut, lambda rs: any(r["kind"] == "trained" and r["iteration"] == 1 for r in rs),
                                          "in iteration 2") if r["kind"] == "trained"]
    assert 3 <= len(before) < 6, before
    out, stderr = resume(cut)
    # the resumed run says what it reused
    assert f"resuming the SE-RL run in {cut}: reusing 1 finished iteration(s) of 2, {len(before)} screened candidate(s)" in stderr, stderr[-2000:]
    keys = [r["key"] for r in records(cut) if r["kind"] == "trained"]
    assert len(keys) == len(set(keys)) == 6, keys       # nothing screened twice
    assert keys[:len(before)] == before
    assert out == reference


def test_kill9_mid_final_training_then_resume_matches_uninterrupted(tmp_path, reference):
    cut = tmp_path / "cut"           # kill once the rungs are done and the final training runs
    n_rungs = len(reference["rungs"])
    left = kill_when(cut, lambda rs: sum(r["kind"] == "stage" for r in rs) == n_rungs and any(r["kind"] == "iteration" and r["iteration"] == 1 for r in rs),
                     "during the final training")
    assert not any(r["kind"] == "stage" and r["stage"] == "final" for r in left)
    out, stderr = resume(cut)
    assert "nothing left to train" not in stderr and f"{n_rungs} later training(s)" in stderr, stderr[-2000:]
    stages = [r["key"] for r in records(cut) if r["kind"] == "stage"]
    assert len(stages) == len(set(stages)) == n_rungs + 1, stages      # only the final training ran again
    assert out == reference and reference["steps"][0] >= 6_000 and len(reference["rungs"]) >= 2
