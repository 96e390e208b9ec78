"""`dml index` under faults: full disks, damaged files, huge numbers, odd paths.

Every case must end in exit 0 or exit 1 with one `dml: ` line on stderr, never a signal, and must leave the files
it was asked to change either fully updated or byte-for-byte as they were.
"""
import json
import os
import pathlib
import resource
import shutil
import signal
import struct
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DML = os.environ.get("DML_BIN", str(REPO / ".build" / "debug" / "dml"))
FIXTURES = REPO / "Tests" / "Fixtures" / "index"
D = 16


def dml(*args, limit=None, timeout=120):
    def limited():
        # Writes past `limit` bytes fail with EFBIG, as on a full disk (SIGXFSZ ignored so the process sees it).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([DML, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                            preexec_fn=limited if limit is not None else None)
    assert result.returncode in (0, 1), f"dml {args} died with {result.returncode}: {result.stderr}"
    if result.returncode == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) >= 1 and all(line.startswith("dml: ") for line in lines), result.stderr
    return result


def failure(*args, **kw):
    result = dml(*args, **kw)
    assert result.returncode == 1, f"dml {args} should fail: {result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def vectors(n, seed):
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture()
def index(tmp_path):
    path = tmp_path / "x.faiss"
    np.save(tmp_path / "base.npy", vectors(200, 1))
    np.save(tmp_path / "more.npy", vectors(2000, 2))
    dml("index", "create", path, "--dim", D, "--metric", "cosine")
    dml("index", "add", path, "--vectors", tmp_path / "base.npy")
    return path


def count(path):
    return json.loads(dml("index", "info", path, "--json").stdout)["count"]


# ---- full disk ----

@pytest.mark.parametrize("limit", [1_000, 20_000, 100_000, 400_000])
def test_a_save_on_a_full_disk_fails_and_keeps_both_files(index, limit):
    """RLIMIT_FSIZE stops the save of the ~160 KB index at different points of its temp file, or not at all
    (400 KB). A failed save changes neither file, leaves no temp file, and a retry adds the vectors once."""
    directory = index.parent
    before = snapshot(directory)
    result = dml("index", "add", index, "--vectors", directory / "more.npy", limit=limit)
    after = snapshot(directory)
    if result.returncode == 1:
        assert "File too large" in result.stderr, result.stderr
        assert after == before, "a failed save changed a file"
        # A retry on a roomy disk adds the vectors once: the failed attempt left nothing behind.
        dml("index", "add", index, "--vectors", directory / "more.npy")
    assert count(index) == 2200
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")], "a temporary file was left behind"


def test_a_save_on_a_full_tmpfs_fails_and_keeps_the_old_index(tmp_path):
    """The same on a real full file system (ENOSPC): a 256 KiB tmpfs, mounted if this process may mount."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        path = mount_point / "x.faiss"
        np.save(tmp_path / "base.npy", vectors(200, 1))
        np.save(tmp_path / "more.npy", vectors(2000, 2))
        dml("index", "create", path, "--dim", D)
        dml("index", "add", path, "--vectors", tmp_path / "base.npy")
        # Fill what is left but ~20 KB: the 2200-vector index (~140 KB) cannot be written beside the old one.
        free = shutil.disk_usage(mount_point).free
        (mount_point / "filler").write_bytes(b"\0" * max(free - 20_000, 0))
        before = snapshot(mount_point)
        line = failure("index", "add", path, "--vectors", tmp_path / "more.npy")
        assert "No space left on device" in line
        assert snapshot(mount_point) == before
        (mount_point / "filler").unlink()
        dml("index", "add", path, "--vectors", tmp_path / "more.npy")
        assert count(path) == 2200
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_a_sidecar_that_cannot_be_written_leaves_the_index_unchanged(index):
    """The sidecar's place is taken by a directory: a save over the index (`create` reads nothing first) fails
    before renaming anything, so the index file keeps its vectors; loading names the directory."""
    directory = index.parent
    sidecar = directory / "x.faiss.dml.json"
    sidecar.unlink()
    sidecar.mkdir()
    before = index.read_bytes()
    line = failure("index", "create", index, "--dim", 4)
    assert "x.faiss.dml.json: it is a directory" in line
    assert index.read_bytes() == before
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]
    line = failure("index", "add", index, "--vectors", directory / "more.npy")
    assert "x.faiss.dml.json is a directory, not a sidecar file" in line and "NSCocoaErrorDomain" not in line


def test_stale_temporary_files_of_dead_processes_are_removed(index):
    directory = index.parent
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    stale = directory / f".x.faiss.{dead_pid.pid}.42.tmp"
    stale_sidecar = directory / f".x.faiss.dml.json.{dead_pid.pid}.43.tmp"
    alive = directory / f".x.faiss.{os.getpid()}.44.tmp"
    for p in (stale, stale_sidecar, alive):
        p.write_bytes(b"\0" * 1000)
    dml("index", "add", index, "--vectors", directory / "base.npy")
    assert not stale.exists() and not stale_sidecar.exists()
    assert alive.exists()


def test_a_sidecar_from_another_save_is_refused(index):
    sidecar = index.parent / "x.faiss.dml.json"
    old = sidecar.read_bytes()
    dml("index", "add", index, "--vectors", index.parent / "base.npy")
    sidecar.write_bytes(old)
    line = failure("index", "info", index)
    assert "is not the index its sidecar x.faiss.dml.json describes" in line


# ---- damaged and crafted files ----

def test_crafted_files_are_refused_with_their_defect():
    expected = json.loads((FIXTURES / "crafted" / "expected.json").read_text())
    for name, defect in expected.items():
        line = failure("index", "info", FIXTURES / "crafted" / f"{name}.faiss")
        assert f"not a valid FAISS index file ({defect})" in line, (name, line)
        assert "(Success)" not in line


def test_crafted_files_allocate_nothing_they_do_not_hold():
    """Issue 12 saw an 84-byte file make `index info` touch 2.1 GB. Each crafted file is opened by a fresh Python
    process whose only child is dml, so RUSAGE_CHILDREN's peak RSS is dml's own: it stays at a debug binary's
    baseline (~30 MB), far below anything a header-driven allocation would reach."""
    expected = json.loads((FIXTURES / "crafted" / "expected.json").read_text())
    paths = [str(FIXTURES / "crafted" / f"{name}.faiss") for name in sorted(expected)]
    probe = ("import resource, subprocess, sys\n"
             "peak = 0\n"
             "for path in sys.argv[2:]:\n"
             "    subprocess.run([sys.argv[1], 'index', 'info', path], capture_output=True)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    result = subprocess.run([sys.executable, "-c", probe, DML, *paths], capture_output=True, text=True, check=True)
    assert int(result.stdout) < 150_000, f"peak RSS {result.stdout.strip()} KB"


def test_flipping_any_header_byte_never_crashes_or_hangs(tmp_path):
    """Every byte of the first 512 of each valid fixture (all of most files) flipped (x ^ 0xff): `dml index info`
    reads them in a few processes (a crash fails the test); a sample of the files that still load (most flips
    land in vector data) is then searched, each in its own process."""
    files = []
    for source in sorted((FIXTURES / "valid").glob("*.faiss")):
        data = source.read_bytes()
        for offset in range(min(len(data), 512)):
            for value in (data[offset] ^ 0xFF,):
                mutated = bytearray(data)
                mutated[offset] = value
                path = tmp_path / f"{source.stem}.{offset}.{value}.faiss"
                path.write_bytes(bytes(mutated))
                files.append(path)
    loaded = []
    for start in range(0, len(files), 1000):
        batch = files[start:start + 1000]
        result = dml("index", "info", "--json", *batch, timeout=300)
        refused = {line.split(": ", 2)[1] for line in result.stderr.strip().splitlines() if line}
        assert all(line.startswith("dml: ") for line in result.stderr.strip().splitlines())
        loaded += [p for p in batch if str(p) not in refused]
    assert len(files) > 6000 and len(loaded) < len(files)
    np.save(tmp_path / "q.npy", np.full((2, 8), 0.5, dtype=np.float32))
    for path in loaded[:: max(1, len(loaded) // 100)]:
        dml("index", "search", path, "--queries", tmp_path / "q.npy", "-k", 1, "--json", timeout=60)


# ---- huge numbers and ids ----

def test_ids_up_to_int64_max_work_and_automatic_ids_then_stop(index):
    directory = index.parent
    np.save(directory / "one.npy", vectors(1, 5))
    np.save(directory / "top.npy", np.array([2**63 - 1], dtype=np.int64))
    dml("index", "add", index, "--vectors", directory / "one.npy", "--ids", directory / "top.npy")
    before = snapshot(directory)
    line = failure("index", "add", index, "--vectors", directory / "one.npy")
    assert "no automatic ids left" in line
    line = failure("index", "add", index, "--vectors", directory / "one.npy", "--ids", directory / "top.npy")
    assert line == f"dml: id {2**63 - 1} is already in the index"
    assert snapshot(directory) == before


def test_python_faiss_file_holding_int64_max_opens(tmp_path):
    np.save(tmp_path / "q.npy", vectors(1, 3)[:, :8])
    result = dml("index", "search", FIXTURES / "valid" / "idmap2_max_id.faiss", "--queries", tmp_path / "q.npy",
                 "-k", 2, "--json")
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["results"][0]["ids"]) == [3, 2**63 - 1]


@pytest.mark.parametrize("args,phrase", [
    (["-k", "-5"], "k must be 1...2147483647, got -5"),
    (["-k", str(2**62)], f"k must be 1...2147483647, got {2**62}"),
    (["-k", "99999999999999999999999"], "99999999999999999999999"),
    (["-k", "1", "--param", "efSearch=-1"], "efSearch must be 1...1048576, got -1"),
    (["-k", "1", "--param", "nprobe=-1"], "nprobe must be 1...2147483647, got -1"),
    (["-k", "1", "--threads", "-2"], "--threads must be at least 1"),
])
def test_bad_numbers_give_a_range_message(index, args, phrase):
    np.save(index.parent / "q.npy", vectors(2, 9))
    line = failure("index", "search", index, "--queries", index.parent / "q.npy", *args)
    assert phrase in line, line
    assert "Missing value" not in line


def test_create_refuses_bad_factories_and_dimensions(tmp_path):
    for factory in ["HNSW0", "IVF0,Flat", "PQ3", "OPQ4,IVF4,Flat"]:
        line = failure("index", "create", tmp_path / "bad.faiss", "--dim", D, "--factory", factory)
        assert f"factory string '{factory}'" in line
    assert failure("index", "create", tmp_path / "bad.faiss", "--dim", "-3") == "dml: dimension must be 1...65536, got -3"
    assert failure("index", "create", tmp_path / "bad.faiss", "--dim", str(2**40)).startswith("dml: dimension must be")
    assert not list(tmp_path.iterdir())


def test_directories_are_named_as_directories(index, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "is a directory" in failure("index", "info", folder)
    assert "is a directory" in failure("index", "search", folder, "--queries", folder, "-k", 1)
    assert "is a directory" in failure("index", "add", index, "--vectors", folder)
    assert "is a directory" in failure("index", "train", index, "--vectors", folder)
    assert "is a directory" in failure("index", "remove", index, "--ids", folder)
    assert "is a directory" in failure("index", "create", folder, "--dim", D)
    np.save(tmp_path / "q.npy", vectors(1, 3))
    assert "is a directory" in failure("index", "search", index, "--queries", tmp_path / "q.npy", "-k", 1, "--ids-out", folder)
    assert "NSCocoaErrorDomain" not in failure("index", "add", index, "--vectors", folder)


def test_npy_v2_header_over_64_kib_is_refused_quickly(index, tmp_path):
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 16), }" + b" " * 200_000 + b"\n"
    path = tmp_path / "big_header.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header + b"\0" * 64)
    line = failure("index", "add", index, "--vectors", path)
    assert f"header length {len(header)} bytes is over the limit of 65536 bytes" in line


def test_a_negative_number_reaches_the_commands_range_check(tmp_path):
    """ArgumentParser would say "Missing value for '--batch'"; dml attaches the number so the command answers."""
    line = failure("embed", "--model", tmp_path / "m.safetensors", "--input", tmp_path / "x.npy", "--output",
                   tmp_path / "e.npy", "--batch", "-1")
    assert line == "dml: --batch must be at least 1"
    line = failure("index", "add", tmp_path / "x.faiss", "--vectors", tmp_path / "x.npy", "--threads", "-4")
    assert line == "dml: --threads must be at least 1"
