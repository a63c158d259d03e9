"""The design step's program search and its controls on a tiny run: the LLM search fills template holes and never
trains a candidate twice; the no-LLM control (grammar-sampled random mutations) designs valid candidates without
calling the LLM; 'defaults only' trains the hand-written components once."""
import json

import pytest

from serl.core import DataConfig, EnvConfig, EXPERIMENT_WINDOWS
from serl.market.data import load_dataset
from serl.design.designers import ScriptedLLM
from serl.design.search import program_key
from serl.loop.evolve import run_serl, combo_key
from serl.loop.inner import evolve_config

DC = DataConfig(dataset="synthetic-nasdaq100", n_instruments=2, n_days=20, window_options=EXPERIMENT_WINDOWS)
TINY = dict(hle=False, lle=False, iterations=2, K=2, workers=1, screen_env_steps=200, train_env_steps=400, eta=2,
            static_num_envs=8, dynamic_num_envs=1, val_orders=4, designers=("reward",), epsilon=0.0)


@pytest.fixture(scope="module")
def ds(): return load_dataset(DC, seed=0)


def run(ds, tmp_path, llm, **kw):
    return run_serl(llm, ds, DC, EnvConfig(step_minutes=30), evolve_config("smoke", **{**TINY, **kw}), run_dir=tmp_path, seed=1,
                    show_progress=False)


def designs(r): return [d for d in r.records.read("design")]


def test_llm_search_no_duplicates(ds, tmp_path):
    llm = ScriptedLLM(fn=lambda p, i: "fill / quantity * 0.5")        # the same hole every time: one new program in all
    r = run(ds, tmp_path, llm)
    keys = [combo_key(t.codes) for t in r.candidates]
    assert len(keys) == len(set(keys)) == 2                              # the LLM's program once, the default once, then nothing
    assert any(t.from_llm["reward"] for t in r.candidates)
    assert "shaping_v" in llm.prompts[-1] or "shaping =" in llm.prompts[-1]   # a completion prompt of the template


def test_random_search_control_uses_no_llm(ds, tmp_path):
    llm = ScriptedLLM(fn=lambda p, i: pytest.fail("the no-LLM control called the LLM"))
    r = run(ds, tmp_path, llm, search="random", iterations=1, K=3)
    samples = [s for d in designs(r) for s in d["samples"]]
    assert samples and all(s["prompt"].startswith("random mutation") for s in samples)
    assert sum(s["ok"] for s in samples) >= len(samples) // 2
    assert len({program_key(s["code"]) for s in samples if s["ok"]}) >= 2
    assert len(r.candidates) == len({combo_key(t.codes) for t in r.candidates})


def test_defaults_only(ds, tmp_path):
    r = run(ds, tmp_path, ScriptedLLM(["unused"]), designers=(), iterations=1)
    assert len(r.candidates) == 1 and not any(r.candidates[0].from_llm.values()) and r.final is not None
