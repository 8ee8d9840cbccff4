//! The proxy's TLS session (rustls's unbuffered API) against a real rustls client over
//! real sockets on 127.0.0.1: records cut anywhere, a slow reader, both TLS versions,
//! close_notify both ways, and garbage.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pools::{read_views, SlabPool, SlabView};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use slab_stack::proxy::TlsSession;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

use common::BOUND;

struct Tls {
    server: Arc<ServerConfig>,
    client12: Arc<ClientConfig>,
    client13: Arc<ClientConfig>,
    _dir: tempfile::TempDir,
}

fn tls() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path());
    let server = runtime::tls::server_config(&config).unwrap();
    let (cert, _) = runtime::tls::cert_paths(&config);
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let client = |versions: &[&'static SupportedProtocolVersion]| {
        Arc::new(
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
        )
    };
    Tls {
        server,
        client12: client(&[&rustls::version::TLS12]),
        client13: client(&[&rustls::version::TLS13]),
        _dir: dir,
    }
}

/// A connected pair of sockets: (client's, server's).
async fn sockets() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

/// The server's side: a session over its socket, and a small `tls` pool for its reads.
fn server_side(io: TcpStream, config: Arc<ServerConfig>) -> (TlsSession, Arc<SlabPool>) {
    let pool = SlabPool::new("tls", 128 << 10, 4 << 10);
    (TlsSession::new(io, config).unwrap(), pool)
}

/// The client's side: a rustls client's handshake for `localhost` over `io`.
async fn client_side<IO>(config: Arc<ClientConfig>, io: IO) -> tokio_rustls::client::TlsStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").unwrap();
    timeout(BOUND, connector.connect(name, io))
        .await
        .expect("a handshake within the bound")
        .unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn joined(views: &[SlabView]) -> Vec<u8> {
    views.iter().flat_map(|v| v.iter().copied()).collect()
}

/// A client socket that writes one byte at a time, each only once it is permitted.
struct Dribble {
    io: TcpStream,
    permits: mpsc::UnboundedReceiver<()>,
    permitted: bool,
}

impl AsyncRead for Dribble {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Dribble {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if !self.permitted {
            if ready!(self.permits.poll_recv(cx)).is_none() {
                return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
            }
            self.permitted = true;
        }
        let n = ready!(Pin::new(&mut self.io).poll_write(cx, &buf[..1]))?;
        self.permitted = false;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Every byte the client sends (handshake and data) reaches the session in a read of
/// its own, so that every record arrives cut at every place: the data still comes out
/// whole, as views of the pool, and the session then holds no buffer.
#[tokio::test]
async fn records_cut_at_every_byte_come_out_whole() {
    let tls = tls();
    for client_config in [tls.client13.clone(), tls.client12.clone()] {
        let (client_io, server_io) = sockets().await;
        let (permit, permits) = mpsc::unbounded_channel();
        let message = pattern(20_000); // two records
        let (mut session, pool) = server_side(server_io, tls.server.clone());
        let expected = message.len();
        let server = tokio::spawn(async move {
            let mut views = Vec::new();
            let mut reads = 0;
            permit.send(()).unwrap();
            while joined(&views).len() < expected {
                assert!(read_views(&mut session, &pool, &mut views).await.unwrap());
                reads += 1;
                let _ = permit.send(());
            }
            (
                joined(&views),
                reads,
                session.buffered_bytes(),
                pool.summary(),
            )
        });
        let dribble = Dribble {
            io: client_io,
            permits,
            permitted: false,
        };
        let mut client = client_side(client_config, dribble).await;
        timeout(BOUND, async {
            client.write_all(&message).await.unwrap();
            client.flush().await.unwrap();
        })
        .await
        .unwrap();
        let (got, reads, buffered, summary) = timeout(BOUND, server).await.unwrap().unwrap();
        assert!(got == message, "the data came out changed");
        assert!(
            reads > expected,
            "{reads} reads for {expected} bytes and a handshake"
        );
        assert_eq!(buffered, 0, "an idle session holds no buffer");
        assert!(summary.referenced_bytes >= expected as u64, "{summary:?}");
    }
}

/// A client that reads slowly gets every byte the session writes, in order, with
/// either TLS version; once all is sent, the session holds no buffer.
#[tokio::test]
async fn a_slow_reader_gets_everything_and_the_session_keeps_nothing() {
    let tls = tls();
    for client_config in [tls.client13.clone(), tls.client12.clone()] {
        let (client_io, server_io) = sockets().await;
        let data = pattern(3 << 20);
        let sent = data.clone();
        let server = tokio::spawn({
            let config = tls.server.clone();
            async move {
                let (mut session, pool) = server_side(server_io, config);
                // The client's first bytes (and the handshake) come with its request.
                let mut views = Vec::new();
                while joined(&views) != b"send" {
                    assert!(read_views(&mut session, &pool, &mut views).await.unwrap());
                }
                session.write_all(&sent).await.unwrap();
                session.flush().await.unwrap();
                let buffered = session.buffered_bytes();
                session.shutdown().await.unwrap();
                buffered
            }
        });
        let mut client = client_side(client_config, client_io).await;
        client.write_all(b"send").await.unwrap();
        client.flush().await.unwrap();
        let mut got = Vec::new();
        let mut chunk = vec![0; 1000];
        timeout(BOUND, async {
            loop {
                // Small reads, one at a time: the session's writes outrun them.
                let n = client.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("the session's data and close_notify within the bound");
        assert_eq!(got.len(), data.len());
        assert!(got == data, "the data came out changed");
        assert_eq!(timeout(BOUND, server).await.unwrap().unwrap(), 0);
    }
}

/// close_notify goes both ways: the client's ends the session's reads, and the
/// session's shutdown reaches the client as a clean end (not a truncation).
#[tokio::test]
async fn close_notify_ends_both_ways() {
    let tls = tls();
    let (client_io, server_io) = sockets().await;
    let server = tokio::spawn({
        let config = tls.server.clone();
        async move {
            let (mut session, pool) = server_side(server_io, config);
            let mut views = Vec::new();
            while read_views(&mut session, &pool, &mut views).await.unwrap() {}
            session.write_all(b"bye").await.unwrap();
            session.shutdown().await.unwrap();
            joined(&views)
        }
    });
    let mut client = client_side(tls.client13.clone(), client_io).await;
    client.write_all(b"last words").await.unwrap();
    client.shutdown().await.unwrap(); // close_notify, then FIN
    let mut answer = Vec::new();
    // tokio-rustls reports a connection ended without close_notify as an error.
    timeout(BOUND, client.read_to_end(&mut answer))
        .await
        .unwrap()
        .expect("a clean end, with close_notify");
    assert_eq!(answer, b"bye");
    assert_eq!(
        timeout(BOUND, server).await.unwrap().unwrap(),
        b"last words"
    );
}

/// Bytes that are not TLS fail the session's read with a clear error, and the
/// client gets a TLS alert before the connection ends.
#[tokio::test]
async fn garbage_fails_with_an_alert() {
    let tls = tls();
    let (mut client, server_io) = sockets().await;
    let server = tokio::spawn({
        let config = tls.server.clone();
        async move {
            let (mut session, pool) = server_side(server_io, config);
            let mut views: Vec<SlabView> = Vec::new();
            let err = loop {
                match read_views(&mut session, &pool, &mut views).await {
                    Ok(true) => continue,
                    Ok(false) => panic!("garbage read as an end of stream"),
                    Err(e) => break e,
                }
            };
            let _ = session.shutdown().await;
            err
        }
    });
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let err = timeout(BOUND, server).await.unwrap().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().starts_with("TLS: "), "{err}");
    let answer = timeout(BOUND, common::read_all(&mut client)).await.unwrap();
    assert_eq!(answer.first(), Some(&21), "a TLS alert record: {answer:?}");
}
