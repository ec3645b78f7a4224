"""Writes scikit-learn's handwritten digits (shipped inside the package, no download) as JSON Lines.

Usage: python demo/prepare_digits.py OUT_DIR [--train-parts N] [--seed S]
Writes OUT_DIR/train-<i>.jsonl (N parts) and OUT_DIR/test.jsonl: {"pixels": [64 floats 0..16], "label": int}.
"""
import argparse
import json
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--train-parts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.2, random_state=args.seed, stratify=digits.target)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def rows(x, y):
        return [json.dumps({"pixels": [float(v) for v in xi], "label": int(yi)}) for xi, yi in zip(x, y)]

    train_rows = rows(x_train, y_train)
    for part in range(args.train_parts):
        (out / f"train-{part}.jsonl").write_text("\n".join(train_rows[part :: args.train_parts]) + "\n")
    (out / "test.jsonl").write_text("\n".join(rows(x_test, y_test)) + "\n")
    print(json.dumps({"train": len(train_rows), "test": len(x_test), "parts": args.train_parts}))


if __name__ == "__main__":
    main()
