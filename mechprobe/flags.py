"""Command-line flags shared by several scripts; each is a config field of the same name
(mechprobe/probing/config.py), whose dataclass holds the default."""

from mechprobe.cli import count
from mechprobe.tasks.prompts import PROMPT_STYLES, SHOT_MODES


def add_ksmallest_args(parser, n_examples=1024):
    """Flags naming the k-th smallest examples to analyse (probe, attn_visual, causal, knockout)."""
    parser.add_argument("--k", type=count(0, 1023), help="k-th smallest, 0-based (default: the model's task.json)")
    parser.add_argument("--list-len", type=count(2, 1024), help="numbers per example (default: the model's task)")
    parser.add_argument("--num-set", type=count(2, 10**6), help="number-set size (default: the model's task)")
    parser.add_argument("--n-examples", type=count(1, 10**6), default=n_examples,
                        help="k-th smallest: examples probed (drawn from a stream fine-tuning never "
                        "uses); ProofWriter: at most this many per bucket")
    parser.set_defaults(all_k=False)


def add_prompt_args(parser):
    """Flags of the in-context prompts (probe.py, corrupt.py, knockout.py)."""
    parser.add_argument("--shots", choices=SHOT_MODES,
                        help="with --icl: draw the shots for each question (per-question, the "
                        "default: the paper; seeded by --seed and the question) or use one fixed "
                        "set for every question")
    parser.add_argument("--prompt", choices=PROMPT_STYLES,
                        help="plain (default): the paper's prompt text; chat: the same shots and "
                        "question as turns of the tokenizer's chat template (instruct models)")
    parser.add_argument("--skip-long", action="store_true",
                        help="leave out prompts longer than the model's positions (counted in the "
                        "output) instead of stopping")
