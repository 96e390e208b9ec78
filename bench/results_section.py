"""Shared by the benchmark harnesses: each owns one marked section of bench/RESULTS.md."""
import os
import pathlib


def replace_section(path: pathlib.Path, start: str, end: str, section: str) -> None:
    """Put ``section`` (which begins with ``start`` and ends with ``end``) in place of the old one, or append it;
    written atomically (temp file + rename) so an interrupted run never leaves half a results file."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in text and end in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
