"""Writes the .npy fixtures the Swift DMLNpy tests read, with NumPy itself as the reference writer.

Run from the repo root: .venv/bin/python Tests/Fixtures/npy/make_fixtures.py
"""
import io
import pathlib

import numpy as np

out = pathlib.Path(__file__).parent
values = np.arange(6, dtype=np.float64).reshape(2, 3) / 4 - 0.5

np.save(out / "f4_2x3.npy", values.astype(np.float32))
np.save(out / "f8_2x3.npy", values)
np.save(out / "i8_4.npy", np.array([7, -1, 1 << 40, 0], dtype=np.int64))
np.save(out / "i4_3.npy", np.array([3, -2, 9], dtype=np.int32))
np.save(out / "u1_2x2x3.npy", np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
np.save(out / "fortran_2x3.npy", np.asfortranarray(values.astype(np.float32)))
np.save(out / "bigendian_2x3.npy", values.astype(">f4"))
np.save(out / "c8_2.npy", np.array([1 + 2j, 3 - 1j], dtype=np.complex64))
np.save(out / "empty_0x4.npy", np.zeros((0, 4), dtype=np.float32))

# Format version 2.0 (4-byte header length).
buffer = io.BytesIO()
np.lib.format.write_array(buffer, values.astype(np.float32), version=(2, 0))
(out / "v2_f4_2x3.npy").write_bytes(buffer.getvalue())

# Cut inside the data.
full = (out / "f4_2x3.npy").read_bytes()
(out / "truncated_f4_2x3.npy").write_bytes(full[:-5])
