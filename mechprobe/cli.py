"""Shared command-line plumbing: common flags, one-line errors, readable tables."""

import argparse
import os
import sys


class UserError(Exception):
    """A problem the user can fix; printed as one line, no traceback, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr naming the fix, not usage plus error."""

    def error(self, message):
        self.exit(2, f"error: {message} (run with --help for the accepted values)\n")


def add_common_args(parser, model_default="tiny", out_required=True):
    """The flags every entry point accepts (DESIGN.md, 'Contracts')."""
    parser.add_argument("--model", default=model_default,
                        help="'tiny' for the embedded small GPT-2, else a hub id or local directory")
    parser.add_argument("--out", required=out_required, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--batch-size", type=int, default=None)


def quiet_libraries():
    """Keep stdout readable: transformers' own progress bars and advice are noise in our tables."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def run(main):
    """Call main(); turn UserError and Ctrl-C into one line on stderr and a non-zero exit."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        sys.exit(130)


def format_table(rows, columns):
    """Rows of dicts as a plain fixed-width table; floats with 4 decimals, None as '-'."""

    def cell(value):
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)
