"The OpenAI-compatible backend end to end: a stdlib server on 127.0.0.1, the real `openai` client, scripted failures."
import pytest

from serl.core import RunRecords, SerlError
from serl.design.llm import LocalOpenAIServer, OpenAILLM, make_llm


def test_echo_chat_and_completions(tmp_path):
    with LocalOpenAIServer(None, model="echo-model") as srv:
        llm = make_llm(f"server:{srv.base_url}", records=RunRecords(tmp_path))
        out = llm.generate(["hello world", [{"role": "user", "content": "a b c d e"}]], n=2, max_new_tokens=4, seed=5)
        txt = OpenAILLM("echo-model", srv.base_url, chat=False).generate("x y", max_new_tokens=8, stop=[" y"])
    assert llm.name == "echo-model"
    assert out == [["echo 0: hello world", "echo 1: hello world"], ["echo 0: a b", "echo 1: a b"]]
    assert txt == [["echo 0: x"]]
    paths = [r["path"] for r in srv.requests]
    assert paths[0] == "/v1/models" and sorted(paths[1:3]) == ["/v1/chat/completions"]*2 and paths[3] == "/v1/completions"
    assert all(r["seed"] == 5 and r["n"] == 2 and r["max_tokens"] == 4 for r in srv.requests[1:3])
    rec = RunRecords(tmp_path).read("llm")
    assert len(rec) == 1 and rec[0]["responses"] == out and rec[0]["completion_tokens"] == [[4, 4], [4, 4]]


def test_retries_then_success():
    with LocalOpenAIServer(None, faults=[429, 500, "malformed"]) as srv:
        llm = OpenAILLM("echo", srv.base_url, max_retries=3, backoff=0.01)
        assert llm.generate("ping", max_new_tokens=3) == [["echo 0: ping"]]
    assert llm.stats["retries"] == 3 and llm.stats["requests"] == 4 and len(srv.requests) == 4
    assert llm.stats["failures"] == {"rate_limit": 1, "server_error": 1, "malformed": 1}


@pytest.mark.parametrize("fault,words", [(429, "rate limited"), (503, "HTTP 503"), ("no_choices", "malformed reply"),
                                         ("timeout", "no reply within")])
def test_failure_is_clear_and_bounded(fault, words):
    with LocalOpenAIServer(None, faults=[fault]*5, slow_s=1.0) as srv:
        llm = OpenAILLM("echo", srv.base_url, max_retries=1, backoff=0.01, timeout=0.3)
        with pytest.raises(SerlError, match=words) as e:
            llm.generate("ping")
        assert "after 2 attempts" in str(e.value) and srv.base_url in str(e.value)
    assert len(srv.requests) == 2 and llm.stats["retries"] == 1


def test_client_error_not_retried():
    with LocalOpenAIServer(None, faults=[401]) as srv:
        llm = OpenAILLM("echo", srv.base_url, max_retries=4, backoff=0.01)
        with pytest.raises(SerlError, match="HTTP 401"):
            llm.generate("ping")
    assert len(srv.requests) == 1


def test_guided_decoding_fields_and_fallback():
    "A grammar (expression hole) and a JSON Schema (data hole) go to the server as vLLM and llama.cpp fields; a server that refuses them gets plain requests."
    from serl.design.kinds import KINDS
    hole, data = KINDS["reward"].template.holes[0].grammar, KINDS["profiles"].template.holes[0].grammar
    with LocalOpenAIServer(None) as srv:
        llm = OpenAILLM("echo", srv.base_url, chat=False)
        llm.generate("x =", max_new_tokens=3, constraint=hole)
        llm.generate("p =", max_new_tokens=3, constraint=data)
    g, j = srv.requests
    assert g["guided_grammar"] == g["grammar"] == hole.gbnf() and "side" in g["grammar"] and "root ::=" in g["grammar"]
    assert j["guided_json"] == j["json_schema"] == data.json_schema() and j["json_schema"]["type"] == "array"
    assert llm.last["constrained"] == "server"
    with LocalOpenAIServer(None, guided=False) as srv:                    # refuses unknown fields with HTTP 400
        llm = OpenAILLM("echo", srv.base_url, chat=False, max_retries=0)
        out = llm.generate("x =", max_new_tokens=3, constraint=hole)
        llm.generate("y =", max_new_tokens=3, constraint=hole)
    assert out == [["echo 0: x"]] and llm.guided is False and llm.last["constrained"] == "validate"
    assert "grammar" in srv.requests[0] and not any("grammar" in r for r in srv.requests[1:]) and len(srv.requests) == 3
