//! The admin API over TLS (rustls): a certificate chain and its key read from PEM files, and an
//! accept loop that serves each connection once its handshake is done.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt as _;

/// How long a client has to finish its TLS handshake: one that stalls is dropped, and does
/// not hold the others.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin API's TLS identity: what the control plane presents to clients.
#[derive(Clone)]
pub struct AdminTls(Arc<rustls::ServerConfig>);

impl fmt::Debug for AdminTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminTls(..)")
    }
}

impl AdminTls {
    /// The certificate chain in the PEM file `cert` (the server's certificate first) and its
    /// private key in the PEM file `key`, which neither group nor others may read. The error
    /// names the file and says what is wrong.
    pub fn load(cert: &Path, key: &Path) -> Result<AdminTls, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(Iterator::collect)
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no PEM certificate in it", cert.display()));
        }
        let key_pem = peregrine_config::model::read_private(key)?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| format!("{}: no PEM private key in it ({e})", key.display()))?;
        // ring has no post-quantum key exchange, which rustls now deprecates it for; aws-lc-rs
        // would add a C build of AWS-LC for an API that belongs on a management network.
        #[expect(
            deprecated,
            reason = "ring's provider, chosen over a C build of AWS-LC"
        )]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                format!(
                    "{} and {}: the key does not serve the certificate ({e})",
                    cert.display(),
                    key.display()
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(AdminTls(Arc::new(config)))
    }
}

/// Accepts connections on `listener` for ever, each served over TLS on a task of its own.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: AdminTls,
) -> io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.0);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: back off rather than spin.
                tracing::warn!(error = %e, "control plane: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                app.clone().oneshot(request)
            });
            // A connection that fails mid-way concerns its client only.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
