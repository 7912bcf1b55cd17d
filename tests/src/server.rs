//! A real `redis-server` on a free loopback port, for one test or one suite.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server gets to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A `redis-server` process started on a free loopback port, with no
/// persistence. It is killed and reaped on drop; if the test thread is
/// panicking, its log is printed first.
pub struct RedisServer {
    child: Option<Child>,
    /// The address it listens on: loopback, or its network namespace's.
    host: String,
    /// The network namespace it runs in (see [`crate::netns`]), if not this one.
    netns: Option<String>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server with default settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `["--maxmemory", "1mb"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_at("127.0.0.1", None, extra)
    }

    /// Starts a server inside the network namespace `net`, listening on its
    /// address there, so that cutting `net`'s link partitions it from this
    /// process (see [`crate::netns::Netns::cut`]).
    pub fn start_in(net: &crate::netns::Netns, extra: &[&str]) -> Self {
        // Not loopback: Redis's protected mode would refuse this process.
        let mut extra = extra.to_vec();
        extra.extend(["--protected-mode", "no"]);
        Self::start_at(net.address(), Some(net.name().to_string()), &extra)
    }

    fn start_at(host: &str, netns: Option<String>, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(crate::unique_namespace("rtc-redis"));
        std::fs::create_dir_all(&dir).expect("create a temp dir for redis-server");
        let mut server = RedisServer {
            child: None,
            host: host.to_string(),
            netns,
            port: free_port(),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// A command that runs `program` where the server runs (its namespace).
    fn command_here(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, program]);
                cmd
            }
            None => Command::new(program),
        }
    }

    fn spawn(&mut self) {
        let log = self.dir.join("redis.log");
        // `ip netns exec` execs the server: the child's pid is the server's.
        let mut cmd = self.command_here(&binary());
        // In a namespace, on its loopback too: `cli` reaches it there while the link is cut.
        let bind = if self.netns.is_some() { format!("{} 127.0.0.1", self.host) } else { self.host.clone() };
        cmd.args(["--port", &self.port.to_string(), "--bind", &bind, "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}); run the README's test command, which installs it")
        });
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server exited with {status} at start; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not answer PING within {START_DEADLINE:?}; log:\n{}", self.log());
    }

    fn ping(&self) -> bool {
        use std::io::Write as _;
        let Ok(mut s) = TcpStream::connect((self.host.as_str(), self.port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        // Any reply will do: +PONG, or -NOAUTH from a server with a password.
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).is_ok() && matches!(buf[0], b'+' | b'-')
    }

    /// Returns the port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the `redis://` URL of this server.
    pub fn url(&self) -> String {
        format!("redis://{}:{}/", self.host, self.port)
    }

    /// Returns the server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// Runs `redis-cli` against this server and returns its trimmed stdout
    /// (from inside its namespace, so it reaches a partitioned server too).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self
            .command_here("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Kills the server (SIGKILL) and waits for it: Redis is down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Pauses the server (SIGSTOP) and waits until it is stopped: it keeps
    /// its connections and answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP", true);
    }

    /// Resumes a paused server (SIGCONT) and waits until it runs.
    pub fn resume(&self) {
        self.signal("-CONT", false);
    }

    /// Sends `signal` to the server and waits until /proc shows the process
    /// state it causes (`stopped` or not).
    fn signal(&self, signal: &str, stopped: bool) {
        let pid = self.pid().expect("the server runs").to_string();
        let ok = Command::new("kill").args([signal, &pid]).status().expect("kill").success();
        assert!(ok, "kill {signal} {pid}");
        // Signal delivery is asynchronous; /proc tells when it has happened (no event to wait on).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
            let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
            if (state == Some('T')) == stopped {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not reach the {signal} state: {stat}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Returns the server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Returns the server's working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- redis-server log (port {}) ---\n{}", self.port, self.log());
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn binary() -> String {
    std::env::var("RTC_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// Returns a loopback port that was free a moment ago, and never one this
/// process was given before: the kernel may hand a port it just closed out
/// again, and two servers started together then race for it (seen once in
/// CI: two of a topology's three sentinels were given one port, and the
/// second could not bind).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind a free loopback port");
        if given.insert(port) {
            return port;
        }
    }
}
