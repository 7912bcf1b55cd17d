//! A real Redis Cluster on loopback: masters with replicas, created by
//! `redis-cli --cluster create`, for one test.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::RedisServer;

/// How long a fresh cluster gets to agree on its slots.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Several `redis-server --cluster-enabled yes` processes joined into one cluster.
pub struct RedisCluster {
    /// The nodes, masters first (as `redis-cli --cluster create` assigns them).
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each and waits until
    /// every node reports `cluster_state:ok`.
    pub fn start(masters: usize, replicas: usize) -> Self {
        let count = masters * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    // A test replica may take over however long ago it last synced.
                    "--cluster-replica-validity-factor",
                    "0",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(out.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        let cluster = RedisCluster { nodes };
        cluster.wait_ok(READY_DEADLINE);
        cluster.wait_replicas_online(replicas, READY_DEADLINE);
        cluster
    }

    /// Waits until every live node reports `cluster_state:ok`.
    pub fn wait_ok(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            let ok = self
                .nodes
                .iter()
                .filter(|n| n.pid().is_some())
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if ok {
                return;
            }
            assert!(Instant::now() < until, "the cluster did not reach cluster_state:ok within {deadline:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every master has `replicas` replicas in sync (`state=online`).
    pub fn wait_replicas_online(&self, replicas: usize, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            let ok = self
                .masters()
                .iter()
                .all(|&m| self.nodes[m].cli(&["INFO", "replication"]).matches("state=online").count() >= replicas);
            if ok {
                return;
            }
            assert!(Instant::now() < until, "replicas did not come online within {deadline:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Returns seed node URLs for the cache.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Returns the indices of the nodes that are masters now.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].pid().is_some() && self.nodes[i].cli(&["ROLE"]).starts_with("master"))
            .collect()
    }
}
