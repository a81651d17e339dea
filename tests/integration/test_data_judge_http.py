"""Judge rationales from a strong model over HTTP (OpenAIEngine against the loopback fake server)."""

from hipo.config import EndpointConfig, build_config
from hipo.data.pipeline import generate_dataset
from hipo.data.rationale import LLMRationaleWriter
from hipo.engines.openai_http import OpenAIEngine
from hipo.engines.scripted import ScriptedEngine
from hipo.tasks import get_task
from hipo.tasks.rationale import RationaleRequest, TemplateRationaleWriter, leaks_answer


def writer_for(server, cache_dir):
    endpoint = EndpointConfig(base_url=server.url, model="judge-model", max_concurrency=4)
    return LLMRationaleWriter(OpenAIEngine(endpoint, cache_dir, backoff_s=0.01), max_workers=4)


def request(prompt, answer):
    return RationaleRequest("q", prompt, "on", 1.0, 0.25, 8, answer)


def test_clean_leaky_and_stubborn_rationales(chat_server_factory, tmp_path):
    server = chat_server_factory()
    writer = writer_for(server, tmp_path)
    clean, reminded, stubborn = writer.write(
        [
            request("What is 40 + 60?", "100"),
            request("What is 40 + 61?", "101"),
            request("What is 2 + 3? stubborn", "5"),
        ]
    )
    assert clean == "Adding 2 numbers needs attention to carries across columns."
    assert server.received == 1 + 2 + 2  # clean once; leak + rewrite; leak twice
    assert not leaks_answer(reminded, "101") and "carries" in reminded
    assert not leaks_answer(stubborn, "5") and "Think" not in stubborn and writer.fallbacks == 1
    assert stubborn == TemplateRationaleWriter.one(request("What is 2 + 3?", "5")) == "hard"  # the template
    # the judge never sees the answer ("100%" is a pass rate)
    first_turns = [b["messages"][1]["content"] for b in server.bodies]
    assert not any(leaks_answer(text, "100") or leaks_answer(text, "101") for text in first_turns)


def test_pipeline_with_http_judge_and_a_free_rerun(chat_server_factory, tmp_path):
    server = chat_server_factory(rate_limit_first=2, server_error_first=1)
    config = build_config({"task": {"train_size": 60, "eval_size": 20}})
    task = get_task("arithmetic")
    stats = generate_dataset(
        config, task, ScriptedEngine(seed=0), writer_for(server, tmp_path / "c"), tmp_path
    )
    assert stats["rationale_model"] == "openai:judge-model"
    judge = stats["usage"]["judge"]
    assert judge["requests"] > 0 and judge["retries"] == 3 and judge["completion_tokens"] > 0
    sent = server.received
    again = generate_dataset(
        config, task, ScriptedEngine(seed=0), writer_for(server, tmp_path / "c"), tmp_path
    )
    assert server.received == sent  # every rationale came from the cache
    assert again["usage"]["judge"]["cached"] == judge["requests"] + judge["cached"]
