"""SFT's loss window (hipo.train.sft.label_window): cutting the prompt columns from the lm head gives the
same loss and the same gradients as the whole batch."""

import torch
from transformers import AutoModelForCausalLM

from hipo.train.sft import label_window
from hipo.train.sft_data import IGNORE, Example, collate


def _loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch, num_items_in_batch=30).loss
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])


def test_the_window_keeps_the_loss_and_the_gradients(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [Example(list(range(5, 30)), 12), Example(list(range(7, 20)), 9), Example(list(range(3, 40)), 20)]
    batch = collate(rows, 0, torch.device("cpu"))
    cut = label_window(batch)
    assert cut["logits_to_keep"] == batch["labels"].shape[1] - 8  # the shortest prompt: 9 tokens
    assert (cut["labels"] != IGNORE).sum() == (batch["labels"] != IGNORE).sum()
    (loss, grads), (cut_loss, cut_grads) = _loss_and_grads(model, batch), _loss_and_grads(model, cut)
    assert torch.allclose(loss, cut_loss, atol=1e-6)
    assert torch.allclose(grads, cut_grads, atol=1e-6)
