"""OpenAIEngine against a real HTTP server on loopback (tests/fakes/chat_server.py): retries, cache."""

import time

import pytest

from hipo import template
from hipo.config import EndpointConfig, SamplingConfig
from hipo.engines.base import EngineError
from hipo.engines.openai_http import OpenAIEngine

PROMPTS = ["What is 2 + 3?", "What is 417 + 88?", "What is 12 + 30?"]
SAMPLING = SamplingConfig(temperature=0.7, top_p=0.95, max_new_tokens=64)
KEY_ENV = "HIPO_TEST_TEACHER_KEY"


def _engine(server, cache_dir=None, **fields):
    fields = {"max_retries": 3, "timeout_s": 5.0, **fields}
    endpoint = EndpointConfig(
        base_url=server.url, model="fake-teacher", api_key_env=KEY_ENV,
        usd_per_1k_prompt_tokens=1.0, usd_per_1k_completion_tokens=2.0, **fields,
    )  # fmt: skip
    return OpenAIEngine(endpoint, cache_dir, seed=10, backoff_s=0.01)


def test_happy_path_formats_seeds_and_usage(chat_server_factory):
    server = chat_server_factory()
    engine = _engine(server)
    result = engine.generate(PROMPTS, 2, SAMPLING)
    assert [len(row) for row in result] == [2, 2, 2]
    parsed = template.parse(result[1][0].text)
    assert parsed.format_ok and parsed.answer == "505" and parsed.mode == "on"
    assert template.parse(result[0][0].text).mode == "off"
    assert result[0][0].finish_reason == "stop" and result[0][0].token_ids is None
    assert "seed 10" in result[0][0].text and "seed 11" in result[0][1].text  # seed = base + sample index
    assert sorted(b["seed"] for b in server.bodies) == [10, 10, 10, 11, 11, 11]
    body = server.bodies[0]
    assert body["model"] == "fake-teacher" and body["max_tokens"] == 64 and body["temperature"] == 0.7
    assert body["messages"][0]["role"] == "system" and "<think_on>" in body["messages"][0]["content"]
    usage = engine.usage
    assert (usage.requests, usage.cached, usage.retries) == (6, 0, 0)
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    expected = (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1000
    assert usage.cost_usd == pytest.approx(expected)
    assert engine.name == "openai:fake-teacher"


def test_chat_is_one_plain_completion(chat_server_factory):
    server = chat_server_factory()
    text = _engine(server).chat([{"role": "user", "content": "What is 1 + 1?"}], SAMPLING, sample_index=3)
    assert template.parse(text).answer == "2"
    assert server.bodies[0]["seed"] == 13 and len(server.bodies[0]["messages"]) == 1


@pytest.mark.parametrize("prefill_mode", [False, True])
@pytest.mark.parametrize("mode", ["on", "off"])
def test_forced_mode_instruction_and_prefill(chat_server_factory, mode, prefill_mode):
    server = chat_server_factory()
    endpoint = EndpointConfig(base_url=server.url, model="fake-teacher", api_key_env=KEY_ENV)
    engine = OpenAIEngine(endpoint, None, prefill_mode=prefill_mode)
    (completion,) = engine.generate(["What is 2 + 3?"], 1, SAMPLING, forced_mode=mode)[0]
    parsed = template.parse(completion.text)
    assert parsed.format_ok and parsed.mode == mode and parsed.answer == "5"
    body = server.bodies[0]
    assert f"Mode for this query: Think-{mode}" in body["messages"][0]["content"]
    if prefill_mode:
        assert body["messages"][-1] == {"role": "assistant", "content": template.prefill(mode)}
        assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
        assert completion.text.startswith(template.prefill(mode))
    else:
        assert body["messages"][-1]["role"] == "user" and "continue_final_message" not in body


def test_forced_prefill_carries_the_judge(chat_server_factory):
    server = chat_server_factory()
    endpoint = EndpointConfig(base_url=server.url, model="fake-teacher", api_key_env=KEY_ENV)
    engine = OpenAIEngine(endpoint, None, prefill_mode=True)
    (completion,) = engine.generate(["What is 2 + 3?"], 1, SAMPLING, "off", ["Tiny sum."])[0]
    assert server.bodies[0]["messages"][-1]["content"] == template.prefill("off", "Tiny sum.")
    assert template.parse(completion.text).judge == "Tiny sum."


def test_length_finish_reason(chat_server_factory):
    server = chat_server_factory()
    (completion,) = _engine(server).generate(PROMPTS[:1], 1, SamplingConfig(max_new_tokens=1))[0]
    assert completion.finish_reason == "length"


@pytest.mark.parametrize("fault", ["rate_limit_first", "server_error_first"])
def test_429_and_500_are_retried(chat_server_factory, fault):
    server = chat_server_factory(**{fault: 2}, retry_after=0.05)
    engine = _engine(server)
    started = time.monotonic()
    (completion,) = engine.generate(PROMPTS[:1], 1, SAMPLING)[0]
    assert template.parse(completion.text).answer == "5"
    assert server.received == 3 and engine.usage.retries == 2 and engine.usage.requests == 1
    if fault == "rate_limit_first":
        assert time.monotonic() - started >= 0.1  # Retry-After: 0.05, twice


@pytest.mark.parametrize(
    ("fault", "cause"),
    [("garbage_first", "truncated or non-JSON body"), ("not_json_first", "not a chat completion")],
)
def test_http_200_with_an_unreadable_body_is_retried_then_named(chat_server_factory, fault, cause):
    server = chat_server_factory(**{fault: 2})
    engine = _engine(server)
    (completion,) = engine.generate(PROMPTS[:1], 1, SAMPLING)[0]
    assert template.parse(completion.text).answer == "5"
    assert server.received == 3 and engine.usage.retries == 2 and engine.usage.requests == 1
    always = chat_server_factory(**{fault: 10})
    with pytest.raises(
        EngineError, match=rf"{always.url}.*after 2 retries \(last: HTTP 200 with .*{cause}\)"
    ):
        _engine(always, max_retries=2).generate(PROMPTS[:1], 1, SAMPLING)
    assert always.received == 3


def test_timeouts_are_retried(chat_server_factory):
    server = chat_server_factory(slow_first=1, slow_s=1.0)
    engine = _engine(server, timeout_s=0.3)
    (completion,) = engine.generate(PROMPTS[:1], 1, SAMPLING)[0]
    assert template.parse(completion.text).answer == "5"
    assert server.received == 2 and engine.usage.retries == 1


def test_401_names_the_key_variable_and_is_not_retried(chat_server_factory):
    server = chat_server_factory(unauthorized=True)
    with pytest.raises(EngineError, match=f"HTTP 401.*set the environment variable {KEY_ENV}"):
        _engine(server).generate(PROMPTS[:1], 1, SAMPLING)
    assert server.received == 1


def test_exhausted_retries_name_endpoint_and_status(chat_server_factory):
    server = chat_server_factory(server_error_first=10)
    with pytest.raises(EngineError, match=rf"{server.url}.*after 2 retries \(last: HTTP 500\)"):
        _engine(server, max_retries=2).generate(PROMPTS[:1], 1, SAMPLING)
    assert server.received == 3


def test_concurrency_is_bounded(chat_server_factory):
    server = chat_server_factory(delay_s=0.05)
    engine = _engine(server, max_concurrency=3)
    result = engine.generate(PROMPTS * 3, 2, SAMPLING)
    assert sum(len(row) for row in result) == 18 and server.answered == 18
    assert 1 < server.max_in_flight <= 3


def test_restart_mid_run_resumes_from_the_cache(chat_server_factory, tmp_path):
    prompts = [f"What is {i} + {i + 1}?" for i in range(6)]
    first = chat_server_factory(fail_after=5)
    with pytest.raises(EngineError, match="HTTP 503"):
        _engine(first, tmp_path, max_retries=1, max_concurrency=4).generate(prompts, 2, SAMPLING)
    assert first.answered == 5 and len(list(tmp_path.rglob("*.json"))) == 5
    assert not list(tmp_path.rglob("*.tmp"))

    second = chat_server_factory()  # a new server on another port: the cache ignores the URL
    engine = _engine(second, tmp_path)
    result = engine.generate(prompts, 2, SAMPLING)
    assert second.received == 12 - 5 and engine.usage.cached == 5 and engine.usage.requests == 7
    rerun = _engine(second, tmp_path)
    assert [[c.text for c in row] for row in rerun.generate(prompts, 2, SAMPLING)] == [
        [c.text for c in row] for row in result
    ]
    assert second.received == 7 and rerun.usage.cached == 12
    assert (rerun.usage.requests, rerun.usage.prompt_tokens, rerun.usage.cost_usd) == (0, 0, 0.0)
    # another sampling parameter is another request
    rerun.generate(prompts[:1], 1, SamplingConfig(temperature=0.3))
    assert second.received == 8


def test_key_handling(monkeypatch, chat_server_factory):
    monkeypatch.delenv(KEY_ENV, raising=False)
    remote = EndpointConfig(base_url="https://api.example.invalid/v1", model="m", api_key_env=KEY_ENV)
    with pytest.raises(EngineError, match=f"no API key: set the environment variable {KEY_ENV}"):
        OpenAIEngine(remote, None)
    with pytest.raises(EngineError, match="no model name"):
        OpenAIEngine(EndpointConfig(base_url="http://127.0.0.1:1/v1"), None)
    monkeypatch.setenv(KEY_ENV, "sk-test-secret")
    server = chat_server_factory()
    engine = _engine(server)
    engine.generate(PROMPTS[:1], 1, SAMPLING)
    assert engine._client.api_key == "sk-test-secret"
    assert "sk-test-secret" not in repr(engine.usage)
