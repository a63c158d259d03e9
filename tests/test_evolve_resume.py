"""Algorithm 1 survives `kill -9` in the middle of an iteration: the resumed run redoes no finished
candidate and ends with exactly the numbers of an uninterrupted run with the same seed."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent('''
    import json, sys
    from serl.core import DataConfig, EnvConfig
    from serl.market.data import load_dataset
    from serl.design.designers import ScriptedLLM
    from serl.loop.evolve import run_serl
    from serl.loop.inner import evolve_config
    GOOD = "```python\\nimport torch\\n\\ndef reward(batch):\\n    return batch['env_reward'] + 0.1 * batch['fill'] / batch['quantity']\\n```"
    dc = DataConfig(dataset="synthetic-nasdaq100", n_instruments=3, n_days=30, window_minutes=120)
    ds = load_dataset(dc, seed=0)
    cfg = evolve_config("smoke", hle=False, lle=False, iterations=2, K=3, workers=1, n_updates=4, static_num_envs=32,
                        dynamic_num_envs=1, dynamic_n_steps=2, val_orders=8, designers=("reward",), patience=10)
    r = run_serl(ScriptedLLM(fn=lambda p, i: GOOD if i % 2 == 0 else "no code"), ds, dc, EnvConfig(step_minutes=30), cfg,
                 run_dir=sys.argv[1], seed=3, show_progress=False)
    print(json.dumps(dict(best=r.best.key, val=[t.val_pa for t in r.candidates], history=r.history.best_so_far.tolist())))
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


def test_kill9_then_resume_matches_uninterrupted(tmp_path):
    full = run(tmp_path / "full")
    ref = json.loads(full.communicate(timeout=900)[0].strip().splitlines()[-1])

    p = run(tmp_path / "cut")
    t0 = time.time()
    while time.time() - t0 < 900:                       # kill once iteration 2 has one finished candidate of three
        recs = records(tmp_path / "cut")
        if any(r["kind"] == "trained" and r["iteration"] == 1 for r in recs): break
        if p.poll() is not None: pytest.fail("the run finished before it could be interrupted")
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    before = [r["key"] for r in records(tmp_path / "cut") if r["kind"] == "trained"]
    assert 3 <= len(before) < 6, before

    resumed = run(tmp_path / "cut", stderr=subprocess.PIPE)
    stdout, stderr = resumed.communicate(timeout=900)
    out = json.loads(stdout.strip().splitlines()[-1])
    # the resumed run says what it reused
    assert f"resuming the SE-RL run in {tmp_path / 'cut'}: reusing 1 finished iteration(s) of 2 and {len(before)} trained candidate(s)" in stderr, stderr[-2000:]
    keys = [r["key"] for r in records(tmp_path / "cut") if r["kind"] == "trained"]
    assert len(keys) == len(set(keys)) == 6, keys       # nothing trained twice
    assert keys[:len(before)] == before
    assert out == ref
