"""mechprobe.record, the recorder for a notebook: against eager output_attentions=True, with a
key/value cache, restoring the model's attention implementation; the README's example runs."""

import inspect
import re
from pathlib import Path

import pytest
import torch
from test_recorder import build, gpt2, llama_gqa, mistral_sliding, padded_batch

import mechprobe


@pytest.mark.parametrize("config_fn", [gpt2, llama_gqa, mistral_sliding], ids=lambda f: f.__name__)
def test_record_equals_eager_attentions(config_fn):
    ids, mask, _ = padded_batch([12, 7, 10], "left", 12)
    eager = build(config_fn, "eager")
    with torch.no_grad():
        expected = eager(input_ids=ids, attention_mask=mask, output_attentions=True)
    model = build(config_fn, "sdpa")
    with torch.no_grad(), mechprobe.record(model, rows=[-1, -3], per_head=True) as attention:
        logits = model(input_ids=ids, attention_mask=mask).logits
    assert attention.layers == [0, 1, 2]
    for layer, full in enumerate(expected.attentions):
        assert torch.allclose(attention[layer], full[:, :, [11, 9]], atol=1e-5), layer
    real = mask.bool()     # padding positions' outputs are garbage in both
    assert torch.allclose(logits[real], expected.logits[real], atol=1e-4)   # output untouched
    assert model.config._attn_implementation == "sdpa"             # and given back
    with torch.no_grad(), mechprobe.record(model, rows=torch.tensor([[3], [4], [5]]),
                                           layers=[1]) as attention:
        model(input_ids=ids, attention_mask=mask)
    assert attention.layers == [1]
    picked = expected.attentions[1].mean(dim=1)[torch.arange(3), [3, 4, 5]]
    assert torch.allclose(attention[1][:, 0], picked, atol=1e-5)


def test_record_with_a_key_value_cache():
    """The second half of a prompt on top of the first half's cache: the same rows as whole."""
    ids, _, _ = padded_batch([12], "left", 12)
    model = build(llama_gqa, "sdpa")
    with torch.no_grad(), mechprobe.record(model, rows=[-1]) as whole:
        model(input_ids=ids)
    with torch.no_grad():
        first = model(input_ids=ids[:, :7], use_cache=True)
        # transformers 5.24 renamed past_key_values to cache
        name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        cache = getattr(first, "cache", None) or first.past_key_values
        with mechprobe.record(model, rows=[-1]) as resumed:
            model(input_ids=ids[:, 7:], use_cache=True, **{name: cache})
    for layer in whole.layers:
        assert torch.allclose(resumed[layer], whole[layer], atol=1e-5)


def test_bad_rows_are_named():
    model = build(gpt2, "sdpa")
    with pytest.raises(ValueError, match="rows"):
        with mechprobe.record(model, rows="last"):
            pass
    with pytest.raises(ValueError, match="outside"):
        with torch.no_grad(), mechprobe.record(model, rows=[40]):
            model(input_ids=torch.tensor([[3, 4, 5]]))
    assert model.config._attn_implementation == "sdpa"


def test_what_record_cannot_use_is_named_before_the_model_is_touched():
    """A module that is not a transformers model, rows that are not positions, layers past the
    model: each a ConfigError naming what it needs (it was a traceback, a TypeError without the
    argument's name, and an empty result without a word)."""
    with pytest.raises(mechprobe.ConfigError, match="record needs a transformers model.*Linear"):
        with mechprobe.record(torch.nn.Linear(3, 3)):
            pass
    model = build(gpt2, "sdpa")
    for rows in (1.5, True, [], None, torch.tensor([[1.5]])):
        with pytest.raises(mechprobe.ConfigError, match="rows .*position"):
            with mechprobe.record(model, rows=rows):
                pass
    for layers in ([99], [-1], [], 1, [True]):
        with pytest.raises(mechprobe.ConfigError, match=r"layers.* has layers 0-2 \(0-based\)"):
            with mechprobe.record(model, layers=layers):
                pass
    assert model.config._attn_implementation == "sdpa"

def test_the_readme_example_runs():
    """The README's notebook example, as written, on a small model in place of SmolLM2."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = re.search(r"```python\n(# mechprobe\.record.*?)```", readme, re.S).group(1)
    from test_recorder import llama_gqa
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = "Anne is big . If someone is big then they are red . Is Anne red ?".split()
    vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>", *dict.fromkeys(words)])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>",
                                        unk_token="<unk>",
                                        model_input_names=["input_ids", "attention_mask"])
    model = build(llama_gqa, "sdpa")
    namespace = {"model": model, "tokenizer": tokenizer}
    loading = re.compile(r"^model, tokenizer = .*$", re.M)    # SmolLM2 needs make_data.py
    assert loading.search(block)
    exec(loading.sub("", block), namespace)
    assert namespace["attention"].layers == [0, 1, 2]
