"""Differential check of the Swift tokenizer against Hugging Face `tokenizers` on fuzzer-found texts.

    .venv/bin/python Fuzz/tokenizer-parity.py IDS_FILE

IDS_FILE lines come from `fuzz-tokenizer` run with DML_FUZZ_IDS_OUT (see `Fuzz/fuzz.sh parity`): the text as hex
UTF-8, the normaliser flags (bit 0 no lower-casing, bit 1 no accent stripping, bit 2 no CJK splitting) and the
Swift ids without truncation. The reference is the model's tokenizer.json with the same normaliser settings.
Prints the mismatches (at most 20) and exits 1 if there are any.
"""
import pathlib
import sys

from tokenizers import Tokenizer
from tokenizers.normalizers import BertNormalizer

MODEL = pathlib.Path(__file__).resolve().parents[1] / "models" / "text" / "all-MiniLM-L6-v2"


def reference(flags):
    tokenizer = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    # The fuzzer switches steps off one by one; the model's strip_accents (it follows lowercase=True) stays on
    # unless bit 1 is set, also when bit 0 turns lower-casing off.
    tokenizer.normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=not flags & 4,
                                          strip_accents=not flags & 2, lowercase=not flags & 1)
    return tokenizer


def main(path):
    tokenizers = {}
    seen, mismatches = set(), []
    for line in open(path, encoding="ascii"):
        hex_text, flags, ids = line.rstrip("\n").split("\t")
        if (hex_text, flags) in seen:
            continue
        seen.add((hex_text, flags))
        flags = int(flags)
        text = bytes.fromhex(hex_text).decode("utf-8")
        tokenizer = tokenizers.setdefault(flags, reference(flags))
        expected = tokenizer.encode(text).ids
        got = [int(i) for i in ids.split()]
        if got != expected:
            mismatches.append((flags, text, got, expected))
    for flags, text, got, expected in mismatches[:20]:
        print(f"flags {flags} text {text!r}\n  swift {got[:24]}\n  hf    {expected[:24]}")
    print(f"{len(seen)} texts, {len(mismatches)} differ from Hugging Face tokenizers")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
