//! A network namespace per test, deleted on drop (also when the test fails), and ways to
//! open sockets and devices and run programs inside it.
//!
//! Test support: a setup step that fails panics, which fails the test that asked for it.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace named after this process and a counter, so parallel tests and
/// parallel runs never share one.
pub struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace with loopback up and IPv6 off (so the kernel sends no router solicitations or MLD
    /// reports of its own), or `None` with a message if the test cannot run: it needs root.
    #[must_use]
    pub fn new(test: &str) -> Option<Self> {
        // SAFETY: geteuid(2) takes nothing and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping {test}: network namespaces need root");
            return None;
        }
        let name = format!(
            "pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        // Loopback up, as on any host: servers bind their control sockets to 127.0.0.1.
        ns.ip("link set lo up");
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        Some(ns)
    }

    /// The namespace's name, for `ip netns exec` and `/run/netns`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `ip -n <namespace> <args>`, failing the test if it fails.
    pub fn ip(&self, args: &str) {
        let mut all = vec!["-n", &self.name];
        all.extend(args.split_whitespace());
        run("ip", &all);
    }

    /// A veth pair `a`–`b` in the namespace, both ends up.
    pub fn veth(&self, a: &str, b: &str) {
        self.ip(&format!("link add name {a} type veth peer name {b}"));
        self.ip(&format!("link set {a} up"));
        self.ip(&format!("link set {b} up"));
    }

    /// The MAC address of `interface`, as `ip` reports it.
    pub fn mac(&self, interface: &str) -> [u8; 6] {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-br", "link", "show", interface])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let word = text.split_whitespace().nth(2).unwrap();
        let bytes: Vec<u8> = word
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    /// Runs `f` on a thread that has entered the namespace. Sockets and devices keep the
    /// namespace they were opened in, so what `f` opens can be used from any thread.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = File::open(format!("/run/netns/{}", self.name)).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: `file` is an open namespace file; setns(2) moves only this thread.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the interfaces inside it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
