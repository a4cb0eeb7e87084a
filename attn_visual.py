"""Where does the last token look? Head-averaged attention by sorted rank and by position.

    python attn_visual.py --model runs/tiny-min01/model --out runs/attn-tiny-min01
    python attn_visual.py --model runs/tiny-min01/model --random-init --out runs/attn-tiny-original

Writes OUT/attention_by_rank.{png,pdf}, OUT/attention_by_position.{png,pdf} (layer x rank and
layer x position heatmaps), OUT/results.json with both matrices, and prints per layer the rank
and position that receive the most attention.
"""

from mechprobe.cli import ArgumentParser, add_common_args, quiet_libraries, run
from mechprobe.outputs import output_dir
from mechprobe.flags import add_ksmallest_args


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, model_default=None)
    add_ksmallest_args(parser)
    parser.add_argument("--random-init", action="store_true",
                        help="use the model's architecture and tokenizer, randomly initialised "
                        "(the 'original' model for the tiny GPT-2)")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("--model is required: a fine-tuned model folder (finetune_gpt2.py's OUT/model)")
    quiet_libraries()
    from mechprobe.analysis.attention_maps import AttentionMapsConfig, run as attn_visual
    from mechprobe.probing.config import RunConfig

    with output_dir(args.out, args.force, command="attn_visual.py"):
        attn_visual(AttentionMapsConfig.from_args(args), RunConfig.from_args(args), args.out)


if __name__ == "__main__":
    run(main)
