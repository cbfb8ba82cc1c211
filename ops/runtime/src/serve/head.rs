//! The request-head guard: every HTTP/1 request head is read here before actix-http sees it.
//!
//! actix-http answers a request head its parser refuses with a fixed, empty `400` (or `431`)
//! written by the connection layer, before any application code or middleware runs. The most
//! common such head is one a person made: a URL pasted into curl with Chinese in it
//! (`curl 'http://…/v1/search?q=电池'`), which curl sends as raw UTF-8 bytes that `http::Uri`
//! does not take. An empty 400 tells that person nothing.
//!
//! So each connection's byte stream passes through a [`HeadGuard`] that parses each request
//! head with the same parser actix-http uses (`httparse`, same limits) and then:
//! - percent-encodes the bytes ≥ 0x80 of the request target, which is what a browser would
//!   have sent: the pasted URL works;
//! - refuses a head that would still be refused (a malformed line, a target that is not a URI,
//!   too many headers, a head over 128 KiB, a bad `Content-Length`) with a problem document
//!   that names the part of the request (`/target`, `/headers`, `/headers/content-length`) and
//!   what to do, then closes the connection as actix-http would have.
//!
//! Following the requests on a kept-alive connection needs their framing: a body with a
//! `Content-Length` is counted through; after anything the guard does not follow (a chunked
//! body, an upgrade, HTTP/2) the rest of the connection passes through untouched, so the guard
//! can only ever make actix-http's answer better, never take a request it would have served.
//!
//! A refusal is written when actix-http shuts the connection down, after every response it
//! still owes for earlier (pipelined) requests: the reader side simply ends at the refused
//! head, which actix-http treats as the client having closed its half.
//!
//! What it may not touch: anything past the head. It never reads or changes a body, and it
//! knows nothing of routes, services or records.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use actix_web::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::problem::Problem;

/// actix-http's own limits (`h1::decoder`): heads beyond them are refused there too.
const MAX_HEAD_BYTES: usize = 131_072;
const MAX_HEADERS: usize = 96;

/// Where the guard is in the connection's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reading the next request head.
    Head,
    /// Inside a body of which this many bytes are still to come.
    Body(u64),
    /// Past anything the guard follows: bytes pass as they come.
    PassThrough,
    /// A head was refused: the reader sees the end of the stream.
    Refused,
}

/// An HTTP/1 connection's stream with its request heads checked (module doc).
pub struct HeadGuard<IO> {
    io: IO,
    mode: Mode,
    /// Read from the client, not yet classified (the start of a head, or what followed it).
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no blank line (so no whole head): a head sent a
    /// byte at a time is parsed once, not once per byte.
    scanned: usize,
    /// Classified, for actix-http: a checked (maybe rewritten) head, or body bytes.
    ready: Vec<u8>,
    ready_from: usize,
    /// The refusal to write before the connection closes, and how much of it is written.
    refusal: Vec<u8>,
    refusal_from: usize,
}

impl<IO> HeadGuard<IO> {
    /// A guard over an HTTP/1 connection.
    pub fn http1(io: IO) -> HeadGuard<IO> {
        HeadGuard::with_mode(io, Mode::Head)
    }

    /// A connection the guard leaves alone (HTTP/2: its frames are not HTTP/1 heads).
    pub fn pass_through(io: IO) -> HeadGuard<IO> {
        HeadGuard::with_mode(io, Mode::PassThrough)
    }

    fn with_mode(io: IO, mode: Mode) -> HeadGuard<IO> {
        HeadGuard {
            io,
            mode,
            pending: Vec::new(),
            scanned: 0,
            ready: Vec::new(),
            ready_from: 0,
            refusal: Vec::new(),
            refusal_from: 0,
        }
    }

    /// The connection underneath (the TLS stream, for its peer certificate).
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Classifies what `pending` holds, as far as it can without reading more. Returns whether
    /// it made progress.
    fn classify(&mut self) -> bool {
        let before = self.pending.len();
        let progress = self.classify_pending();
        if self.pending.len() != before {
            self.scanned = 0;
        }
        progress
    }

    fn classify_pending(&mut self) -> bool {
        match self.mode {
            Mode::Refused => false,
            Mode::PassThrough | Mode::Body(_) if self.pending.is_empty() => false,
            Mode::PassThrough => {
                self.ready.append(&mut self.pending);
                true
            }
            Mode::Body(left) => {
                let take = self
                    .pending
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                self.ready.extend(self.pending.drain(..take));
                self.mode = match left - take as u64 {
                    0 => Mode::Head,
                    left => Mode::Body(left),
                };
                true
            }
            Mode::Head => self.classify_head(),
        }
    }

    fn classify_head(&mut self) -> bool {
        if !self.may_hold_a_head() {
            let too_large = self.pending.len() >= MAX_HEAD_BYTES;
            if too_large {
                self.refuse(head_too_large());
            }
            return too_large;
        }
        match check_head(&self.pending) {
            Checked::Partial if self.pending.len() >= MAX_HEAD_BYTES => {
                self.refuse(head_too_large());
                true
            }
            Checked::Partial => false,
            Checked::Refused(refusal) => {
                self.refuse(refusal);
                true
            }
            Checked::Head {
                len,
                rewritten,
                next,
            } => {
                match rewritten {
                    Some(head) => {
                        self.ready.extend_from_slice(&head);
                        self.pending.drain(..len);
                    }
                    None => self.ready.extend(self.pending.drain(..len)),
                }
                self.mode = next;
                true
            }
        }
    }

    /// Whether `pending` has a blank line (`\n\n` or `\n\r\n`), without which no head is whole.
    fn may_hold_a_head(&mut self) -> bool {
        let from = self.scanned.saturating_sub(2);
        self.scanned = self.pending.len();
        let tail = &self.pending[from..];
        tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.mode = Mode::Refused;
        self.pending = Vec::new();
        self.refusal = refusal.into_response();
    }

    /// Hands `ready` bytes to `buf`; whether there were any.
    fn hand_over(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.ready_from == self.ready.len() {
            return false;
        }
        let n = (self.ready.len() - self.ready_from).min(buf.remaining());
        buf.put_slice(&self.ready[self.ready_from..self.ready_from + n]);
        self.ready_from += n;
        if self.ready_from == self.ready.len() {
            self.ready.clear();
            self.ready_from = 0;
        }
        true
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeadGuard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.hand_over(buf) {
                return Poll::Ready(Ok(()));
            }
            if this.classify() {
                continue;
            }
            match this.mode {
                Mode::Refused => return Poll::Ready(Ok(())),
                // Nothing to hold back: straight into the caller's buffer, no copy.
                Mode::PassThrough => return Pin::new(&mut this.io).poll_read(cx, buf),
                Mode::Body(left) => {
                    // Straight into the caller's buffer, never past the body's end.
                    let room = buf
                        .remaining()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    let mut body = ReadBuf::new(buf.initialize_unfilled_to(room));
                    ready!(Pin::new(&mut this.io).poll_read(cx, &mut body))?;
                    let n = body.filled().len();
                    buf.advance(n);
                    this.mode = match left - n as u64 {
                        _ if n == 0 => Mode::PassThrough,
                        0 => Mode::Head,
                        left => Mode::Body(left),
                    };
                    return Poll::Ready(Ok(()));
                }
                Mode::Head => {
                    let mut chunk = [0u8; 8192];
                    let mut read = ReadBuf::new(&mut chunk);
                    ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
                    if read.filled().is_empty() {
                        // The client closed: what it sent of a head goes on as it is, for
                        // actix-http to answer as it would.
                        this.mode = Mode::PassThrough;
                        if this.pending.is_empty() {
                            return Poll::Ready(Ok(()));
                        }
                        continue;
                    }
                    this.pending.extend_from_slice(read.filled());
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HeadGuard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// Writes the refusal, if a head was refused, after everything actix-http wrote.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.refusal_from < this.refusal.len() {
            let n =
                ready!(Pin::new(&mut this.io).poll_write(cx, &this.refusal[this.refusal_from..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.refusal_from += n;
        }
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// What one look at the start of `pending` found.
#[derive(Debug)]
enum Checked {
    /// Not a whole head yet.
    Partial,
    /// A head of `len` bytes, to hand on as it is or `rewritten`, then the stream is in `next`.
    Head {
        len: usize,
        rewritten: Option<Vec<u8>>,
        next: Mode,
    },
    Refused(Refusal),
}

/// A refused head: status, where in the request, and what to do.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    pointer: &'static str,
    detail: String,
}

impl Refusal {
    fn bad(pointer: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            pointer,
            detail: detail.into(),
        }
    }

    fn too_large(pointer: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            pointer,
            detail: detail.into(),
        }
    }

    /// The whole HTTP/1.1 response: a problem document, and the connection closes after it.
    fn into_response(self) -> Vec<u8> {
        let body = Problem::new(self.status, self.pointer, &self.detail).body();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("Error"),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

fn head_too_large() -> Refusal {
    Refusal::too_large(
        "/headers",
        "the request head (request line and headers) is larger than 128 KiB; send less in headers and the URL (large queries go in a request body)",
    )
}

/// Parses the head at the start of `bytes` as actix-http will, and decides (module doc).
fn check_head(bytes: &[u8]) -> Checked {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Partial) => return Checked::Partial,
        Ok(httparse::Status::Complete(len)) => len,
        Err(e) => return Checked::Refused(parse_refusal(e, bytes)),
    };
    let target = request.path.unwrap_or("/");
    let encoded = target
        .bytes()
        .any(|b| b >= 0x80)
        .then(|| percent_encode_high(target));
    let checked_target = encoded.as_deref().unwrap_or(target);
    if let Err(e) = actix_web::http::Uri::try_from(checked_target) {
        return Checked::Refused(Refusal::bad(
            "/target",
            format!(
                "the request target is not a valid URI ({e}); percent-encode the query, e.g. curl -G --data-urlencode 'q=…' URL"
            ),
        ));
    }
    let next = match framing(request.method.unwrap_or(""), request.headers) {
        Ok(next) => next,
        Err(refusal) => return Checked::Refused(refusal),
    };
    let rewritten = encoded.map(|encoded| {
        // The target is a slice of `bytes`: splice the encoded one in its place.
        let start = target.as_ptr() as usize - bytes.as_ptr() as usize;
        let mut head = Vec::with_capacity(len + encoded.len());
        head.extend_from_slice(&bytes[..start]);
        head.extend_from_slice(encoded.as_bytes());
        head.extend_from_slice(&bytes[start + target.len()..len]);
        head
    });
    Checked::Head {
        len,
        rewritten,
        next,
    }
}

/// `%XX` for every byte ≥ 0x80, the rest as it is: what a browser sends for a UTF-8 URL.
fn percent_encode_high(target: &str) -> String {
    let mut out = String::with_capacity(target.len() * 3);
    for b in target.bytes() {
        if b >= 0x80 {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Where the stream is after a head with these headers (module doc: what the guard follows).
fn framing(method: &str, headers: &[httparse::Header<'_>]) -> Result<Mode, Refusal> {
    let mut length: Option<u64> = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding")
            || header.name.eq_ignore_ascii_case("upgrade")
        {
            return Ok(Mode::PassThrough);
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    Refusal::bad(
                        "/headers/content-length",
                        "Content-Length is not a number of bytes",
                    )
                })?;
            if length.is_some_and(|l| l != value) {
                return Err(Refusal::bad(
                    "/headers/content-length",
                    "Content-Length is given twice with different values",
                ));
            }
            length = Some(value);
        }
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        return Ok(Mode::PassThrough);
    }
    Ok(match length {
        None | Some(0) => Mode::Head,
        Some(n) => Mode::Body(n),
    })
}

fn parse_refusal(e: httparse::Error, head: &[u8]) -> Refusal {
    use httparse::Error as E;
    let request_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let spaces = request_line.iter().filter(|&&b| b == b' ').count();
    match e {
        // `GET /v1/search?q=固态 电池 HTTP/1.1`: the URL's space ended the target early.
        E::Version | E::Token if spaces > 2 => Refusal::bad(
            "/target",
            "the URL has a space in it, which ends the request target early; percent-encode the query, e.g. curl -G --data-urlencode 'q=…' URL",
        ),
        E::TooManyHeaders => Refusal::too_large(
            "/headers",
            format!("the request has more than {MAX_HEADERS} headers"),
        ),
        E::HeaderName => Refusal::bad(
            "/headers",
            "a header name has characters HTTP does not allow (RFC 9110 token characters only)",
        ),
        E::HeaderValue => Refusal::bad(
            "/headers",
            "a header value has control characters; percent-encode or drop them",
        ),
        E::Version => Refusal::bad(
            "/version",
            "the request line does not end in HTTP/1.0 or HTTP/1.1 (HTTP/2 is served over TLS)",
        ),
        E::Token | E::NewLine | E::Status => Refusal::bad(
            "/target",
            "the request line is not `METHOD TARGET HTTP/1.1`: a space or control character in the URL ends it early; percent-encode the query, e.g. curl -G --data-urlencode 'q=…' URL",
        ),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    /// Feeds `sent` through a guard in pieces of `step` bytes, returning what actix-http would
    /// read and what the guard writes back at shutdown.
    async fn through(sent: &[u8], step: usize) -> (Vec<u8>, Vec<u8>) {
        let (mut client, server) = duplex(1 << 20);
        let mut guard = HeadGuard::http1(server);
        for piece in sent.chunks(step) {
            client.write_all(piece).await.unwrap();
        }
        client.shutdown().await.unwrap();
        let mut seen = Vec::new();
        guard.read_to_end(&mut seen).await.unwrap();
        guard.shutdown().await.unwrap();
        let mut answered = Vec::new();
        client.read_to_end(&mut answered).await.unwrap();
        (seen, answered)
    }

    #[tokio::test]
    async fn raw_utf8_in_the_target_is_percent_encoded_and_everything_else_kept() {
        let sent = "GET /v1/search?q=电池&region=53 HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in [1, 7, sent.len()] {
            let (seen, answered) = through(sent.as_bytes(), step).await;
            assert_eq!(
                String::from_utf8(seen).unwrap(),
                "GET /v1/search?q=%E7%94%B5%E6%B1%A0&region=53 HTTP/1.1\r\nHost: x\r\n\r\n",
                "step {step}"
            );
            assert!(answered.is_empty());
        }
    }

    #[tokio::test]
    async fn bodies_pass_unread_and_the_next_head_is_checked_again() {
        // The body holds what would be a head with raw UTF-8: it must pass as it is.
        let body = "GET /电池 HTTP/1.1\r\n\r\n";
        let sent = format!(
            "POST /v1/a HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET /v1/search?q=电 HTTP/1.1\r\n\r\n",
            body.len()
        );
        for step in [1, 5, sent.len()] {
            let (seen, _) = through(sent.as_bytes(), step).await;
            assert_eq!(
                String::from_utf8(seen).unwrap(),
                format!(
                    "POST /v1/a HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET /v1/search?q=%E7%94%B5 HTTP/1.1\r\n\r\n",
                    body.len()
                ),
                "step {step}"
            );
        }
    }

    #[tokio::test]
    async fn after_a_chunked_body_the_rest_passes_untouched() {
        let sent = "POST /v1/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /电 HTTP/1.1\r\n\r\n";
        let (seen, answered) = through(sent.as_bytes(), 4).await;
        assert_eq!(seen, sent.as_bytes());
        assert!(answered.is_empty());
    }

    async fn refused(sent: &[u8]) -> (Vec<u8>, u16, serde_json::Value) {
        let (seen, answered) = through(sent, 3).await;
        let text = String::from_utf8(answered).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("content-type: application/problem+json")
                && head.contains("connection: close"),
            "{head}"
        );
        let status = head[9..12].parse().unwrap();
        (seen, status, serde_json::from_str(body).unwrap())
    }

    #[tokio::test]
    async fn a_head_actix_would_refuse_gets_a_problem_document_naming_the_part() {
        let (seen, status, problem) = refused(b"GET /a^b`c|d<e> HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(seen.is_empty(), "nothing of a refused head reaches actix");
        assert_eq!(status, 400);
        assert_eq!(problem["errors"][0]["pointer"], "/target");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("--data-urlencode"),
            "{problem}"
        );

        let (_, status, problem) = refused(b"GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n").await;
        assert_eq!(
            (status, &problem["errors"][0]["pointer"]),
            (400, &"/headers".into())
        );

        let (_, status, problem) =
            refused(b"POST /a HTTP/1.1\r\nContent-Length: 12x\r\n\r\n").await;
        assert_eq!(
            (status, &problem["errors"][0]["pointer"]),
            (400, &"/headers/content-length".into())
        );

        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let (_, status, _) = refused(format!("GET /a HTTP/1.1\r\n{many}\r\n").as_bytes()).await;
        assert_eq!(status, 431);

        let huge = format!("GET /a HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        let (_, status, problem) = refused(huge.as_bytes()).await;
        assert_eq!(status, 431);
        assert!(problem["detail"].as_str().unwrap().contains("128 KiB"));
    }

    #[tokio::test]
    async fn a_refused_head_after_a_good_one_lets_the_good_one_through_first() {
        let sent = b"GET /ok HTTP/1.1\r\n\r\nGET /a b HTTP/1.1\r\n\r\n";
        let (seen, status, problem) = refused(sent).await;
        assert_eq!(seen, b"GET /ok HTTP/1.1\r\n\r\n");
        assert_eq!(status, 400);
        assert_eq!(problem["errors"][0]["pointer"], "/target");
        assert!(
            problem["detail"].as_str().unwrap().contains("space"),
            "{problem}"
        );
    }

    #[tokio::test]
    async fn a_head_cut_short_by_the_client_goes_on_as_it_came() {
        let (seen, answered) = through(b"GET /v1/search?q=\xe7\x94 HTT", 2).await;
        assert_eq!(seen, b"GET /v1/search?q=\xe7\x94 HTT");
        assert!(answered.is_empty());
    }
}
