//! `backend = "dpdk"`: the EAL started with `[dpdk] eal-args`, one packet pool, and each
//! `[[interface]]`'s `dpdk-port` started with a queue per worker; worker `q` polls queue `q` of
//! every port, on a thread the server makes and pins, which its queues register with the EAL
//! as an lcore of its own (for the pool's per-lcore cache); the EAL's own lcores (`-l`) run
//! nothing of ours.

use std::sync::Arc;

use anyhow::Context;
use peregrine_config::model::Config;
use peregrine_control::{PortCounterSource, QueueCounters};
use peregrine_dataplane::Interface;
use peregrine_dpdk::{Eal, Mempool, Port};
use peregrine_engine::Engine;
use peregrine_wire::MacAddr;

use crate::backend::{Backend, QueueSlot, Threads};

pub(crate) fn open(config: &Config, engine: &Engine) -> anyhow::Result<Box<dyn Backend>> {
    let settings = &config.runtime.dpdk;
    let eal = Eal::init(&settings.eal_args)
        .context("starting DPDK (rte_eal_init; see [dpdk] eal-args)")?;
    let pool = Arc::new(
        Mempool::new(&eal, "peregrine", settings.mbufs).with_context(|| {
            format!(
                "the packet pool ([dpdk] mbufs = {}, about 2.4 KB each): the EAL's memory \
                 (-m, or --socket-mem with hugepages) must hold it",
                settings.mbufs
            )
        })?,
    );
    let queues = u16::try_from(config.runtime.workers).context("more workers than DPDK queues")?;
    let mut interfaces = Vec::new();
    let mut slots = Vec::new();
    let mut opened = Vec::new();
    let mut ports: Vec<(String, String, Arc<Port>)> = Vec::new();
    for i in &config.runtime.interfaces {
        let name = i
            .dpdk_port
            .as_deref()
            .context("validated: every interface has a dpdk-port")?;
        let id = eal
            .port_by_name(name)
            .with_context(|| format!("interface {}: DPDK port {name}", i.name))?;
        let port = Arc::new(
            Port::start(&eal, id, queues, settings.ring, &pool)
                .with_context(|| format!("interface {}: DPDK port {name}", i.name))?,
        );
        interfaces.push(Interface {
            // What the port's frames carry as theirs (RxFrame::ifindex).
            ifindex: u32::from(id),
            mac: MacAddr(port.mac()?),
            addr: i.address,
            engine_id: engine.interface(&i.name),
            trusted: i.trusted,
        });
        tracing::info!(interface = %i.name, port = name, id, queues, "DPDK port started");
        ports.push((i.name.clone(), name.to_owned(), port));
    }
    // Worker q polls queue q of every port: one polling thread per core, as l3fwd's lcores.
    let all: Vec<&Port> = ports.iter().map(|(_, _, p)| p.as_ref()).collect();
    for q in 0..queues {
        let queue = peregrine_dpdk::lcore_queues(&all, q, &pool)
            .context("a queue the ports were started with")?;
        opened.push(queue);
        slots.push(QueueSlot {
            name: format!("pg-dpdk-{q}"),
            interface: None,
        });
    }
    let counters = Arc::new(PortCounters(ports));
    // The ports live in `counters`, which the control plane shares: a port stops when the last
    // holder lets go (the pool and the EAL need no teardown).
    let mut hold: Vec<Box<dyn std::any::Any>> = vec![Box::new(pool), Box::new(eal)];
    if peregrine_dpdk::on_kernel_interfaces(&settings.eal_args) {
        // As on the AF_PACKET backend, a UDP/67 socket never read keeps the kernel from
        // answering relays with ICMP port unreachable, and any other DHCP server from starting
        // beside us.
        let quiet = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 67))
            .context("binding UDP/67 to keep the kernel quiet (DPDK vdevs on kernel interfaces)")?;
        hold.push(Box::new(quiet));
    }
    Ok(Box::new(Threads {
        interfaces,
        slots,
        queues: opened,
        _hold: hold,
        ports: Some(counters),
    }))
}

/// The ports, by interface, for `/metrics`.
#[derive(Debug)]
struct PortCounters(Vec<(String, String, Arc<Port>)>);

impl PortCounterSource for PortCounters {
    fn read(&self) -> Vec<peregrine_control::PortCounters> {
        self.0
            .iter()
            .map(|(interface, name, port)| {
                // A port that cannot say reads as down with nothing counted.
                let s = port.stats().unwrap_or_default();
                peregrine_control::PortCounters {
                    interface: interface.clone(),
                    port: name.clone(),
                    link_up: port.link_up().unwrap_or(false),
                    rx_packets: s.ipackets,
                    tx_packets: s.opackets,
                    rx_bytes: s.ibytes,
                    tx_bytes: s.obytes,
                    rx_missed: s.imissed,
                    rx_errors: s.ierrors,
                    tx_errors: s.oerrors,
                    rx_no_buffer: s.rx_nombuf,
                    // DPDK counts the first RTE_ETHDEV_QUEUE_STAT_CNTRS queues in its basic
                    // statistics; xstats hold the rest where the driver counts them.
                    queues: (0..usize::from(port.queues()).min(s.q_ipackets.len()))
                        .map(|q| QueueCounters {
                            rx_packets: s.q_ipackets[q],
                            tx_packets: s.q_opackets[q],
                            rx_bytes: s.q_ibytes[q],
                            tx_bytes: s.q_obytes[q],
                        })
                        .collect(),
                    xstats: port.xstats().unwrap_or_default(),
                }
            })
            .collect()
    }
}
