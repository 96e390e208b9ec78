"""Makes the FAISS index fixtures: small valid files of every type DMLKit reads, written by Python FAISS, and
crafted files made from them by editing header fields (each refused by VectorIndex.load with a known defect).

Run from the repository root with the venv's Python (faiss-cpu): .venv/bin/python Tests/Fixtures/index/make_fixtures.py
It rewrites Tests/Fixtures/index/valid/*.faiss, crafted/*.faiss and crafted/expected.json deterministically.
"""
import json
import pathlib
import struct

import faiss
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
D, N = 8, 24
HEADER = 4 + 4 + 8 + 16 + 1 + 4  # fourcc, d, ntotal, 2 dummies, is_trained, metric_type


def vectors(n=N, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


def serialize(index):
    return bytes(faiss.serialize_index(index))


def valid_indexes():
    x = vectors()
    out = {}

    flat_ip = faiss.IndexFlatIP(D)
    flat_ip.add(x)
    out["flat_ip"] = flat_ip
    flat_l2 = faiss.IndexFlatL2(D)
    flat_l2.add(x)
    out["flat_l2"] = flat_l2

    idmap2 = faiss.IndexIDMap2(faiss.IndexFlatL2(D))
    idmap2.add_with_ids(x, np.arange(N, dtype=np.int64) * 10 + 5)
    out["idmap2_flat"] = idmap2
    idmap = faiss.IndexIDMap(faiss.IndexFlatIP(D))
    idmap.add_with_ids(x, np.arange(N, dtype=np.int64) + 100)
    out["idmap_flat"] = idmap
    # Python FAISS accepts the largest id; loading it must not overflow the next automatic id.
    top = faiss.IndexIDMap2(faiss.IndexFlatL2(D))
    top.add_with_ids(x[:2], np.array([3, 2**63 - 1], dtype=np.int64))
    out["idmap2_max_id"] = top

    for name, factory in [("hnsw_flat", "HNSW4"), ("hnsw_sq", "HNSW4_SQ8"), ("hnsw_pq", "HNSW4_PQ2")]:
        index = faiss.index_factory(D, factory, faiss.METRIC_L2)
        index.train(vectors(300, 1))
        index.add(x)
        out[name] = index

    for name, factory in [("ivf_flat", "IVF4,Flat"), ("ivf_pq", "IVF4,PQ2x4"), ("ivf_sq", "IVF4,SQ8"), ("ivf_sparse", "IVF16,Flat")]:
        index = faiss.index_factory(D, factory, faiss.METRIC_L2)
        index.train(vectors(400, 2))
        index.add(x[:4] if name == "ivf_sparse" else x)  # few vectors in many lists: the "sprs" size table
        out[name] = index

    # An id map over an IVF: the lists then hold positions into the map.
    idmap_ivf = faiss.IndexIDMap(faiss.index_factory(D, "IVF4,Flat", faiss.METRIC_L2))
    idmap_ivf.train(vectors(400, 2))
    idmap_ivf.add_with_ids(x, np.arange(N, dtype=np.int64) * 3)
    out["idmap_ivf"] = idmap_ivf

    pq = faiss.index_factory(D, "PQ2x4", faiss.METRIC_L2)
    pq.train(vectors(400, 3))
    pq.add(x)
    out["pq"] = pq
    sq = faiss.index_factory(D, "SQ4", faiss.METRIC_L2)
    sq.train(vectors(400, 3))
    sq.add(x)
    out["sq"] = sq
    lsh = faiss.IndexLSH(D, 16, True, True)
    lsh.train(vectors(400, 4))
    lsh.add(x)
    out["lsh"] = lsh
    return {name: serialize(index) for name, index in out.items()}


def put(data, offset, fmt, value):
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def hnsw_offsets(data):
    """Byte offsets of the HNSW fields after the index header (see faiss/impl/index_read.cpp, read_HNSW)."""
    pos = HEADER
    fields = {}
    for name, size in [("assign_probas", 8), ("cum_nneighbor_per_level", 4), ("levels", 4), ("offsets", 8), ("neighbors", 4)]:
        (count,) = struct.unpack_from("<Q", data, pos)
        fields[name] = (pos, count)
        pos += 8 + count * size
    fields["entry_point"] = pos
    fields["max_level"] = pos + 4
    return fields


def idmap_tail(data, ntotal):
    """Offset of the id map's length field: the ids are the last 8 * ntotal bytes, their count before them."""
    return len(data) - 8 * ntotal - 8


def ivf_sparse_bigger_list(data):
    """The sparse size table ("sprs", pairs of list number and size) with its first size raised by one."""
    pos = data.index(b"sprs") + 4
    (count,) = struct.unpack_from("<Q", data, pos)
    assert count >= 2
    (size,) = struct.unpack_from("<Q", data, pos + 16)
    return put(data, pos + 16, "<Q", size + 1)


def crafted(valid):
    flat, idmap2, hnsw, ivf, pq = valid["flat_l2"], valid["idmap2_flat"], valid["hnsw_flat"], valid["ivf_flat"], valid["pq"]
    cases = {}

    def case(name, data, defect):
        cases[name] = (data, defect)

    case("flat_ntotal_2p31", put(flat, 8, "<q", 2**31), "inconsistent")
    case("flat_ntotal_negative", put(flat, 8, "<q", -1), "outOfRange")
    case("flat_dimension_zero", put(flat, 4, "<i", 0), "outOfRange")
    case("flat_dimension_huge", put(flat, 4, "<i", 2**31 - 1), "outOfRange")
    case("flat_codes_length_huge", put(flat, HEADER, "<Q", 2**39), "truncated")
    case("flat_metric_l1", put(flat, 33, "<i", 2), "outOfRange")
    case("flat_is_trained_7", put(flat, 32, "<B", 7), "outOfRange")
    case("flat_trailing_bytes", flat + b"\0\0\0\0", "trailingBytes")
    case("unknown_fourcc", b"IxZZ" + flat[4:], "unknownType")
    case("ivf_nlist_huge", put(ivf, HEADER, "<Q", 2**40), "outOfRange")
    case("ivf_nlist_zero", put(ivf, HEADER, "<Q", 0), "outOfRange")
    case("ivf_nprobe_zero", put(ivf, HEADER + 8, "<Q", 0), "outOfRange")
    # The 84-byte file of issue 12: a PQ header whose nbits makes FAISS allocate 2^nbits centroids.
    case("pq_nbits_40", put(pq, HEADER + 16, "<Q", 40), "outOfRange")
    case("pq_m_does_not_divide", put(pq, HEADER + 8, "<Q", 3), "inconsistent")
    case("pq_84_bytes", put(pq, HEADER + 16, "<Q", 40)[:84], "outOfRange")

    n = N
    tail = idmap_tail(idmap2, n)
    short = put(idmap2, tail, "<Q", n - 1)[:-8]
    case("idmap_shorter_than_ntotal", short, "inconsistent")
    case("idmap_negative_id", put(idmap2, tail + 8, "<q", -7), "outOfRange")
    case("idmap_duplicate_id", put(idmap2, tail + 16, "<q", struct.unpack_from("<q", idmap2, tail + 8)[0]), "inconsistent")
    case("idmap_ntotal_2p31", put(idmap2, 8, "<q", 2**31), "inconsistent")

    f = hnsw_offsets(hnsw)
    levels_pos, _ = f["levels"]
    case("hnsw_level_out_of_range", put(hnsw, levels_pos + 8, "<i", 99), "outOfRange")
    case("hnsw_max_level_inconsistent", put(hnsw, f["max_level"], "<i", 7), "inconsistent")
    case("hnsw_entry_point_outside", put(hnsw, f["entry_point"], "<i", 10_000), "inconsistent")
    neighbors_pos, _ = f["neighbors"]
    case("hnsw_link_outside_graph", put(hnsw, neighbors_pos + 8, "<i", 5000), "inconsistent")
    case("hnsw_ntotal_2p31", put(hnsw, 8, "<q", 2**31), "inconsistent")
    # Search would decode with the trained ranges; an index that says it is untrained may hold no codes.
    case("sq_untrained_with_vectors", put(valid["sq"], 32, "<B", 0), "inconsistent")
    case("ivf_sparse_sizes_past_ntotal", ivf_sparse_bigger_list(valid["ivf_sparse"]), "inconsistent")
    # FAISS asserts (abort) when an unrotated LSH keeps more bits than the vectors have components.
    case("lsh_unrotated_more_bits_than_dimensions", put(valid["lsh"], HEADER + 4, "<B", 0), "inconsistent")
    # The last id of the IVF's last list (just before the map's ids) made a position outside the map.
    mapped = valid["idmap_ivf"]
    case("idmap_ivf_position_outside_map", put(mapped, idmap_tail(mapped, N) - 8, "<q", 1000), "inconsistent")
    return cases


def main():
    valid = valid_indexes()
    (HERE / "valid").mkdir(exist_ok=True)
    (HERE / "crafted").mkdir(exist_ok=True)
    for name, data in valid.items():
        (HERE / "valid" / f"{name}.faiss").write_bytes(data)
    expected = {}
    for name, (data, defect) in crafted(valid).items():
        (HERE / "crafted" / f"{name}.faiss").write_bytes(data)
        expected[name] = defect
    (HERE / "crafted" / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
