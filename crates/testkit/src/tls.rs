//! A TLS front for the Redis under test (the embedded server is built without TLS): terminates
//! TLS with a certificate generated for the test and forwards the plain bytes to Redis.

use std::sync::Arc;

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

/// A running TLS terminator; dropping it stops it.
pub struct TlsFront {
    addr: String,
    /// The server certificate (self-signed, for `localhost` and `127.0.0.1`) in PEM: the trust
    /// root a client needs.
    pub ca_pem: String,
    task: JoinHandle<()>,
}

impl TlsFront {
    /// Listens on an ephemeral 127.0.0.1 port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> TlsFront {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("generate a test certificate");
        let ca_pem = cert.cert.pem();
        let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server TLS config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind TLS front");
        let addr = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    // a client that does not trust the certificate aborts the handshake: nothing
                    // to forward
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = copy_bidirectional(&mut tls, &mut server).await;
                });
            }
        });
        TlsFront { addr, ca_pem, task }
    }

    /// `host:port` of the TLS endpoint.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
