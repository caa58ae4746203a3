/* What peregrine-dpdk-sys binds: bindgen reads this, and the static-inline wrappers it writes
 * include it. */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>

/* rte_errno is a per-lcore variable behind a macro: read it through a function. */
int peregrine_dpdk_errno(void);
