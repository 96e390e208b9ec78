// Shared by the oneDNN C files of this module (not part of its public header): one engine, one thread
// setting, one per-thread work buffer, one way to run a primitive.
#ifndef DML_DNNL_INTERNAL_H
#define DML_DNNL_INTERNAL_H

#include <dnnl.h>
#include <stddef.h>

#include "dml_dnnl.h"

/// oneDNN's eltwise kind for a fused activation (`dnnl_alg_kind_undef` for none).
dnnl_alg_kind_t dml_dnnl_eltwise_kind(dml_dnnl_activation activation);

/// The process's CPU engine, made on first use; NULL when oneDNN could not make one.
dnnl_engine_t dml_dnnl_engine(void);

/// Applies `dml_dnnl_set_threads`' count to the calling thread's OpenMP setting (before running a primitive).
void dml_dnnl_apply_threads(void);

/// The calling thread's 64-byte aligned work buffer of at least `bytes`, grown and kept (freed at thread exit);
/// NULL when it cannot grow. Valid until the same thread asks for a larger one.
void *dml_dnnl_arena(size_t bytes);

/// Runs `p` with `args` on a fresh stream and waits (streams are cheap on CPU and never shared between
/// threads). 0 on success.
int dml_dnnl_execute(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args);

#endif
