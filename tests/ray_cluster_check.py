"""Run inside a fresh network namespace (`unshare -n`; tests/test_ray.py starts it): bring up loopback, start a two-node Ray
cluster on 127.0.0.1, and check the Ray executor against the local one. Writes <out>/result.json; any failed check raises."""
import json, os, signal, subprocess, sys, threading, time
from pathlib import Path

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

from serl.core import DataConfig, EnvConfig, EXPERIMENT_WINDOWS
from serl.market.data import load_dataset
from serl.design.designers import ScriptedLLM
from serl.loop.evolve import run_serl
from serl.loop.inner import evolve_config
from serl.loop.cluster import LocalCluster, Executor, connect, cluster_nodes, RayPool

GOOD = "```python\nimport torch\n\ndef reward(batch):\n    return batch['env_reward'] + W * batch['fill'] / batch['quantity']\n```"
dc = DataConfig(dataset="synthetic-nasdaq100", n_instruments=3, n_days=30, window_options=EXPERIMENT_WINDOWS)
ds = load_dataset(dc, seed=0)
cfg = evolve_config("smoke", hle=False, lle=False, iterations=1, K=3, workers=2, screen_env_steps=200, train_env_steps=800,
                    eta=2, static_num_envs=16, dynamic_num_envs=1, val_orders=8, designers=("reward",), epsilon=0.0)

def serl_run(run_dir, executor):
    os.environ.update(executor.env())
    llm = ScriptedLLM(fn=lambda p, i: GOOD.replace("W", str(0.1 * (i + 1))) if i % 2 == 0 else "no code")
    t = time.time()
    r = run_serl(llm, ds, dc, EnvConfig(step_minutes=30), cfg, run_dir=run_dir, seed=3, show_progress=False)
    return dict(best=r.best.key, val=[t.val_pa for t in r.candidates], rungs=[[t.key, t.val_pa] for t in r.rungs],
                final=r.final.val_pa, wall_s=time.time() - t)

def learned(root, executor):
    "The learned baselines of two seeds (tiny budget) through `train_learned_seeds`: per (seed/method) best validation PA and a weights hash."
    import hashlib
    from serl.loop.cluster import train_learned_seeds
    from serl.agent.learned import LearnedConfig
    from serl.agent.ppo import PPOConfig
    tiny = LearnedConfig(num_envs=8, train_env_steps=2 * 8 * 8, eval_every=2, ppo=PPOConfig(n_epochs=1, minibatch_size=64))
    t = time.time()
    got = train_learned_seeds(ds.splits["train"], ds.splits["valid"], dc, EnvConfig(step_minutes=30), (1, 2),
                              {s: root/f"learned-seed{s}" for s in (1, 2)}, cfg=tiny, methods=["PPO", "MacMic"], executor=executor,
                              show_progress=False)
    digest = lambda p: hashlib.sha256(b"".join(v.detach().numpy().tobytes() for a in p.agents.values() for v in a.state_dict().values())).hexdigest()
    return dict(fp={f"{s}/{m}": [p.best_valid_pa, digest(p)] for s, v in got.items() for m, p in v.items()},
                reused=[bool(getattr(p, "reused", False)) for v in got.values() for p in v.values()], wall_s=time.time() - t)

res = {}
local = serl_run(out/"local", Executor("local")); print("local run", local["wall_s"], flush=True)
learned_local = learned(out/"learned-local", Executor("local"))
cluster = LocalCluster(nodes=2, cpus_per_node=1)
t = time.time(); cluster.start(); res["cluster_start_s"] = time.time() - t
try:
    ex = Executor("ray", cluster.address)
    ray = connect(ex)
    res["nodes"] = cluster_nodes()
    assert len(res["nodes"]) == 2 and all(n["address"] == "127.0.0.1" for n in res["nodes"]), res["nodes"]

    # the outer loop on Ray, with one of its worker actors killed (kill -9) during the first screening
    killed = {}
    orig_start = RayPool.start
    def start_and_arm(self):
        orig_start(self)
        if not killed:
            pid = self.infos[0]["pid"]; killed["pid"] = pid
            threading.Timer(1.0, os.kill, (pid, signal.SIGKILL)).start()    # mid-job: a screening takes several seconds
        return self
    RayPool.start = start_and_arm
    remote = serl_run(out/"ray", ex)
    RayPool.start = orig_start
    res.update(local=local, ray=remote, killed_pid=killed.get("pid"))
    assert killed and not Path(f"/proc/{killed['pid']}").exists(), killed
    for k in ("best", "val", "rungs", "final"): assert local[k] == remote[k], (k, local[k], remote[k])

    # the learned baselines of two seeds as Ray tasks: the same models; the driver wrote the run folders; a rerun reuses them
    learned_ray = learned(out/"learned-ray", ex)
    again = learned(out/"learned-ray", ex)
    res["learned"] = dict(local=learned_local["fp"], ray=learned_ray["fp"], again=again["fp"], reused=again["reused"],
                          fresh=learned_ray["reused"], local_s=learned_local["wall_s"], ray_s=learned_ray["wall_s"],
                          files=sorted(str(f.relative_to(out/"learned-ray")) for f in (out/"learned-ray").rglob("*") if f.is_file()))
    assert learned_local["fp"] == learned_ray["fp"] == again["fp"], res["learned"]
    assert all(again["reused"]) and not any(learned_ray["reused"])
    ray.shutdown()

    # `serl reproduce --executor ray`: two datasets as Ray tasks, their notebooks' kernels on the cluster too; against local
    def reproduce(dest, *extra):
        t = time.time()
        cmd = [str(Path(sys.executable).parent/"serl"), "reproduce", "--scale", "smoke", "--dataset", "synthetic-csi100",
               "--dataset", "synthetic-nasdaq100", "-p", "learned=False", "-p", "se_rl=False", "--out", str(dest), *extra]
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SERL_EXECUTOR": "", "SERL_RAY_ADDRESS": ""})
        assert r.returncode == 0, r.stderr[-3000:]
        tables = {ds: pd.read_csv(dest/ds/"main_table.csv").round(9).to_dict("records") for ds in ("synthetic-csi100", "synthetic-nasdaq100")}
        return tables, time.time() - t, r.stderr
    import pandas as pd
    rl, res_l_s, _ = reproduce(out/"rep-local")
    rr, res_r_s, log = reproduce(out/"rep-ray", "--executor", "ray", "--ray-address", cluster.address)
    assert "Ray cluster 127.0.0.1" in log and "2 node(s)" in log, log[-2000:]
    res["reproduce"] = dict(local=rl, ray=rr, local_s=res_l_s, ray_s=res_r_s)
except BaseException:
    import traceback; res["error"] = traceback.format_exc(); print(res["error"], flush=True)
    raise
finally:
    import ray as _ray
    if _ray.is_initialized(): _ray.shutdown()
    started = sorted(set(cluster.pids) | set(cluster.processes()))
    cluster.stop()
    res["left_pids"] = [p for p in started if Path(f"/proc/{p}").exists()]
    (out/"result.json").write_text(json.dumps(res, indent=1, default=str))
print(json.dumps(res, default=str))
