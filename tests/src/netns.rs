//! A network namespace joined to this one by a veth pair, for partition
//! tests: a server started in it (`RedisServer::start_in`) is reached over
//! the pair, and [`Netns::cut`] makes the link drop every packet silently
//! (no RST, no ICMP: open connections just stop hearing back), as a real
//! network partition does. This kernel has no netem; a link set down does
//! the same from this side: the host end keeps its address, its route and a
//! permanent neighbour entry, so sends go out and are dropped by the pair.
//!
//! Needs CAP_NET_ADMIN (root); [`Netns::create`] says why when it cannot.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A namespace with one veth pair to this one; deleted (with the pair and
/// anything still running in it) on drop.
pub struct Netns {
    name: String,
    /// The pair's ends: here, and inside the namespace.
    host_end: String,
    ns_end: String,
    /// The namespace's address (its end of the pair), and this side's.
    address: String,
    host_address: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Netns {
    /// Creates the namespace and its link, up. An error (not a panic) says
    /// why the kernel or the user refuses a namespace, for the caller to
    /// skip with; once one is made, a failure to set it up panics (a broken
    /// setup must fail the test, not skip it).
    pub fn create() -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Interface names have at most 15 bytes; the pid keeps runs apart.
        let id = format!("{}{}", std::process::id() % 100_000, n);
        // A /30 per namespace in 10.213.0.0/16, from the pid and the counter.
        let k = (std::process::id().wrapping_mul(4).wrapping_add(n)) % 16_384;
        let (a, b) = (k / 64, k % 64 * 4);
        let net = Netns {
            name: format!("rtc-part-{id}"),
            host_end: format!("rtch{id}"),
            ns_end: format!("rtcn{id}"),
            address: format!("10.213.{a}.{}", b + 2),
            host_address: format!("10.213.{a}.{}", b + 1),
        };
        ip(&["netns", "add", &net.name])?;
        // From here on, drop deletes what was made.
        let set_up = || -> Result<(), String> {
            ip(&["link", "add", &net.host_end, "type", "veth", "peer", "name", &net.ns_end])?;
            ip(&["link", "set", &net.ns_end, "netns", &net.name])?;
            ip(&["addr", "add", &format!("{}/30", net.host_address), "dev", &net.host_end])?;
            ip(&["link", "set", &net.host_end, "up"])?;
            net.inside(&["addr", "add", &format!("{}/30", net.address), "dev", &net.ns_end])?;
            net.inside(&["link", "set", "lo", "up"])?;
            net.heal()
        };
        if let Err(e) = set_up() {
            panic!("a network namespace was made but not its link: {e}");
        }
        Ok(net)
    }

    fn inside(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's address, which servers inside listen on.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Partitions the namespace: its end of the link goes down, and every
    /// packet either way is dropped without a word.
    pub fn cut(&self) {
        self.inside(&["link", "set", &self.ns_end, "down"]).expect("cut the link");
    }

    /// Partitions one connection only: every packet of the TCP connection
    /// whose port on this side is `client_port` is dropped inside the
    /// namespace, both ways (an nftables table of its own, Debian's
    /// `nftables`), while every other connection works.
    pub fn cut_connection(&self, client_port: u16) {
        let port = client_port.to_string();
        let nft = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &self.name, "nft"];
            all.extend_from_slice(args);
            ip(&all).expect("nft inside the namespace (install Debian's nftables)");
        };
        nft(&["add", "table", "inet", "rtcpart"]);
        nft(&["add", "chain", "inet", "rtcpart", "input", "{ type filter hook input priority 0; }"]);
        nft(&["add", "chain", "inet", "rtcpart", "output", "{ type filter hook output priority 0; }"]);
        nft(&["add", "rule", "inet", "rtcpart", "input", "tcp", "sport", &port, "drop"]);
        nft(&["add", "rule", "inet", "rtcpart", "output", "tcp", "dport", &port, "drop"]);
    }

    /// Ends the partitions of [`Netns::cut_connection`].
    pub fn heal_connections(&self) {
        ip(&["netns", "exec", &self.name, "nft", "delete", "table", "inet", "rtcpart"]).expect("nft delete table");
    }

    /// Ends the partition: the link comes back up, and the neighbour entries
    /// are pinned so that no ARP exchange is needed (nor can fail) either way.
    pub fn heal(&self) -> Result<(), String> {
        self.inside(&["link", "set", &self.ns_end, "up"])?;
        let mac = |netns: Option<&str>, dev: &str| -> Result<String, String> {
            let mut cmd = Command::new("ip");
            if let Some(ns) = netns {
                cmd.args(["netns", "exec", ns, "ip"]);
            }
            let out = cmd.args(["-o", "link", "show", dev]).output().map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.split_whitespace()
                .skip_while(|w| *w != "link/ether")
                .nth(1)
                .map(str::to_owned)
                .ok_or_else(|| format!("no MAC address for {dev}: {text}"))
        };
        let ns_mac = mac(Some(&self.name), &self.ns_end)?;
        let host_mac = mac(None, &self.host_end)?;
        ip(&["neigh", "replace", &self.address, "lladdr", &ns_mac, "dev", &self.host_end, "nud", "permanent"])?;
        self.inside(&[
            "neigh",
            "replace",
            &self.host_address,
            "lladdr",
            &host_mac,
            "dev",
            &self.ns_end,
            "nud",
            "permanent",
        ])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Whatever still runs inside goes first (a server the test did not stop).
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_end]);
    }
}
