//! The recording file: `GILSCOPE`, a little-endian `u32` format version, then records, each a
//! little-endian `u32` length and a postcard-encoded [`Record`].
//!
//! Written as it is sampled and flushed after every sample, so it can be read while it grows:
//! a torn last record is the end of the file, not an error.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::analysis::{Aggregator, Analysis};
use crate::error::Error;
use crate::model::Record;
use crate::sampler::RecordSink;

const MAGIC: &[u8; 8] = b"GILSCOPE";
/// 2: thread samples no longer carry the stat state letter (it was never used).
/// 3: descendant processes (`--subprocesses`); a format-2 file reads as a format-3 one.
/// 4: a free-threaded build's GIL turned on, and CPython 3.15's own GIL flags; older files
/// read as format-4 ones.
/// 5: the source text of each frame's line; older files read as format-5 ones without it.
pub const FORMAT_VERSION: u32 = 5;
/// The oldest format this version reads: later formats only appended record variants.
pub const OLDEST_READABLE_FORMAT: u32 = 2;
/// No record is larger: a bigger length prefix means a corrupt file, not a reason to allocate.
const MAX_RECORD_BYTES: usize = 16 << 20;

/// Streams records into a file.
pub struct RecordingWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl RecordingWriter<BufWriter<File>> {
    pub fn create(path: &Path) -> Result<Self, Error> {
        let file = File::create(path).map_err(|source| Error::Output {
            path: path.to_path_buf(),
            source,
        })?;
        RecordingWriter::new(BufWriter::new(file)).map_err(|source| Error::Output {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl<W: Write> RecordingWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        Ok(RecordingWriter {
            out,
            buf: Vec::new(),
        })
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> RecordSink for RecordingWriter<W> {
    fn record(&mut self, record: &Record) -> io::Result<()> {
        self.buf.clear();
        let bytes = postcard::to_extend(record, std::mem::take(&mut self.buf))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.out.write_all(&(bytes.len() as u32).to_le_bytes())?;
        self.out.write_all(&bytes)?;
        self.buf = bytes;
        if matches!(record, Record::Sample(_) | Record::End { .. }) {
            self.out.flush()?;
        }
        Ok(())
    }
}

/// Replays a recording into an analysis.
pub fn replay(path: &Path) -> Result<Analysis, Error> {
    let mut reader = RecordingReader::open(path)?;
    let mut aggregator = Aggregator::new();
    loop {
        match reader.next_record() {
            Ok(Some(record)) => aggregator.push(&record),
            Ok(None) => break,
            Err(e) => {
                return Err(Error::Recording {
                    path: PathBuf::from(path),
                    detail: e.to_string(),
                })
            }
        }
    }
    if reader.truncated {
        eprintln!("gilscope: note: {} ends inside a record (still being written, or cut); reporting what it holds", path.display());
    }
    Ok(aggregator.finish())
}

/// Whether `path` starts like a recording (as opposed to, say, a JSON report).
pub fn is_recording(path: &Path) -> io::Result<bool> {
    let mut magic = [0u8; 8];
    let n = read_up_to(&mut File::open(path)?, &mut magic)?;
    Ok(n == magic.len() && &magic == MAGIC)
}

/// Why a recording cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordingError {
    #[error("the file is empty")]
    Empty,
    #[error("not a gilscope recording (bad magic)")]
    BadMagic,
    #[error("recorded by a newer gilscope (format {0}, this one reads up to {FORMAT_VERSION})")]
    NewerFormat(u32),
    #[error("recorded by an older gilscope (format {0}, this one reads {OLDEST_READABLE_FORMAT} to {FORMAT_VERSION})")]
    OlderFormat(u32),
    #[error("corrupt record at byte {0}")]
    Corrupt(u64),
    #[error(
        "corrupt record at byte {offset}: a time {seconds} s into the run, longer than any run"
    )]
    ImplausibleTime { offset: u64, seconds: u64 },
    #[error("{0}")]
    Io(String),
}

/// Reads records back, one at a time.
pub struct RecordingReader<R: Read> {
    input: R,
    offset: u64,
    buf: Vec<u8>,
    /// Set when the file ended inside a record (a recording still being written, or cut).
    pub truncated: bool,
}

impl RecordingReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, Error> {
        let to_error = |detail: String| Error::Recording {
            path: PathBuf::from(path),
            detail,
        };
        let file = File::open(path).map_err(|e| to_error(e.to_string()))?;
        RecordingReader::new(BufReader::new(file)).map_err(|e| to_error(e.to_string()))
    }
}

impl<R: Read> RecordingReader<R> {
    pub fn new(mut input: R) -> Result<Self, RecordingError> {
        let mut header = [0u8; 12];
        let n =
            read_up_to(&mut input, &mut header).map_err(|e| RecordingError::Io(e.to_string()))?;
        if n == 0 {
            return Err(RecordingError::Empty);
        }
        if n < 12 || &header[..8] != MAGIC {
            return Err(RecordingError::BadMagic);
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version > FORMAT_VERSION {
            return Err(RecordingError::NewerFormat(version));
        }
        if version < OLDEST_READABLE_FORMAT {
            return Err(RecordingError::OlderFormat(version));
        }
        Ok(RecordingReader {
            input,
            offset: 12,
            buf: Vec::new(),
            truncated: false,
        })
    }

    /// The next record, or `None` at the end (check [`Self::truncated`]).
    pub fn next_record(&mut self) -> Result<Option<Record>, RecordingError> {
        let io_err = |e: io::Error| RecordingError::Io(e.to_string());
        let mut len = [0u8; 4];
        let n = read_up_to(&mut self.input, &mut len).map_err(io_err)?;
        if n == 0 {
            return Ok(None);
        }
        if n < 4 {
            self.truncated = true;
            return Ok(None);
        }
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 || len > MAX_RECORD_BYTES {
            return Err(RecordingError::Corrupt(self.offset));
        }
        self.buf.resize(len, 0);
        let n = read_up_to(&mut self.input, &mut self.buf).map_err(io_err)?;
        if n < len {
            self.truncated = true;
            return Ok(None);
        }
        let record: Record =
            postcard::from_bytes(&self.buf).map_err(|_| RecordingError::Corrupt(self.offset))?;
        if let Some(t_ns) = record_time(&record).filter(|&t| t > MAX_RECORDED_T_NS) {
            return Err(RecordingError::ImplausibleTime {
                offset: self.offset,
                seconds: t_ns / 1_000_000_000,
            });
        }
        self.offset += 4 + len as u64;
        Ok(Some(record))
    }
}

/// No run is longer: a later timestamp comes from a corrupt file.
pub const MAX_RECORDED_T_NS: u64 = 366 * 24 * 3600 * 1_000_000_000;

/// When a record happened on the run's clock, for the records that say.
fn record_time(record: &Record) -> Option<u64> {
    match record {
        Record::Sample(sample) | Record::ProcessSample { sample, .. } => Some(sample.t_ns),
        Record::ProcessEnd { t_ns, .. } | Record::GilEnabled { t_ns, .. } => Some(*t_ns),
        Record::Process(info) => Some(info.t_ns),
        _ => None,
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Ending, Frame, Sample, Syscall, ThreadSample, Tid};

    fn records() -> Vec<Record> {
        vec![
            Record::Frame {
                id: 0,
                frame: Frame {
                    function: "work".into(),
                    file: "app.py".into(),
                    line: 3,
                },
            },
            Record::Sample(Sample {
                t_ns: 10_000_000,
                process_cpu_ns: Some(5),
                gil: None,
                threads: vec![ThreadSample {
                    tid: Tid(7),
                    syscall: Some(Syscall::Blocked {
                        nr: 202,
                        args: [1, 2, 3],
                    }),
                    cpu_ns: Some(9),
                    stack: Some(0),
                    python: true,
                }],
            }),
            Record::End {
                ending: Ending::Exited(0),
                duration_s: 0.01,
            },
        ]
    }

    fn write(records: &[Record]) -> Vec<u8> {
        let mut w = RecordingWriter::new(Vec::new()).unwrap();
        for r in records {
            w.record(r).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<(Vec<Record>, bool), RecordingError> {
        let mut r = RecordingReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok((out, r.truncated))
    }

    #[test]
    fn round_trip() {
        let bytes = write(&records());
        assert_eq!(read_all(&bytes).unwrap(), (records(), false));
    }

    #[test]
    fn every_truncation_reads_a_prefix() {
        let bytes = write(&records());
        for cut in 12..bytes.len() {
            let (got, _) = read_all(&bytes[..cut]).unwrap();
            assert!(got.len() < records().len());
            assert_eq!(got[..], records()[..got.len()]);
        }
    }

    #[test]
    fn bad_files() {
        assert_eq!(read_all(b"").err(), Some(RecordingError::Empty));
        assert_eq!(
            read_all(b"NOTGILSCOPE!").err(),
            Some(RecordingError::BadMagic)
        );
        let mut newer = write(&records());
        newer[8] = 99;
        assert_eq!(
            read_all(&newer).err(),
            Some(RecordingError::NewerFormat(99))
        );
        let mut huge = write(&[]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read_all(&huge).err(), Some(RecordingError::Corrupt(12)));
        let mut garbage = write(&[]);
        garbage.extend_from_slice(&3u32.to_le_bytes());
        garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert_eq!(read_all(&garbage).err(), Some(RecordingError::Corrupt(12)));
    }
}
