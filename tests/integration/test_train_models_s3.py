"""A saved policy goes to S3 (SeaweedFS on loopback) and loads back from its s3:// prefix."""

import torch

from hipo import storage
from hipo.config import ModelConfig
from hipo.models.policy import load_policy, save_policy

SMALL = ModelConfig(tiny_hidden=64, tiny_layers=2, tiny_heads=2)


def test_policy_round_trip_through_s3(s3_prefix, tmp_path):
    policy = load_policy("tiny", SMALL, tmp_path)
    storage.upload_dir(save_policy(policy, tmp_path / "saved"), f"{s3_prefix}/policy")
    loaded = load_policy(f"{s3_prefix}/policy", SMALL, tmp_path / "cache")
    assert loaded.source == f"{s3_prefix}/policy" and loaded.ids == policy.ids
    ids = torch.tensor([policy.tokenizer.encode("What is 12 + 7?<think_on>", add_special_tokens=False)])
    with torch.no_grad():
        assert torch.equal(
            loaded.model.eval()(input_ids=ids).logits, policy.model.eval()(input_ids=ids).logits
        )
    assert list((tmp_path / "cache").iterdir()) == []  # the downloaded copy is removed once loaded
