"""Probing runs side by side: per shared setting accuracy, S_P1 and S_P2 with their intervals and
tree recovery, and a figure of layer-wise S_P per run overlaid.

    python compare.py runs/probing-gpt2/min01 runs/probe-random-min01
    python compare.py runs/probe-tiny runs/probe-gpt2-pretrained --out runs/compare-pretrained

Refuses, in one line, folders that probe another task or data, or probe it another way.
"""

from mechprobe.cli import ArgumentParser, path_text, run


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=path_text, help="probe.py result folders (--out)")
    parser.add_argument("--out", type=path_text,
                        help="also write OUT/comparison.txt and OUT/comparison.{png,pdf}")
    parser.add_argument("--force", action="store_true",
                        help="write into an --out folder that holds other files")
    args = parser.parse_args(argv)
    from mechprobe.analysis.compare import compare

    if args.out is None:
        print(compare(args.runs))
        return
    from mechprobe.outputs import output_dir

    with output_dir(args.out, args.force, command="compare.py"):
        print(compare(args.runs, args.out))
    print(f"comparison: {args.out}/comparison.txt, comparison.png")


if __name__ == "__main__":
    run(main)
