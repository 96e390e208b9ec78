// SHA-256 block compression (FIPS 180-4) in C for DMLRuntime's fingerprint check: the Swift version runs
// ~60 s per 100 MB in -Onone debug builds, C at -O0 stays near a second.
#ifndef DML_SHA256_H
#define DML_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Folds `blocks` consecutive 64-byte blocks from `data` into the eight-word hash `state`.
void dml_sha256_compress(uint32_t state[8], const uint8_t *data, size_t blocks);

#ifdef __cplusplus
}
#endif

#endif
