"""DEK end to end with a real designer and a tiny local model: three outer iterations in one go equal
two iterations, a save, a fresh process-like restart (new model copy, new DEK, load) and the third."""
import math, warnings

import numpy as np
import pytest

from serl.design.dek import DEK
from serl.design.lle import tiny_llm
from serl.design.llm import SamplingParams
from serl.design.components.reward import LLM4Reward
from serl.design.sandbox import Sandbox
from serl.design.static_check import Limits


def _iteration(dek, des, it):
    "One outer iteration: design with DEK's prompts, fake scores (every other sample 'valid', score = its index), DEK update."
    seed = 100 + it
    kw = dek.design_kwargs(des, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cands = des.design(K=3, seed=seed, repair_rounds=0, update_buffer=False, score=False, **kw)
    cands = [c for c in cands if not c.fallback]
    results = [dict(designer=des.name, kind=des.kind, prompt=c.prompt, response=c.response, code=c.code or f"x = {i}",
                    ok=i % 2 == 0, first_ok=i % 2 == 0, feedback="" if i % 2 == 0 else "static check failed: not python",
                    score=float(i + it) if i % 2 == 0 else float("nan")) for i, c in enumerate(cands)]
    stats = dek.update(it, results, seed)
    return dict(prompt=cands[0].prompt, responses=[c.response for c in cands], stats=stats)


def _strip(x):
    "Stats without timings."
    if isinstance(x, dict): return {k: _strip(v) for k, v in x.items() if "seconds" not in k}
    return x


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(Limits(wall_s=30, cpu_s=30)).start()
    yield sb
    sb.close()


def _dek(llm):
    return DEK(llm, hle_kw=dict(params=SamplingParams(max_new_tokens=16)), lle_kw=dict(lr=1e-2))


def test_resume_equals_uninterrupted(sandbox, tmp_path):
    p = SamplingParams(max_new_tokens=16, temperature=0.7)
    llm = tiny_llm(3)
    dek, des = _dek(llm), LLM4Reward(llm, sandbox=sandbox, score=False, params=p)
    full = [_iteration(dek, des, it) for it in range(3)]

    llm_b = tiny_llm(3)
    dek_b, des_b = _dek(llm_b), LLM4Reward(llm_b, sandbox=sandbox, score=False, params=p)
    part = [_iteration(dek_b, des_b, it) for it in range(2)]
    dek_b.save(tmp_path/"dek")

    llm_c = tiny_llm(3)                                   # "a new process": a fresh copy of the base model
    dek_c, des_c = _dek(llm_c), LLM4Reward(llm_c, sandbox=sandbox, score=False, params=p)
    dek_c.load(tmp_path/"dek")
    part.append(_iteration(dek_c, des_c, 2))

    for a, b in zip(full, part):
        assert a["prompt"] == b["prompt"] and a["responses"] == b["responses"]
        assert _strip(a["stats"]) == _strip(b["stats"])
    assert full[-1]["stats"]["lle"]["step"] == 3 and math.isfinite(full[-1]["stats"]["lle"]["loss"])
    probe = [full[-1]["prompt"]] * 2, full[-1]["responses"][:2]
    assert np.array_equal(dek.lle.logprob(*probe), dek_c.lle.logprob(*probe))
    assert "### What has worked so far" in full[-1]["prompt"]       # HLE's macro prompt reached the designer
