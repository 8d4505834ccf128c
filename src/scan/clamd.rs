//! A ClamAV daemon as the malware check: the bytes are streamed to `clamd` over its `INSTREAM`
//! protocol (TCP or a unix socket), with a bounded number of scans at once and a timeout on
//! each. Anything but a clean answer — a signature found, clamd unreachable, slow, or refusing
//! the size — is not a pass: the caller refuses the upload (fails closed).
//!
//! The protocol: `zINSTREAM\0`, then chunks, each a 4-byte big-endian length and that many
//! bytes, then a zero length; clamd answers one NUL-terminated line, `stream: OK` or
//! `stream: <signature> FOUND` (or an `… ERROR`).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;

/// Largest chunk sent in one `INSTREAM` frame.
const FRAME: usize = 64 * 1024;
/// Longest answer read back.
const MAX_REPLY: usize = 4096;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(String),
    Unix(PathBuf),
}

impl Address {
    /// Parses `tcp://HOST:PORT` or `unix:///PATH`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(hp) = s.strip_prefix("tcp://") {
            if hp
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                return Ok(Address::Tcp(hp.to_string()));
            }
            return Err(format!("{s:?} is not tcp://HOST:PORT"));
        }
        if let Some(p) = s.strip_prefix("unix://")
            && p.starts_with('/')
        {
            return Ok(Address::Unix(PathBuf::from(p)));
        }
        Err(format!("{s:?} is neither tcp://HOST:PORT nor unix:///PATH"))
    }
}

/// What clamd said about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The name of the signature that matched.
    Infected(String),
}

/// Why no verdict was had.
#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    #[error("clamd unreachable: {0}")]
    Connect(std::io::Error),
    #[error("clamd i/o: {0}")]
    Io(std::io::Error),
    #[error("clamd timed out")]
    Timeout,
    #[error("clamd refused the stream's size")]
    SizeLimit,
    #[error("clamd answered {0:?}")]
    Protocol(String),
    #[error("reading the object: {0}")]
    Source(String),
}

/// A clamd client.
#[derive(Debug)]
pub struct Clamd {
    address: Address,
    timeout: Duration,
    permits: Semaphore,
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

impl Clamd {
    pub fn new(address: Address, timeout: Duration, max_concurrent: usize) -> Self {
        Self {
            address,
            timeout,
            permits: Semaphore::new(max_concurrent.max(1)),
        }
    }

    async fn connect(&self) -> Result<Box<dyn Conn>, ClamdError> {
        match &self.address {
            Address::Tcp(hp) => tokio::net::TcpStream::connect(hp)
                .await
                .map(|s| Box::new(s) as Box<dyn Conn>)
                .map_err(ClamdError::Connect),
            #[cfg(unix)]
            Address::Unix(p) => tokio::net::UnixStream::connect(p)
                .await
                .map(|s| Box::new(s) as Box<dyn Conn>)
                .map_err(ClamdError::Connect),
            #[cfg(not(unix))]
            Address::Unix(_) => Err(ClamdError::Connect(std::io::Error::other(
                "unix sockets are not supported here",
            ))),
        }
    }

    async fn reply(conn: &mut Box<dyn Conn>) -> Result<String, ClamdError> {
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = conn.read(&mut buf).await.map_err(ClamdError::Io)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.contains(&0) || out.len() > MAX_REPLY {
                break;
            }
        }
        let end = out.iter().position(|b| *b == 0).unwrap_or(out.len());
        Ok(String::from_utf8_lossy(&out[..end]).trim().to_string())
    }

    /// `PING` → `PONG`, within the timeout: clamd is up.
    pub async fn ping(&self) -> Result<(), ClamdError> {
        let run = async {
            let mut conn = self.connect().await?;
            conn.write_all(b"zPING\0").await.map_err(ClamdError::Io)?;
            match Self::reply(&mut conn).await?.as_str() {
                "PONG" => Ok(()),
                other => Err(ClamdError::Protocol(other.to_string())),
            }
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| ClamdError::Timeout)?
    }

    /// Streams `body` to clamd and returns its verdict. At most the configured number of scans
    /// run at once; the others wait their turn within the same timeout.
    pub async fn scan<S, E>(&self, body: S) -> Result<Verdict, ClamdError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let run = async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| ClamdError::Timeout)?;
            let mut conn = self.connect().await?;
            conn.write_all(b"zINSTREAM\0")
                .await
                .map_err(ClamdError::Io)?;
            let mut body = body;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ClamdError::Source(e.to_string()))?;
                for piece in chunk.chunks(FRAME) {
                    let len = u32::try_from(piece.len()).map_err(|_| ClamdError::SizeLimit)?;
                    if conn.write_all(&len.to_be_bytes()).await.is_err()
                        || conn.write_all(piece).await.is_err()
                    {
                        // clamd closes the connection when the stream passes its limit; its
                        // answer says why.
                        return Self::verdict(&Self::reply(&mut conn).await?);
                    }
                }
            }
            conn.write_all(&0u32.to_be_bytes())
                .await
                .map_err(ClamdError::Io)?;
            Self::verdict(&Self::reply(&mut conn).await?)
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| ClamdError::Timeout)?
    }

    fn verdict(reply: &str) -> Result<Verdict, ClamdError> {
        let body = reply.strip_prefix("stream: ").unwrap_or(reply);
        if body == "OK" {
            return Ok(Verdict::Clean);
        }
        if let Some(sig) = body.strip_suffix(" FOUND") {
            return Ok(Verdict::Infected(sig.to_string()));
        }
        if body.contains("size limit exceeded") {
            return Err(ClamdError::SizeLimit);
        }
        Err(ClamdError::Protocol(reply.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_answers() {
        assert_eq!(
            Address::parse("tcp://127.0.0.1:3310").expect("tcp"),
            Address::Tcp("127.0.0.1:3310".into())
        );
        assert_eq!(
            Address::parse("unix:///run/clamav/clamd.ctl").expect("unix"),
            Address::Unix("/run/clamav/clamd.ctl".into())
        );
        assert!(Address::parse("127.0.0.1:3310").is_err());
        assert!(Address::parse("tcp://host").is_err());
        assert_eq!(Clamd::verdict("stream: OK").expect("ok"), Verdict::Clean);
        assert_eq!(
            Clamd::verdict("stream: Eicar-Test FOUND").expect("found"),
            Verdict::Infected("Eicar-Test".into())
        );
        assert!(matches!(
            Clamd::verdict("INSTREAM size limit exceeded. ERROR"),
            Err(ClamdError::SizeLimit)
        ));
        assert!(matches!(
            Clamd::verdict("UNKNOWN COMMAND"),
            Err(ClamdError::Protocol(_))
        ));
    }
}
