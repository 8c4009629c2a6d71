//! The floor `heartwatch bench` compares heartwatch with: a bare tokio line-echo server, one
//! task per connection, answering every line with itself. It has no watchdog, no registry
//! and no JSON: what it costs is the syscalls and wake-ups of one small request and reply.
//!
//! ```text
//! cargo run --release --example echo_floor -- 127.0.0.1:7800
//! heartwatch bench --server 127.0.0.1:7800 --pid <its pid> --clients 10000
//! ```

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7800".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // The same large backlog as heartwatch, so that connects do not queue differently.
    let listener = socket.listen(4096)?;
    println!("echo floor listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::with_capacity(256, read);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if write.write_all(line.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
