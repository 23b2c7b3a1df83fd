"""The command line of the classifier: `newsmon classify` and `newsmon eval` (argument parsing
only; the commands themselves are in commands.py)."""

from __future__ import annotations

import argparse
import sys

from newsmon.classifier.commands import MISSES_SHOWN, classify_command, eval_command
from newsmon.classifier.engine import Classifier

__all__ = ["add_subcommands"]


def _threshold(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError("the threshold is a score in [0, 1]")
    return number


def _run_classify(args: argparse.Namespace) -> int:
    return classify_command(
        args.file, sys.stdout, sys.stderr, classifier=Classifier.default(args.threshold)
    )


def _run_eval(args: argparse.Namespace) -> int:
    return eval_command(
        args.file, args.json, sys.stdout, threshold=args.threshold, misses=args.misses
    )


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("a count cannot be negative")
    return number


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `classify` and `eval` on the `newsmon` CLI's subparsers."""
    classify = subparsers.add_parser(
        "classify",
        help="classify news items (JSON lines) for NK–Russia military cooperation",
        description=(
            "Read JSON lines with id, title, summary and optional text and lang; write one JSON "
            'line per item: {"id", "match", "score", "categories", "evidence", "version"}. '
            "Bad lines are reported on stderr with their line number and skipped; the exit "
            "code is 1 if any line was bad, else 0."
        ),
    )
    classify.add_argument(
        "file", nargs="?", default="-", metavar="FILE|-", help="input (default: stdin)"
    )
    classify.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        metavar="X",
        help="score needed to match (default: fitted)",
    )
    classify.set_defaults(func=_run_classify)

    evaluate = subparsers.add_parser(
        "eval",
        help="measure the classifier on a labelled JSON-lines file",
        description=(
            'FILE holds JSON lines like classify\'s input plus "label" (positive, negative or '
            'ambiguous; ambiguous items are excluded), and optionally "categories" (the gold '
            "topics of a positive: troops, casualties, weapons, tech_transfer, "
            'treaty_diplomacy) and "kind" (a name for the sort of negative). Prints precision, '
            "recall, F1 and confusion counts overall and per language, per-category precision/"
            "recall/F1 against the gold categories (when given), flagged negatives per kind, "
            "and the misses with every lexicon term found in each field."
        ),
    )
    evaluate.add_argument("file", metavar="FILE", help="labelled JSON lines")
    evaluate.add_argument(
        "--json",
        action="store_true",
        help=(
            'print one JSON object: {"precision","recall","f1","tp","fp","fn","tn","n",'
            '"by_lang","by_category","misses"}'
        ),
    )
    evaluate.add_argument(
        "--misses",
        type=_count,
        default=MISSES_SHOWN,
        metavar="N",
        help=f"misses listed per kind in the text report (default {MISSES_SHOWN})",
    )
    evaluate.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        metavar="X",
        help="score needed to match (default: fitted)",
    )
    evaluate.set_defaults(func=_run_eval)
