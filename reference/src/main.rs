//! The benchmark ceiling: the least an HTTPS hello world can do with the same stack glassbox
//! uses (tokio, hyper, rustls with ring). It reads and discards any request body, then answers
//! every request with the same body as glassbox's `GET /`; no routing, telemetry or limits. So
//! it is also the reference for uploads: a server that receives a file and throws it away.
//!
//! Usage: `glassbox-reference [ADDR] [CERTS_DIR]` (defaults `127.0.0.1:9443` and `./certs`).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const BODY: &[u8] = br#"{"result":"success","data":{"message":"Hello, world!"}}"#;

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = request.into_body();
    while let Some(Ok(_)) = body.frame().await {}
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn tls_config(dir: &std::path::Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    let chain =
        CertificateDer::pem_file_iter(dir.join("server.crt"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9443".into());
    let certs = PathBuf::from(args.next().unwrap_or_else(|| "./certs".into()));
    let acceptor = TlsAcceptor::from(tls_config(&certs)?);
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(tcp).await {
                let _ = builder
                    .serve_connection(TokioIo::new(tls), hyper::service::service_fn(hello))
                    .await;
            }
        });
    }
}
