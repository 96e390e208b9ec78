#include "cfaiss.h"
extern "C" int cfaiss_placeholder(void) { return 0; }
