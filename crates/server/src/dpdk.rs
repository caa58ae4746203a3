//! `backend = "dpdk"`: the EAL started with `[dpdk] eal-args`, one packet pool, and each
//! `[[interface]]`'s `dpdk-port` started with a queue per worker, each polled by a worker
//! thread the server makes and pins (DPDK's burst calls need no EAL thread; the lcores of the
//! EAL are not used yet).

use std::sync::Arc;

use anyhow::Context;
use peregrine_config::model::Config;
use peregrine_dataplane::Interface;
use peregrine_dpdk::{Eal, Mempool, Port};
use peregrine_engine::Engine;
use peregrine_wire::MacAddr;

use crate::backend::{Backend, QueueSlot, Threads};

pub(crate) fn open(config: &Config, engine: &Engine) -> anyhow::Result<Box<dyn Backend>> {
    let settings = &config.runtime.dpdk;
    let eal = Eal::init(&settings.eal_args)
        .context("starting DPDK (rte_eal_init; see [dpdk] eal-args)")?;
    let pool = Arc::new(Mempool::new(&eal, "peregrine", settings.mbufs)?);
    let queues = u16::try_from(config.runtime.workers).context("more workers than DPDK queues")?;
    let mut interfaces = Vec::new();
    let mut slots = Vec::new();
    let mut opened = Vec::new();
    let mut ports = Vec::new();
    for (k, i) in config.runtime.interfaces.iter().enumerate() {
        let name = i
            .dpdk_port
            .as_deref()
            .context("validated: every interface has a dpdk-port")?;
        let id = eal
            .port_by_name(name)
            .with_context(|| format!("interface {}: DPDK port {name}", i.name))?;
        let port = Port::start(&eal, id, queues, settings.ring, &pool)
            .with_context(|| format!("interface {}: DPDK port {name}", i.name))?;
        interfaces.push(Interface {
            // What the port's frames carry as theirs (RxFrame::ifindex).
            ifindex: u32::from(id),
            mac: MacAddr(port.mac()?),
            addr: i.address,
            engine_id: engine.interface(&i.name),
            trusted: i.trusted,
        });
        for q in 0..queues {
            let queue = port
                .queue(q, &pool)
                .context("a queue the port was started with")?;
            opened.push(queue);
            slots.push(QueueSlot {
                name: format!("pg-{}-{q}", i.name),
                interface: Some(k),
            });
        }
        tracing::info!(interface = %i.name, port = name, id, queues, "DPDK port started");
        ports.push(port);
    }
    Ok(Box::new(Threads {
        interfaces,
        slots,
        queues: opened,
        // Dropped in this order: the ports (stopped) before the pool they use.
        _hold: vec![Box::new(ports), Box::new(pool), Box::new(eal)],
    }))
}
