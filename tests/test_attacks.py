"Attacks on the sandbox's boundary (serl.design.attacks.escape_cases), each with stage 1 off: rejected or contained, and nothing observable happened."
import json, os, socket, subprocess, sys, threading, time

import numpy as np
import pytest

from serl.core import SerlError

from serl.design.kinds import KINDS
from serl.design.sandbox import Sandbox, run_in_sandbox
from serl.design.attacks import escape_cases, policy_escape

SECRET_VAR = "SERL_SANDBOX_SECRET"
SECRET = "hunter2-" + os.urandom(6).hex()
GOOD = KINDS["reward"].code
NAN = "def reward(b):\n    return b['avg_price']"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    "A folder outside every scratch dir, a secret file, a process whose environment holds the secret, a listening port."
    out = tmp_path_factory.mktemp("outside")
    secret_file = tmp_path_factory.mktemp("secret") / "secret.txt"
    secret_file.write_text(SECRET)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env={**os.environ, SECRET_VAR: SECRET})
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4); srv.settimeout(0.2)
    got, done = [], threading.Event()
    def accept():
        while not done.is_set():
            try: c, _ = srv.accept(); got.append(c.recv(100)); c.close()
            except OSError: pass
    th = threading.Thread(target=accept, daemon=True); th.start()
    with Sandbox() as sb:
        yield dict(out=out, secret_file=secret_file, pid=holder.pid, port=srv.getsockname()[1], got=got, sb=sb)
    done.set(); holder.kill(); holder.wait(); th.join(2)


CASES = escape_cases("OUT", "F", 1, 1, 1)


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c.cls}: {c.name}" for c in CASES])
def test_escape_is_contained(world, i):
    a = escape_cases(world["out"], world["secret_file"], len(SECRET), world["pid"], world["port"])[i]
    before = sorted(os.listdir(world["out"]))
    v = run_in_sandbox(a.code, KINDS["reward"], static=False, sandbox=world["sb"])
    text = v.message + json.dumps(v.details, default=str)
    assert SECRET not in text, f"{a.name}: the secret came back in the verdict: {v.message}"
    assert sorted(os.listdir(world["out"])) == before, f"{a.name}: created {sorted(set(os.listdir(world['out'])) - set(before))}"
    assert not world["got"], f"{a.name}: a connection reached the host"
    if a.must_fail: assert not v.ok, f"{a.name}: accepted ({v.message})"
    time.sleep(0.2 if "pipe" in a.name else 0)
    # the parent's later verdicts are unaffected: a NaN reward is still refused, a good one still accepted
    bad, good = run_in_sandbox(NAN, KINDS["reward"], sandbox=world["sb"]), run_in_sandbox(GOOD, KINDS["reward"], sandbox=world["sb"])
    assert not bad.ok and bad.reason == "contract", f"after {a.name}: a NaN reward gave {bad.reason} ({bad.message})"
    assert good.ok, f"after {a.name}: a good reward gave {good.message}"


def test_policy_from_result_runs_no_candidate_code(world, monkeypatch):
    from serl.loop.inner import policy_from_result
    monkeypatch.setenv(SECRET_VAR, SECRET)
    code = policy_escape(world["out"], SECRET_VAR)
    w = {"body.weight": np.full((3, 4), 0.1, np.float32), "body.bias": np.zeros(3, np.float32)}
    try: policy_from_result(w, code, 4, 1)                          # stage 1 refuses it (torch.os) ...
    except SerlError: pass
    assert not os.path.exists(world["out"] / "policy.txt"), "policy_from_result executed the candidate in the main process"
    from serl.loop.inner import designed_network
    import torch
    agent = designed_network(code, 4, 1, static=False)               # ... and with stage 1 off it is traced in the sandbox, rebuilt here
    agent.load_state_dict({k: torch.as_tensor(v) for k, v in w.items()})
    assert not os.path.exists(world["out"] / "policy.txt"), "the candidate ran outside the sandbox"
    alpha, beta, value = agent(torch.ones(2, 4))
    assert alpha.shape == (2, 1) and torch.allclose(value, torch.full((2,), 0.4))


def test_layers_reported_and_minimum_enforced(world, monkeypatch):
    from serl.design.static_check import Limits
    v = run_in_sandbox(GOOD, KINDS["reward"], sandbox=world["sb"])
    assert {"seccomp", "landlock", "pidns", "netns", "mountns", "rlimits"} <= set(v.details["layers"]), v.details["layers"]
    with pytest.raises(SerlError, match="isolation layer"):          # a stricter minimum than the host allows: refused, clearly
        Sandbox(Limits(require=("rlimits", "nosuchlayer"))).start()
    monkeypatch.setenv("SERL_SANDBOX_REQUIRE", "none")
    assert Sandbox().limits.require is None
