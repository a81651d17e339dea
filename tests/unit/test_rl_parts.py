"""RL loop parts on the tiny model: data cursor, rollout tensors and advantages, log-probs, micro-batched
updates, metrics (collapse alarm, MLflow on a real SQLite store)."""

import copy
import json
import logging
from dataclasses import replace

import pytest
import torch
from rl_support import synthetic_batch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hipo import template
from hipo.config import DistributedEnv, SamplingConfig, build_config
from hipo.engines.base import Completion
from hipo.engines.hf import HFEngine
from hipo.tasks.arithmetic import ArithmeticTask
from hipo.train import algorithm as alg
from hipo.train.cursor import DataCursor
from hipo.train.logprobs import batch_logprobs
from hipo.train.metrics import MetricsTracker, rl_run_name, summarize
from hipo.train.rl import make_updater
from hipo.train.rollout import build_batch, pad_rows
from hipo.train.update import policy_update

TASK = ArithmeticTask([1])


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return (
        AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(),
        tokenizer,
        template.add_hipo_tokens(tokenizer),
    )


def _completion(tokenizer, text):
    return Completion(text, tuple(tokenizer.encode(text, add_special_tokens=False)))


def _group(tokenizer, problem, modes_and_answers):
    """Completions in the given modes with the given answers (think-on gets a one-line trace)."""
    out = []
    for mode, answer in modes_and_answers:
        think = "1+1=2" if mode == "on" else None
        out.append(_completion(tokenizer, template.render(mode, "Why.", str(answer), think=think)))
    return out


def test_cursor_is_seeded_resumable_and_wraps_epochs():
    items = list(range(10))
    a = DataCursor(items, seed=3)
    first = a.take(4) + a.take(4) + a.take(4)  # crosses into the second epoch
    assert sorted(first[:10]) == items and first[:10] != items
    b = DataCursor(items, seed=3)
    b.take(5)
    c = DataCursor(items, seed=3)
    c.load_state_dict(b.state_dict())
    assert c.take(7) == b.take(7) == DataCursor(items, seed=3).take(12)[5:]
    with pytest.raises(ValueError, match="cannot resume"):
        DataCursor(items[:5], seed=3).load_state_dict(b.state_dict())


def test_pad_rows_puts_every_response_at_the_same_column():
    ids, mask, width_p, response_mask = pad_rows([[1, 2], [3]], [[4], [5, 6, 7]], pad_id=0)
    assert width_p == 2
    assert ids.tolist() == [[1, 2, 4, 0, 0], [0, 3, 5, 6, 7]]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]]
    assert response_mask.tolist() == [[True, False, False], [True, True, True]]


@pytest.mark.parametrize("algorithm", ["hipo", "grpo"])
def test_build_batch_scores_modes_spans_and_advantages(tiny, algorithm):
    _, tokenizer, ids = tiny
    rl = build_config({"rl": {"algorithm": algorithm, "group_size": 4}}).rl
    problems = TASK.problems("train", 2, seed=0)
    right = [int(p.answer) for p in problems]
    completions = [
        _group(tokenizer, problems[0], [("on", right[0]), ("on", right[0]), ("off", right[0]), ("off", -1)]),
        [*_group(tokenizer, problems[1], [("off", right[1])] * 3), _completion(tokenizer, "no tags at all")],
    ]
    batch = build_batch(problems, completions, TASK, tokenizer, ids, rl)
    assert batch.correct.tolist() == [True, True, True, False, True, True, True, False]
    assert batch.format_ok.tolist() == [True] * 7 + [False]
    assert batch.modes.tolist() == [1, 1, 0, 0, 0, 0, 0, -1]
    assert batch.rewards.tolist() == pytest.approx([1.2, 1.2, 1.2, 0.2, 1.2, 1.2, 1.2, 0.0])
    response = batch.input_ids[:, batch.prompt_width :]
    for row, completion in enumerate(c for group in completions for c in group):
        n = len(completion.token_ids)
        assert response[row, :n].tolist() == list(completion.token_ids)
        assert batch.response_mask[row].sum() == n
    judge_len = template.judge_span_lengths(response, batch.response_mask, ids)
    assert response[0, judge_len[0] - 1] == ids.think_on and judge_len[7] == 0
    shape = (2, 4)
    if algorithm == "hipo":
        biased = alg.bias_adjust(batch.rewards.view(shape), batch.modes.view(shape), "relative", 0.05)
        judge, answer = alg.hipo_advantages(biased, batch.modes.view(shape))
    else:
        judge = answer = alg.grpo_advantages(batch.rewards.view(shape))
        judge_len = torch.zeros_like(judge_len)
    expected = alg.token_advantages(
        judge, answer, judge_len.view(shape), batch.response_mask.view(*shape, -1)
    )
    assert torch.allclose(batch.advantages, expected.view(8, -1))
    kept = batch.select_groups(torch.tensor([False, True]))
    assert kept.num_groups == 1 and torch.equal(kept.rewards, batch.rewards[4:])


def test_logprobs_match_generation_and_do_not_depend_on_micro_batches(tiny):
    model, tokenizer, ids = tiny
    problems = ArithmeticTask([1, 2, 5]).problems("train", 3, seed=1)
    rl = build_config({"rl": {"group_size": 3}}).rl
    engine = HFEngine(model, tokenizer, batch_size=9, seed=0)
    completions = engine.generate([p.prompt for p in problems], 3, SamplingConfig(max_new_tokens=16))
    batch = build_batch(problems, completions, TASK, tokenizer, ids, rl)
    whole, entropy = batch_logprobs(
        model, batch.input_ids, batch.attention_mask, batch.prompt_width, 64, True
    )
    split, _ = batch_logprobs(model, batch.input_ids, batch.attention_mask, batch.prompt_width, 2)
    assert torch.allclose(whole, split, atol=1e-5)
    assert (entropy[batch.response_mask] > 0).all()
    for row, completion in enumerate(c for group in completions for c in group):
        got = whole[row, : len(completion.logprobs)]
        assert torch.allclose(got, torch.tensor(completion.logprobs), atol=1e-4)
        assert batch.response_mask[row].sum() == len(completion.logprobs)  # padding's log-probs never count


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_micro_batched_update_equals_one_big_batch(tiny, loss_agg):
    model, _, _ = tiny
    batch = synthetic_batch(model.config.vocab_size)
    params = []
    for micro in (3, 64):
        optim = {"micro_batch_size": micro, "lr": 2e-4}
        config = build_config({"rl": {"loss_agg": loss_agg, "ppo_epochs": 2, "optim": optim}})
        trained = copy.deepcopy(model)
        stats = policy_update(make_updater(config, DistributedEnv(), trained), batch, config.rl, norm_len=16)
        params.append((torch.cat([p.detach().flatten() for p in trained.parameters()]), stats))
    (a, stats_a), (b, stats_b) = params
    assert not torch.equal(a, torch.cat([p.detach().flatten() for p in model.parameters()]))
    # Adam turns float noise in near-zero gradients into steps of up to ~lr/10, hence the small lr
    assert torch.allclose(a, b, atol=2e-5)
    for key in ("loss", "clip_frac", "grad_norm", "entropy"):
        assert stats_a[key] == pytest.approx(stats_b[key], rel=1e-4, abs=1e-6), key
    assert stats_a["kl"] is None and stats_a["clip_frac"] > 0  # the second epoch moved off ratio 1


def _update(model, batch, rl_values, reference):
    """(weights after one policy_update of a copy of ``model``, its stats); ``reference``: pass a frozen
    copy as the KL reference, which (even at kl_beta 0) makes the update recompute π_old in its own
    pass and forward every row, as it did before those were skipped."""
    config = build_config({"rl": rl_values})
    trained = copy.deepcopy(model)
    updater = make_updater(config, DistributedEnv(), trained)
    ref = updater.frozen(copy.deepcopy(model)) if reference else None
    stats = policy_update(updater, batch, config.rl, norm_len=16, ref_model=ref)
    return torch.cat([p.detach().flatten() for p in trained.parameters()]), stats


def _with_uniform_groups(batch, groups):
    adv = batch.advantages.clone().view(batch.num_groups, batch.group_size, -1)
    adv[groups] = 0.0
    return replace(batch, advantages=adv.view_as(batch.advantages))


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_reusing_the_training_forward_as_pi_old_gives_the_same_weights_bit_for_bit(tiny, loss_agg):
    """One PPO epoch, no reference: π_old's log-probs are the training forward's own, detached."""
    model, _, _ = tiny
    batch = synthetic_batch(model.config.vocab_size)
    rl = {"loss_agg": loss_agg, "kl_beta": 0.0, "optim": {"micro_batch_size": 64, "lr": 2e-4}}
    (fast, fast_stats), (full, full_stats) = (_update(model, batch, rl, r) for r in (False, True))
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (fast - start).abs().max() > 1e-4 and torch.equal(fast, full)
    for key in ("loss", "clip_frac", "grad_norm", "entropy"):
        assert fast_stats[key] == full_stats[key], key


@pytest.mark.parametrize("micro", [3, 64])
def test_skipping_zero_advantage_rows_gives_the_same_update(tiny, micro):
    """Groups 0 and 2 have advantage 0 everywhere: left out of the forward, counted in the normaliser."""
    model, _, _ = tiny
    batch = _with_uniform_groups(synthetic_batch(model.config.vocab_size), [0, 2])
    rl = {"kl_beta": 0.0, "optim": {"micro_batch_size": micro, "lr": 2e-4}}
    (fast, fast_stats), (full, full_stats) = (_update(model, batch, rl, r) for r in (False, True))
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (fast - start).abs().max() > 1e-4
    assert torch.allclose(fast, full, atol=2e-5)  # float order only (see the micro-batch test above)
    for key in ("loss", "clip_frac", "grad_norm"):
        assert fast_stats[key] == pytest.approx(full_stats[key], rel=1e-4, abs=1e-6), key


def test_an_update_with_only_zero_advantages_still_steps_the_optimiser(tiny):
    """AdamW's weight decay moves the weights on a zero gradient: skipping every row must not skip that."""
    model, _, _ = tiny
    batch = _with_uniform_groups(synthetic_batch(model.config.vocab_size), [0, 1, 2, 3])
    rl = {"kl_beta": 0.0, "optim": {"micro_batch_size": 8, "lr": 1e-2, "weight_decay": 0.1}}
    (fast, fast_stats), (full, _) = (_update(model, batch, rl, r) for r in (False, True))
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert not torch.equal(fast, start) and torch.equal(fast, full)
    assert fast_stats["grad_norm"] == 0.0


def _think_on_rows(tiny, n_groups=2):
    _, tokenizer, ids = tiny
    problems = TASK.problems("train", n_groups, seed=0)
    completions = [_group(tokenizer, p, [("on", p.answer), ("on", 0)]) for p in problems]
    rl = build_config({"rl": {"group_size": 2}}).rl
    batch = build_batch(problems, completions, TASK, tokenizer, ids, rl)
    rows = {"reward": batch.rewards, "correct": batch.correct.float(), "format_ok": batch.format_ok.float()}
    return {**rows, "mode": batch.modes, "length": batch.lengths, "difficulty": batch.difficulty}


def _metrics(rows):
    update = {"loss": 0.0, "clip_frac": 0.0, "kl": None, "grad_norm": 0.0, "entropy": 1.0, "lr": 1e-3}
    return {**summarize(rows), **update, "time_step": 0.1}


def test_collapse_alarm_fires_after_k_steps_of_think_rate_one(tiny, tmp_path, caplog):
    rows = _think_on_rows(tiny)
    summary = summarize(rows)
    assert summary["think_rate"] == 1.0 and summary["think_rate_d1"] == 1.0
    assert summary["accuracy_on"] == 0.5 and summary["accuracy_off"] is None
    config = build_config({"rl": {"collapse_alarm_steps": 3, "steps": 10}})
    tracker = MetricsTracker(tmp_path, config, main=True, params={})
    mixed = {**rows, "mode": torch.tensor([1, 0, 1, 1])}
    with caplog.at_level(logging.WARNING, logger="hipo.train.metrics"):
        for step, batch_rows in enumerate([rows, rows, mixed, rows, rows], 1):
            tracker.log(step, _metrics(batch_rows))
        assert not tracker.collapsed and not caplog.records  # the mixed step reset the count
        tracker.log(6, _metrics(rows))
    assert tracker.collapsed and "mode collapse" in caplog.text
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["collapse_steps"] for line in lines] == [1, 2, 0, 1, 2, 3]
    assert lines[0]["kl"] is None


def test_rl_runs_are_named_by_algorithm_and_cold_start():
    assert rl_run_name("grpo", "on") != rl_run_name("grpo", "mix") == "rl (grpo from mix)"
    assert rl_run_name("hipo", "mix") == "rl (hipo from mix)" and rl_run_name("hipo") == "rl (hipo)"


def test_metrics_go_to_a_real_mlflow_sqlite_store(tiny, tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    config = build_config({"rl": {"omega": 0.1}, "registry": {"experiment": "hipo-test"}})
    params = {"rl.omega": 0.1, "policy_source": "x"}
    tracker = MetricsTracker(tmp_path, config, main=True, params=params, run_name=rl_run_name("grpo", "on"))
    for step in (1, 2):
        tracker.log(step, _metrics(_think_on_rows(tiny)))
    tracker.close()
    assert f"rl step 2/{config.rl.steps}" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.mlflow_run_id)
    assert run.data.params["rl.omega"] == "0.1" and run.info.status == "FINISHED"
    assert run.info.run_name == "rl (grpo from on)"  # GRPO from either cold start, told apart
    assert client.get_experiment(run.info.experiment_id).name == "hipo-test"
    history = client.get_metric_history(run.info.run_id, "reward_mean")
    assert [m.step for m in history] == [1, 2]
    assert "kl" not in run.data.metrics and run.data.metrics["think_rate"] == 1.0
