//! A TCP proxy between a client and Redis that injects network faults on demand: added latency,
//! a black hole (bytes are held, nothing is answered), and connection resets. The fault tests put
//! it between the gateway and the real Redis.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// What the proxy does to traffic from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as is.
    Pass,
    /// Delay every chunk, in both directions.
    Latency(Duration),
    /// Accept and read, forward nothing until the fault changes (a hung server or network).
    BlackHole,
    /// Close every open connection now and every new one at once.
    Reset,
}

struct Shared {
    fault: Fault,
    /// Connection pumps, aborted on `Reset`.
    live: Vec<JoinHandle<()>>,
}

/// The proxy; dropping it stops accepting and closes every connection.
pub struct FaultProxy {
    addr: String,
    shared: Arc<Mutex<Shared>>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on an ephemeral 127.0.0.1 port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Mutex::new(Shared {
            fault: Fault::Pass,
            live: Vec::new(),
        }));
        let upstream = upstream.to_owned();
        let accept = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if fault(&shared) == Fault::Reset {
                        drop(client);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    let task = tokio::spawn(pump_both(client, server, shared.clone()));
                    let mut s = shared.lock().unwrap();
                    s.live.retain(|t| !t.is_finished());
                    s.live.push(task);
                }
            }
        });
        FaultProxy {
            addr,
            shared,
            accept,
        }
    }

    /// `host:port` to connect to instead of Redis.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `url` (a `redis://` URL) pointed at the proxy instead of its host, credentials kept.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a redis:// URL");
        let credentials = rest.rsplit_once('@').map(|(c, _)| format!("{c}@"));
        format!(
            "{scheme}://{}{}",
            credentials.unwrap_or_default(),
            self.addr
        )
    }

    /// Starts a proxy in front of the server of `url` (a `redis://` URL) with `fault` already in
    /// place; returns it and the URL to give the client.
    pub async fn in_front_of(url: &str, fault: Fault) -> (FaultProxy, String) {
        let proxy = FaultProxy::start(&host_port(url)).await;
        proxy.set(fault);
        let through = proxy.url_for(url);
        (proxy, through)
    }

    /// Switches the fault; `Reset` also closes every open connection.
    pub fn set(&self, fault: Fault) {
        let mut s = self.shared.lock().unwrap();
        s.fault = fault;
        if fault == Fault::Reset {
            for t in s.live.drain(..) {
                t.abort();
            }
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.shared.lock().unwrap().live.drain(..) {
            t.abort();
        }
    }
}

/// `host:port` of a `redis://` URL (credentials and database path dropped).
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    host.split('/').next().unwrap_or(host).to_owned()
}

fn fault(shared: &Mutex<Shared>) -> Fault {
    shared.lock().unwrap().fault
}

async fn pump_both(client: TcpStream, server: TcpStream, shared: Arc<Mutex<Shared>>) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, shared.clone());
    let down = pump(sr, cw, shared);
    // either side closing ends the connection
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Mutex<Shared>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            match fault(&shared) {
                Fault::Pass => break,
                Fault::Latency(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                Fault::BlackHole => tokio::time::sleep(Duration::from_millis(10)).await,
                Fault::Reset => return,
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, within: Duration) -> Option<Duration> {
        let t = std::time::Instant::now();
        s.write_all(b"ping").await.ok()?;
        let mut b = [0u8; 4];
        match tokio::time::timeout(within, s.read_exact(&mut b)).await {
            Ok(Ok(_)) if &b == b"ping" => Some(t.elapsed()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn pass_latency_black_hole_and_reset() {
        let proxy = FaultProxy::start(&echo_server().await).await;
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(round_trip(&mut s, Duration::from_secs(2)).await.is_some());

        proxy.set(Fault::Latency(Duration::from_millis(100)));
        let took = round_trip(&mut s, Duration::from_secs(2)).await.unwrap();
        assert!(
            took >= Duration::from_millis(200),
            "both directions delayed: {took:?}"
        );

        proxy.set(Fault::BlackHole);
        assert!(
            round_trip(&mut s, Duration::from_millis(300))
                .await
                .is_none()
        );
        // healing delivers what was held
        proxy.set(Fault::Pass);
        let mut b = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();

        proxy.set(Fault::Reset);
        let mut b = [0u8; 4];
        let r = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b))
            .await
            .unwrap();
        assert!(
            matches!(r, Ok(0) | Err(_)),
            "the open connection is closed: {r:?}"
        );
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(
            round_trip(&mut fresh, Duration::from_millis(500))
                .await
                .is_none()
        );

        proxy.set(Fault::Pass);
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(
            round_trip(&mut fresh, Duration::from_secs(2))
                .await
                .is_some()
        );
    }
}
