"""The Ray executor (`serl reproduce --executor ray`): clear errors without Ray or with bad options, and a two-node Ray
cluster on this machine, inside a network namespace of its own (only loopback), against the local executor."""
import json, subprocess, sys
from pathlib import Path

import pytest

from serl.app.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_without_ray_the_error_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"                     # `import ray` fails, as without the extra
            "from serl.app.cli import main\n"
            "sys.exit(main(['reproduce', '--dataset', 'synthetic-csi100', '--executor', 'ray', '--out', sys.argv[1]]))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert '.[ray]' in r.stderr and "--executor ray" in r.stderr
    assert not (tmp_path / "out").exists()                                  # failed before anything was written


def test_bad_options_fail_before_any_work(capsys, tmp_path):
    assert main(["reproduce", "--dataset", "synthetic-csi100", "--ray-address", "auto", "--out", str(tmp_path)]) == 2
    assert "needs --executor ray" in capsys.readouterr().err
    assert main(["reproduce", "--dataset", "synthetic-csi100", "-p", "no_such=1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no_such" in err and "learned" in err                              # names the parameters that exist
    assert main(["reproduce", "--dataset", "synthetic-csi100", "-p", "scale=paper", "--out", str(tmp_path)]) == 2
    assert "--scale" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_two_node_cluster_same_numbers_and_a_killed_worker(tmp_path):
    # the check runs in `unshare -n` (a network namespace with only `lo`): every address Ray uses is 127.0.0.1
    r = subprocess.run(["unshare", "-n", sys.executable, str(ROOT / "tests" / "ray_cluster_check.py"), str(tmp_path)],
                       capture_output=True, text=True, timeout=1800)
    res = json.loads((tmp_path / "result.json").read_text()) if (tmp_path / "result.json").exists() else {}
    assert r.returncode == 0 and "error" not in res, (res.get("error") or "") + r.stdout[-3000:] + r.stderr[-3000:]
    assert [n["address"] for n in res["nodes"]] == ["127.0.0.1", "127.0.0.1"]
    assert res["killed_pid"] and res["left_pids"] == []                       # the cluster's processes are all gone
    for k in ("best", "val", "rungs", "final"): assert res["local"][k] == res["ray"][k], k
    assert res["reproduce"]["local"] == res["reproduce"]["ray"]
    lr = res["learned"]                                                        # learned baselines per (method, seed) as tasks
    assert lr["local"] == lr["ray"] == lr["again"] and all(lr["reused"]) and not any(lr["fresh"])
    for s in (1, 2):
        for m in ("PPO", "MacMic"):
            for f in ("history.csv", "train_log.jsonl"): assert f"learned-seed{s}/{m}/{f}" in lr["files"], (s, m, f)
    print(f"cluster start {res['cluster_start_s']:.1f} s; outer loop local {res['local']['wall_s']:.1f} s, "
          f"ray {res['ray']['wall_s']:.1f} s; learned local {res['learned']['local_s']:.1f} s, ray {res['learned']['ray_s']:.1f} s; reproduce local {res['reproduce']['local_s']:.0f} s, ray {res['reproduce']['ray_s']:.0f} s")
