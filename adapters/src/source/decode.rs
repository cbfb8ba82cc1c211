//! Text decoding for the text sources (CSV/TSV, XML): finding a file's encoding and turning its
//! bytes into UTF-8 as they are read, a buffer at a time.
//!
//! Why it is built so: a provincial export may be a 1 GB GBK file, so nothing here holds more
//! than two 64 KiB buffers. Bytes that are not valid in the encoding become U+FFFD in the text
//! (so the parser can go on) **and** are logged with their place in the file and in the
//! decoded text, so that the reader can refuse exactly the row they fall in instead of
//! registering a corrupted value in silence (what `encoding_rs_io` and lossy decoding do).
//!
//! What it may not touch: the text's content or structure; it knows no delimiter or tag.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex, PoisonError};

use encoding_rs::{DecoderResult, Encoding, UTF_8, UTF_16BE, UTF_16LE};

/// How much of a file the encoding guess looks at.
pub(crate) const SNIFF_LEN: usize = 64 * 1024;

const BUFFER_LEN: usize = 64 * 1024;
/// Room kept free at the end of the output buffer for one U+FFFD (3 bytes in UTF-8).
const REPLACEMENT_ROOM: usize = 3;

/// Reads up to `limit` bytes from the start of `input` (fewer only at its end).
pub(crate) fn read_prefix(input: &mut impl Read, limit: usize) -> io::Result<(Vec<u8>, bool)> {
    let mut prefix = Vec::with_capacity(limit.min(SNIFF_LEN));
    let at_end = input.take(limit as u64).read_to_end(&mut prefix)? < limit;
    Ok((prefix, at_end))
}

/// The encoding a byte order mark at the start of `bytes` names, and the mark's length.
pub(crate) fn bom_encoding(bytes: &[u8]) -> Option<(&'static Encoding, usize)> {
    Encoding::for_bom(bytes)
}

/// Guesses the encoding of text that has no byte order mark from its first bytes: UTF-8 when
/// they are valid UTF-8 (a sequence cut by the end of the sample counts as valid unless the
/// sample is the whole file), else what `chardetng` finds most likely, told the text is
/// Chinese (GBK for GBK and GB18030 alike: their decoders are the same).
pub(crate) fn guess_encoding(sample: &[u8], whole_file: bool) -> &'static Encoding {
    match std::str::from_utf8(sample) {
        Ok(_) => return UTF_8,
        Err(e) if e.error_len().is_none() && !whole_file => return UTF_8,
        Err(_) => {}
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(sample, whole_file);
    detector.guess(Some(b"cn"), chardetng::Utf8Detection::Allow)
}

/// A byte sequence that was not valid in the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// Where its U+FFFD stands in the decoded text.
    pub decoded_offset: u64,
    /// Where the bytes are in the file.
    pub file_offset: u64,
}

/// The malformed sequences found so far and not yet claimed by a row, oldest first. Shared
/// between the decoder (which writes) and the row reader (which claims).
#[derive(Debug, Clone, Default)]
pub(crate) struct MalformedLog(Arc<Mutex<VecDeque<Malformed>>>);

impl MalformedLog {
    fn push(&self, malformed: Malformed) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(malformed);
    }

    /// Claims every logged sequence that stands before `end` in the decoded text and returns
    /// the first of them that stands at or after `start`: the first bad sequence of the row
    /// that occupies `start..end`. Sequences before `start` fell outside any row.
    pub fn claim(&self, start: u64, end: u64) -> Option<Malformed> {
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut first = None;
        while let Some(m) = log.front() {
            if m.decoded_offset >= end {
                break;
            }
            if m.decoded_offset >= start && first.is_none() {
                first = Some(*m);
            }
            log.pop_front();
        }
        first
    }
}

/// A reader that decodes `inner` from `encoding` to UTF-8, streaming. Invalid sequences become
/// U+FFFD and are logged in [`MalformedLog`].
pub(crate) struct Transcoder<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Box<[u8]>,
    input_pos: usize,
    input_len: usize,
    /// File offset of `input[0]`.
    input_base: u64,
    input_done: bool,
    output: Box<[u8]>,
    output_pos: usize,
    output_len: usize,
    /// Decoded-text offset of `output[0]`.
    output_base: u64,
    finished: bool,
    /// Line breaks in the decoded text consumed so far.
    newlines: u64,
    /// The last byte of decoded text produced.
    last_byte: Option<u8>,
    log: MalformedLog,
}

impl<R: Read> Transcoder<R> {
    /// Decodes `inner`, whose first byte is at offset `file_offset` of the file (the length
    /// of a byte order mark already skipped), from `encoding`.
    pub fn new(inner: R, encoding: &'static Encoding, file_offset: u64) -> Transcoder<R> {
        Transcoder {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            input: vec![0; BUFFER_LEN].into_boxed_slice(),
            input_pos: 0,
            input_len: 0,
            input_base: file_offset,
            input_done: false,
            output: vec![0; BUFFER_LEN].into_boxed_slice(),
            output_pos: 0,
            output_len: 0,
            output_base: 0,
            finished: false,
            newlines: 0,
            last_byte: None,
            log: MalformedLog::default(),
        }
    }

    /// The log of invalid sequences, to be claimed by rows.
    pub fn malformed_log(&self) -> MalformedLog {
        self.log.clone()
    }

    /// Once the whole input is decoded: the decoded text's length and whether it ends with a
    /// line feed.
    pub fn decoded_end(&self) -> Option<(u64, bool)> {
        self.finished.then(|| {
            (
                self.output_base + self.output_len as u64,
                self.last_byte == Some(b'\n'),
            )
        })
    }

    /// How many line breaks the reader has consumed: the line it is on, less one.
    pub fn newlines_consumed(&self) -> u64 {
        self.newlines
    }

    fn refill_input(&mut self) -> io::Result<()> {
        self.input_base += self.input_len as u64;
        self.input_pos = 0;
        self.input_len = 0;
        loop {
            match self.inner.read(&mut self.input) {
                Ok(0) => {
                    self.input_done = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.input_len = n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read> BufRead for Transcoder<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.output_pos == self.output_len && !self.finished {
            self.output_base += self.output_len as u64;
            self.output_pos = 0;
            self.output_len = 0;
            if self.input_pos == self.input_len && !self.input_done {
                self.refill_input()?;
            }
            let room = self.output.len() - REPLACEMENT_ROOM;
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.input_pos..self.input_len],
                &mut self.output[..room],
                self.input_done,
            );
            self.input_pos += read;
            self.output_len = written;
            match result {
                DecoderResult::InputEmpty => self.finished = self.input_done,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(bad_len, after_len) => {
                    let file_offset = self.input_base + self.input_pos as u64
                        - u64::from(after_len)
                        - u64::from(bad_len);
                    self.log.push(Malformed {
                        decoded_offset: self.output_base + self.output_len as u64,
                        file_offset,
                    });
                    let end = self.output_len + REPLACEMENT_ROOM;
                    self.output[self.output_len..end].copy_from_slice("\u{FFFD}".as_bytes());
                    self.output_len = end;
                }
            }
            if self.output_len > 0 {
                self.last_byte = Some(self.output[self.output_len - 1]);
            }
        }
        Ok(&self.output[self.output_pos..self.output_len])
    }

    fn consume(&mut self, amount: usize) {
        let end = (self.output_pos + amount).min(self.output_len);
        let consumed = &self.output[self.output_pos..end];
        self.newlines += consumed.iter().filter(|&&b| b == b'\n').count() as u64;
        self.output_pos = end;
    }
}

impl<R: Read> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Whether `encoding` is one of the UTF-16 forms (which only a byte order mark can announce
/// for a text whose markup is ASCII).
pub(crate) fn is_utf16(encoding: &'static Encoding) -> bool {
    encoding == UTF_16LE || encoding == UTF_16BE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], encoding: &'static Encoding) -> (String, Vec<Malformed>) {
        let mut transcoder = Transcoder::new(bytes, encoding, 0);
        let log = transcoder.malformed_log();
        let mut text = String::new();
        transcoder.read_to_string(&mut text).unwrap();
        let mut found = Vec::new();
        while let Some(m) = log.claim(0, u64::MAX) {
            found.push(m);
        }
        (text, found)
    }

    #[test]
    fn gbk_decodes_to_the_same_text_across_buffer_boundaries() {
        let text = "成果名称,第一完成单位\n".repeat(10_000);
        let (bytes, _, _) = encoding_rs::GBK.encode(&text);
        let (decoded, malformed) = decode_all(&bytes, encoding_rs::GBK);
        assert_eq!(decoded, text);
        assert!(malformed.is_empty());
    }

    #[test]
    fn an_invalid_sequence_is_replaced_and_logged_with_both_offsets() {
        let mut bytes = b"ab,".to_vec();
        bytes.push(0xFF);
        bytes.extend_from_slice(b"cd\n");
        let (decoded, malformed) = decode_all(&bytes, UTF_8);
        assert_eq!(decoded, "ab,\u{FFFD}cd\n");
        assert_eq!(
            malformed,
            vec![Malformed {
                decoded_offset: 3,
                file_offset: 3
            }]
        );
    }

    #[test]
    fn claim_returns_the_first_sequence_inside_the_row_and_drops_earlier_ones() {
        let log = MalformedLog::default();
        for (decoded_offset, file_offset) in [(1, 1), (10, 12), (12, 15), (30, 40)] {
            log.push(Malformed {
                decoded_offset,
                file_offset,
            });
        }
        assert_eq!(
            log.claim(5, 20),
            Some(Malformed {
                decoded_offset: 10,
                file_offset: 12
            })
        );
        assert_eq!(log.claim(20, 25), None);
        assert_eq!(
            log.claim(25, 35),
            Some(Malformed {
                decoded_offset: 30,
                file_offset: 40
            })
        );
    }

    #[test]
    fn chinese_text_without_a_mark_is_guessed_as_gbk() {
        let (bytes, _, _) = encoding_rs::GBK.encode(
            "成果名称,第一完成单位,关键词\n基于深度学习的水稻病害识别,云南农业大学,水稻；病害\n",
        );
        assert_eq!(guess_encoding(&bytes, true), encoding_rs::GBK);
        assert_eq!(guess_encoding("成果名称".as_bytes(), true), UTF_8);
    }
}
