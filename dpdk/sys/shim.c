#include "wrapper.h"

int peregrine_dpdk_errno(void) { return rte_errno; }
