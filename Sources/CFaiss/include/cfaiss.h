#pragma once
#ifdef __cplusplus
extern "C" {
#endif
int cfaiss_placeholder(void);
#ifdef __cplusplus
}
#endif
