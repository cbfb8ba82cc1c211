//! How many rows an import will read, when a fast look can tell: the lines of CSV, TSV and
//! JSON Lines files, counted by a byte scan (about the speed of reading the file), so that the
//! progress bar can show an ETA. A row's position is its first line (as the sources number
//! rows), so the line count is exactly where the bar ends.
//!
//! Workbooks and XML are not counted (that would be reading them twice): the bar is then a
//! spinner with counts.
//!
//! What it may not touch: the files' content beyond counting line ends.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rix_adapters::source::Format;

/// The lines of every input, or `None` if any input's cannot be counted cheaply.
pub(super) fn total_rows(inputs: &[std::path::PathBuf]) -> Option<u64> {
    let mut total = 0;
    for path in inputs {
        total += lines(path)?;
    }
    Some(total)
}

/// The lines of a text input (a last line without a line end counts).
pub(super) fn lines(path: &Path) -> Option<u64> {
    match Format::from_path(path)? {
        Format::Csv | Format::Tsv | Format::JsonLines => {}
        _ => return None,
    }
    let mut file = File::open(path).ok()?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut count = 0u64;
    let mut last = b'\n';
    let mut utf16: Option<bool> = None;
    loop {
        let n = file.read(&mut buffer).ok()?;
        if n == 0 {
            break;
        }
        let bytes = &buffer[..n];
        if utf16.is_none() {
            utf16 = Some(match bytes {
                [0xFF, 0xFE, ..] => true,
                [0xFE, 0xFF, ..] => {
                    // Big-endian: count with the bytes swapped.
                    return count_utf16(path, false);
                }
                _ => false,
            });
        }
        if utf16 == Some(true) {
            return count_utf16(path, true);
        }
        count += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        last = bytes[n - 1];
    }
    if last != b'\n' {
        count += 1;
    }
    Some(count)
}

/// Lines of a UTF-16 file: code units equal to U+000A (a byte scan would also count the
/// 0x0A bytes of characters such as 上, U+4E0A).
fn count_utf16(path: &Path, little_endian: bool) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let units = bytes.chunks_exact(2).map(|p| {
        if little_endian {
            u16::from_le_bytes([p[0], p[1]])
        } else {
            u16::from_be_bytes([p[0], p[1]])
        }
    });
    let mut count = 0;
    let mut last = 0x0A;
    for u in units {
        if u == 0x0A {
            count += 1;
        }
        last = u;
    }
    if last != 0x0A {
        count += 1;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_in_utf8_gbk_and_utf16() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("a.csv");
        std::fs::write(&csv, "标题,上\r\n1,2\r\n3,4").unwrap();
        assert_eq!(lines(&csv), Some(3));
        let gbk = dir.path().join("b.csv");
        let (bytes, _, _) = encoding_rs::GBK.encode("名称,上级\n甲,乙\n");
        std::fs::write(&gbk, &bytes).unwrap();
        assert_eq!(lines(&gbk), Some(2));
        let utf16 = dir.path().join("c.tsv");
        let mut bytes = vec![0xFF, 0xFE];
        for u in "上\t下\n上\t下\n".encode_utf16() {
            bytes.extend(u.to_le_bytes());
        }
        std::fs::write(&utf16, &bytes).unwrap();
        assert_eq!(lines(&utf16), Some(2));
        assert_eq!(lines(&dir.path().join("d.xlsx")), None);
    }
}
