"""The models built here from scratch: the tiny GPT-2 of the k-th smallest task, the tiny Llama
of ProofWriter (both trained by finetune_gpt2.py), and their word-level tokenizers."""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TinyConfig:
    """Size of the embedded GPT-2 trained from scratch (small enough for a 2-core CPU)."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    n_positions: int = 64


# The tiny model for ProofWriter (a Llama; see mechprobe/training/proofwriter.py): longer prompts (up to
# ~250 words) and a harder task than the k-th smallest.
TINY_TEXT = TinyConfig(n_layer=4, n_head=4, n_embd=128, n_positions=512)


def word_tokenizer(words, max_length, split_punctuation=False, specials=("<pad>", "<unk>")):
    """A word-level tokenizer (the `tokenizers` library) over `words`, in the given order.

    Words are split at whitespace, and also at punctuation with split_punctuation ("Bob is big."
    -> Bob, is, big, .). Token offsets are exact, so statement spans map to tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(specials)}
    for word in words:
        vocab.setdefault(str(word), len(vocab))
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = (pre_tokenizers.Whitespace() if split_punctuation
                                else pre_tokenizers.WhitespaceSplit())
    word_level.decoder = decoders.WordPiece()  # joins words with spaces when decoding
    return PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token="<unk>", pad_token="<pad>",
                                   model_max_length=max_length)


def build_tiny(numbers, config=TinyConfig(), seed=0):
    """A randomly initialised GPT-2 with a word-level tokenizer whose words are `numbers`.

    No dropout: trained from scratch on fresh synthetic data, the model does not overfit, and
    dropout only slows learning.

    Both are ordinary transformers objects: save_pretrained() writes a directory that
    AutoModelForCausalLM / AutoTokenizer reload offline.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = word_tokenizer(numbers, config.n_positions)
    gpt2 = GPT2Config(vocab_size=len(tokenizer), n_positions=config.n_positions, n_embd=config.n_embd,
                      n_layer=config.n_layer, n_head=config.n_head, bos_token_id=0, eos_token_id=0,
                      pad_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(gpt2), tokenizer


def build_word_llama(texts, hidden=512, layers=8, heads=8, kv_heads=2, intermediate=2048,
                     max_positions=4096, seed=0):
    """A randomly initialised Llama-architecture model (grouped-query attention) with a word-level
    tokenizer over the words of `texts`: a local stand-in for LLaMA to run the ProofWriter and ARC
    pipelines offline (about 30M parameters at the defaults)."""
    import re

    from transformers import LlamaConfig, LlamaForCausalLM

    words = sorted({w for text in texts for w in re.findall(r"\w+|[^\w\s]+", text)} | {"True", "False"})
    tokenizer = word_tokenizer(words, max_positions, split_punctuation=True,
                               specials=("<pad>", "<unk>", "<s>"))
    tokenizer.bos_token = "<s>"
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv_heads, max_position_embeddings=max_positions,
                         pad_token_id=0, bos_token_id=2, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config), tokenizer
