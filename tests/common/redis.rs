//! A real `redis-server` per test, on a free loopback port, stopped on drop; and a TCP proxy
//! in front of it that can cut one node off.
//!
//! Where `redis-server` is not on PATH, [`RedisServer::start`] fails the test when `CI` is set
//! and otherwise skips it (answers `None`), printing how to install it either way.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to tell whoever runs the tests without Redis.
pub const INSTALL: &str = "the cluster tests need redis-server 7 on PATH \
     (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis)";

/// A redis-server child process on its own port, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    frozen: bool,
}

impl RedisServer {
    /// Starts one, or `None` (skipped) when redis-server is missing outside CI.
    pub async fn start() -> Option<Self> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            if std::env::var_os("CI").is_some() {
                panic!("{INSTALL}");
            }
            eprintln!("SKIPPED: {INSTALL}");
            return None;
        }
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
                .args(["--port", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            let mut server = Self {
                child,
                port,
                frozen: false,
            };
            if server.wait_ready().await {
                return Some(server);
            }
        }
        panic!("redis-server did not start on a free port in 5 tries");
    }

    async fn wait_ready(&mut self) -> bool {
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.ping().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn ping(&self) -> bool {
        let Ok(Ok(mut s)) = tokio::time::timeout(
            Duration::from_millis(200),
            TcpStream::connect(("127.0.0.1", self.port)),
        )
        .await
        else {
            return false;
        };
        if s.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        matches!(
            tokio::time::timeout(Duration::from_millis(200), s.read_exact(&mut buf)).await,
            Ok(Ok(_))
        ) && &buf == b"+PONG\r\n"
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&mut self) {
        signal(self.child.id(), "STOP");
        self.frozen = true;
    }

    /// Resumes it (SIGCONT).
    pub fn thaw(&mut self) {
        signal(self.child.id(), "CONT");
        self.frozen = false;
    }

    /// A synchronous connection for assertions.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("url")
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to the test redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.frozen {
            signal(self.child.id(), "CONT");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid}");
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A TCP proxy to Redis that can cut its clients off: while cut, its connections are closed
/// and new ones are accepted but never answered (a partition, as seen from the node).
pub struct CutProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (c, k) = (cut.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let cut = c.clone();
                let task = tokio::spawn(async move {
                    if cut.load(Ordering::SeqCst) {
                        // Hold it, answer nothing.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target_port)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                k.lock().unwrap().push(task);
            }
        });
        Self {
            addr,
            cut,
            conns,
            accept,
        }
    }

    /// `redis://<proxy>/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Cuts every connection and answers no new one.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Forwards again (new connections).
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}
