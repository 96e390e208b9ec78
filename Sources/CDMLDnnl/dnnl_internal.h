// Shared by the oneDNN C files of this module (not part of its public header): one engine, one thread
// setting, one per-thread work buffer, one way to run a primitive.
#ifndef DML_DNNL_INTERNAL_H
#define DML_DNNL_INTERNAL_H

#include <dnnl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "dml_dnnl.h"

/// oneDNN's eltwise kind for a fused activation (`dnnl_alg_kind_undef` for none).
dnnl_alg_kind_t dml_dnnl_eltwise_kind(dml_dnnl_activation activation);

/// The process's CPU engine, made on first use; NULL when oneDNN could not make one.
dnnl_engine_t dml_dnnl_engine(void);

/// Applies `dml_dnnl_set_threads`' count to the calling thread's OpenMP setting, before a primitive is made (oneDNN
/// splits its work for the thread count it sees then, and runs on that many threads) and before it runs.
void dml_dnnl_apply_threads(void);


/// The calling thread's 64-byte aligned work buffer of at least `bytes`, grown and kept (freed at thread exit);
/// NULL when it cannot grow. Valid until the same thread asks for a larger one.
void *dml_dnnl_arena(size_t bytes);

/// Runs `p` with `args` on a fresh stream and waits (streams are cheap on CPU and never shared between
/// threads). 0 on success.
int dml_dnnl_execute(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args);

/// A primitive for one batch size with its activation descriptors (layers whose only run-time arguments are the
/// source, the destination, a scratchpad and fixed extras).
typedef struct {
    int batch, threads;
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t src, dst;
    size_t scratch_bytes;
} dml_dnnl_entry;

/// Makes `entry->primitive` and its descriptors for `entry->batch` samples of `layer`, with a user scratchpad;
/// `impl`, when not NULL, receives oneDNN's kernel name. 0 on success.
typedef int (*dml_dnnl_builder)(const void *layer, dml_dnnl_entry *entry, const char **impl);

enum { DML_DNNL_CACHED_BATCHES = 8 };

/// Primitives per batch size, made on first use (beyond the cache's size, one-off per call); lock-free lookups.
typedef struct {
    pthread_mutex_t lock;
    atomic_int count;
    dml_dnnl_entry entries[DML_DNNL_CACHED_BATCHES];
} dml_dnnl_cache;

/// Builds the batch-1 entry now: 0 when oneDNN made it with one of its JIT kernels (not its reference loops).
int dml_dnnl_cache_init(dml_dnnl_cache *cache, dml_dnnl_builder build, const void *layer);

void dml_dnnl_cache_destroy(dml_dnnl_cache *cache);

/// Runs `batch` samples from `source` into `destination`, with `extra` arguments (persistent memories such as
/// scale and shift) after the source, destination and scratchpad. 0 on success. Safe from several threads.
int dml_dnnl_cache_run(dml_dnnl_cache *cache, dml_dnnl_builder build, const void *layer, int batch, const float *source,
                       float *destination, int n_extra, const dnnl_exec_arg_t *extra);

/// Makes `entry->primitive` from `pd` (destroyed here), with its scratchpad size and, when `impl` is not NULL,
/// oneDNN's kernel name. 0 on success.
int dml_dnnl_entry_from_pd(dml_dnnl_entry *entry, dnnl_primitive_desc_t pd, const char **impl);

/// The same from an op descriptor, with a user scratchpad. 0 on success.
int dml_dnnl_entry_finish(dml_dnnl_entry *entry, const_dnnl_op_desc_t desc, const char **impl);

/// An attribute with the user scratchpad mode (the calling thread's arena, so one primitive runs on several
/// threads at once); NULL on failure.
dnnl_primitive_attr_t dml_dnnl_user_scratchpad_attr(void);

#endif
