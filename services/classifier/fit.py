"""Fit the classifier's weights and threshold on a labelled JSON-lines set, with k-fold CV.

    python -m newsmon.classifier.fit ../shared/corpus/news/dev.jsonl [--write]

The labelled set is only measured: its items never enter the repository, only the dozen fitted
numbers and the cross-validation figures (written to weights.json with --write). Plain-Python
logistic regression (Newton's method with L2), since the model has a dozen weights.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsmon.classifier.engine import FEATURES, MODEL_VERSION, extract_features
from newsmon.classifier.lexicon import load_lexicon

__all__ = ["Model", "fit_logistic", "main"]

_L2 = 1.0
_FOLDS = 5
_SEED = 20240619  # the day the treaty was signed; any fixed seed would do
_GRID = [round(0.05 + 0.01 * i, 2) for i in range(91)]
# The product's precision target: the threshold is the best-F1 one among those that keep
# precision at or above it on the data the threshold is chosen from (the training folds).
_MIN_PRECISION = 0.95


@dataclass(frozen=True, slots=True)
class Model:
    bias: float
    weights: tuple[float, ...]

    def score(self, x: Sequence[float]) -> float:
        z = self.bias + sum(w * v for w, v in zip(self.weights, x, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the system is tiny and positive definite)."""
    n = len(b)
    m = [[*row[:], b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


def fit_logistic(xs: Sequence[Sequence[float]], ys: Sequence[int], l2: float = _L2) -> Model:
    """L2-regularised logistic regression (bias not penalised) by Newton's method."""
    dim = len(xs[0]) + 1
    theta = [0.0] * dim
    rows = [[1.0, *x] for x in xs]
    for _ in range(50):
        grad = [0.0] * dim
        hess = [[0.0] * dim for _ in range(dim)]
        for row, y in zip(rows, ys, strict=True):
            z = sum(t * v for t, v in zip(theta, row, strict=True))
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            for i in range(dim):
                grad[i] += (p - y) * row[i]
                for j in range(dim):
                    hess[i][j] += p * (1 - p) * row[i] * row[j]
        for i in range(1, dim):
            grad[i] += l2 * theta[i]
            hess[i][i] += l2
        step = _solve(hess, grad)
        theta = [t - s for t, s in zip(theta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-8:
            break
    return Model(theta[0], tuple(theta[1:]))


def _confusion(
    scores: Sequence[float], ys: Sequence[int], threshold: float
) -> tuple[int, int, int, int]:
    tp = sum(1 for s, y in zip(scores, ys, strict=True) if s >= threshold and y)
    fp = sum(1 for s, y in zip(scores, ys, strict=True) if s >= threshold and not y)
    fn = sum(1 for s, y in zip(scores, ys, strict=True) if s < threshold and y)
    return tp, fp, fn, len(ys) - tp - fp - fn


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _best_threshold(
    scores: Sequence[float], ys: Sequence[int], min_precision: float = _MIN_PRECISION
) -> float:
    """Highest F1 among thresholds whose precision reaches ``min_precision`` (highest F1
    overall when none does); ties go to the higher threshold (precision is what analysts
    feel first)."""
    best = (-1.0, 0.5)
    best_precise = (-1.0, -1.0)
    for t in _GRID:
        tp, fp, fn, _ = _confusion(scores, ys, t)
        p, _, f1 = _prf(tp, fp, fn)
        if f1 >= best[0]:
            best = (f1, t)
        if p >= min_precision and f1 >= best_precise[0]:
            best_precise = (f1, t)
    return best_precise[1] if best_precise[0] >= 0 else best[1]


def _folds(ys: Sequence[int], k: int, seed: int) -> list[int]:
    """Stratified fold number of each item."""
    rng = random.Random(seed)
    fold_of = [0] * len(ys)
    for label in (0, 1):
        idx = [i for i, y in enumerate(ys) if y == label]
        rng.shuffle(idx)
        for n, i in enumerate(idx):
            fold_of[i] = n % k
    return fold_of


def cross_validate(
    xs: Sequence[Sequence[float]], ys: Sequence[int], langs: Sequence[str], k: int = _FOLDS
) -> dict[str, Any]:
    fold_of = _folds(ys, k, _SEED)
    oof = [0.0] * len(ys)
    hits = [False] * len(ys)
    fold_f1: list[float] = []
    for f in range(k):
        train = [i for i in range(len(ys)) if fold_of[i] != f]
        test = [i for i in range(len(ys)) if fold_of[i] == f]
        model = fit_logistic([xs[i] for i in train], [ys[i] for i in train])
        t = _best_threshold([model.score(xs[i]) for i in train], [ys[i] for i in train])
        for i in test:
            oof[i] = model.score(xs[i])
            hits[i] = oof[i] >= t
        tp, fp, fn, _ = _confusion(
            [1.0 if hits[i] else 0.0 for i in test], [ys[i] for i in test], 0.5
        )
        fold_f1.append(_prf(tp, fp, fn)[2])
    decided = [1.0 if h else 0.0 for h in hits]
    tp, fp, fn, tn = _confusion(decided, ys, 0.5)
    p, r, f1 = _prf(tp, fp, fn)
    by_lang: dict[str, dict[str, float]] = {}
    for lang in sorted(set(langs)):
        idx = [i for i, g in enumerate(langs) if g == lang]
        ltp, lfp, lfn, _ = _confusion([decided[i] for i in idx], [ys[i] for i in idx], 0.5)
        lp, lr, lf = _prf(ltp, lfp, lfn)
        by_lang[lang] = {
            "precision": round(lp, 3),
            "recall": round(lr, 3),
            "f1": round(lf, 3),
            "n": len(idx),
        }
    mean = sum(fold_f1) / k
    sd = math.sqrt(sum((v - mean) ** 2 for v in fold_f1) / k)
    return {
        "folds": k,
        "precision": round(p, 3),
        "recall": round(r, 3),
        "f1": round(f1, 3),
        "fold_f1_mean": round(mean, 3),
        "fold_f1_sd": round(sd, 3),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "by_lang": by_lang,
        "oof_threshold": _best_threshold(oof, ys),
    }


def _load(path: Path) -> tuple[list[tuple[float, ...]], list[int], list[str]]:
    lexicon = load_lexicon()
    xs: list[tuple[float, ...]] = []
    ys: list[int] = []
    langs: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if item.get("label") not in ("positive", "negative"):
            continue
        xs.append(
            extract_features(
                lexicon,
                title=item.get("title") or "",
                summary=item.get("summary") or "",
                text=item.get("text") or "",
            )
        )
        ys.append(1 if item["label"] == "positive" else 0)
        langs.append(item.get("lang") or "und")
    return xs, ys, langs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "path", type=Path, help="labelled JSON lines (label positive|negative|ambiguous)"
    )
    parser.add_argument("--write", action="store_true", help="write the fitted weights.json")
    args = parser.parse_args(argv)
    xs, ys, langs = _load(args.path)
    cv = cross_validate(xs, ys, langs)
    model = fit_logistic(xs, ys)
    threshold = cv["oof_threshold"]
    out = {
        "model": MODEL_VERSION,
        "features": list(FEATURES),
        "weights": [round(w, 4) for w in model.weights],
        "bias": round(model.bias, 4),
        "threshold": threshold,
        "fitted": datetime.now(UTC).date().isoformat(),
        "lexicon": load_lexicon().version,
        "training": {
            "items": len(ys),
            "positives": sum(ys),
            "l2": _L2,
            "min_precision": _MIN_PRECISION,
            "source": args.path.name,
        },
        "cv": cv,
    }
    text = json.dumps(out, indent=2, ensure_ascii=False) + "\n"
    print(text, end="")
    if args.write:
        target = Path(__file__).with_name("weights.json")
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
