"Adversarial tests of the sandbox (serl.design.sandbox): every attack in the catalogue is stopped by stage 1, and by stage 2 alone."
import os
from pathlib import Path

import numpy as np
import pytest

from serl.design.kinds import KINDS
from serl.design.sandbox import Sandbox, run_in_sandbox, validate
from serl.design.static_check import Limits, static_check
from serl.design.attacks import adversarial_cases, run_attack

SECRET = "SERL_SANDBOX_SECRET"


@pytest.fixture(scope="module")
def sb():
    with Sandbox() as s:
        yield s


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    d = tmp_path_factory.mktemp("sentinel")
    (d / "sentinel.txt").write_text("untouched")
    return d


CASES = adversarial_cases("SENTINEL", "CWD")


@pytest.mark.parametrize("kind", list(KINDS))
def test_good_components_pass(sb, kind):
    v = validate(KINDS[kind].example, KINDS[kind], sandbox=sb)
    assert v.ok and v.stage == "runtime", v.message


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c.name for c in CASES])
def test_attack_is_stopped(sb, target, monkeypatch, i):
    monkeypatch.setenv(SECRET, "hunter2-" + os.urandom(4).hex())
    cwd_before = sorted(os.listdir(Path.cwd()))
    attack = adversarial_cases(target / "sentinel.txt", target, SECRET)[i]
    run_attack(attack, KINDS[attack.kind], sb)
    assert (target / "sentinel.txt").read_text() == "untouched"
    assert sorted(os.listdir(target)) == ["sentinel.txt"]
    assert sorted(os.listdir(Path.cwd())) == cwd_before
    assert np.mean(np.array([1.0, 3.0])) == 2.0          # the main process's numpy is intact


def test_one_shot_and_static_refusal_needs_no_worker():
    v = run_in_sandbox("import os\ndef reward(b): return b['fill']", KINDS["reward"])
    assert not v.ok and v.stage == "static" and v.reason == "import" and v.seconds < 1
    v = run_in_sandbox(KINDS["scenario"].example.strip("`").removeprefix("python\n"), KINDS["scenario"], payload={"n_minutes": 30})
    assert v.ok and v.details["prices"].shape == (30,)


def test_worker_recovers_after_a_timeout(sb):
    v = sb.run("def reward(b):\n    while True: pass", KINDS["reward"], limits=Limits(wall_s=1.5, cpu_s=30))
    assert not v.ok and v.reason in ("timeout", "cpu")
    assert sb.run("def reward(b):\n    return b['fill'] * 0.0", KINDS["reward"]).ok
