//! The head: recent batches, one row each, before compaction sorts them into per-series
//! chunks.
//!
//! Writing a batch of many series as one chunk row per series touches one index page per
//! series; at a thousand series per batch that is megabytes of WAL for kilobytes of data.
//! So a batch is written as a single head row instead: a directory sorted by series id,
//! then one encoded segment (codec.rs) per series. Readers find a series in a head row by
//! binary search over the directory with incremental blob I/O, reading only the bytes of
//! that series. The writer compacts the head into per-series chunks every few batches.
//!
//! Layout: `version=1 | entries: u32 LE | entries × (series_id i64, offset u32, length u32,
//! min_ms i64, max_ms i64) LE | segments`.

use std::io::{Read, Seek, SeekFrom};

use rusqlite::blob::Blob;
use rusqlite::{Connection, DatabaseName};

use crate::codec::{self, Columns};
use crate::StoreError;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 5;
const ENTRY_LEN: usize = 32;

/// A series' place in a head row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub series_id: i64,
    pub offset: u32,
    pub length: u32,
    pub min_ms: i64,
    pub max_ms: i64,
}

impl Entry {
    fn parse(bytes: &[u8]) -> Entry {
        let i64_at = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[at..at + 8]);
            i64::from_le_bytes(raw)
        };
        let u32_at = |at: usize| {
            let mut raw = [0u8; 4];
            raw.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(raw)
        };
        Entry {
            series_id: i64_at(0),
            offset: u32_at(8),
            length: u32_at(12),
            min_ms: i64_at(16),
            max_ms: i64_at(24),
        }
    }
}

/// Builds a head row from per-series columns (each time-ordered, timestamps unique).
pub fn encode(mut series: Vec<(i64, Columns)>) -> Vec<u8> {
    series.retain(|(_, columns)| columns.len() > 0);
    series.sort_by_key(|(id, _)| *id);
    let directory_len = HEADER_LEN + series.len() * ENTRY_LEN;
    let mut row =
        Vec::with_capacity(directory_len + series.iter().map(|(_, c)| c.len() * 4).sum::<usize>());
    row.push(VERSION);
    row.extend_from_slice(&(series.len() as u32).to_le_bytes());
    row.resize(directory_len, 0);
    for (index, (series_id, columns)) in series.iter().enumerate() {
        let offset = row.len();
        row.extend_from_slice(&codec::encode(columns));
        let length = row.len() - offset;
        let (first, last) = (columns.timestamps[0], columns.timestamps[columns.len() - 1]);
        let entry_at = HEADER_LEN + index * ENTRY_LEN;
        let entry = &mut row[entry_at..entry_at + ENTRY_LEN];
        entry[0..8].copy_from_slice(&series_id.to_le_bytes());
        entry[8..12].copy_from_slice(&(offset as u32).to_le_bytes());
        entry[12..16].copy_from_slice(&(length as u32).to_le_bytes());
        entry[16..24].copy_from_slice(&first.to_le_bytes());
        entry[24..32].copy_from_slice(&last.to_le_bytes());
    }
    row
}

/// Every entry of a whole head row held in memory.
pub fn entries(bytes: &[u8]) -> Result<Vec<Entry>, StoreError> {
    let count = entry_count(
        bytes
            .get(..HEADER_LEN)
            .ok_or_else(|| corrupt("head row too short"))?,
    )?;
    let end = HEADER_LEN + count * ENTRY_LEN;
    let directory = bytes
        .get(HEADER_LEN..end)
        .ok_or_else(|| corrupt("head directory truncated"))?;
    Ok(directory.chunks(ENTRY_LEN).map(Entry::parse).collect())
}

/// Decodes one entry's segment of a whole head row.
pub fn decode_entry(bytes: &[u8], entry: &Entry, into: &mut Columns) -> Result<(), StoreError> {
    let start = entry.offset as usize;
    let segment = bytes
        .get(start..start + entry.length as usize)
        .ok_or_else(|| corrupt("head segment out of bounds"))?;
    codec::decode_into(segment, into)
}

fn entry_count(header: &[u8]) -> Result<usize, StoreError> {
    if header.len() < HEADER_LEN || header[0] != VERSION {
        return Err(corrupt("unknown head row version"));
    }
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&header[1..HEADER_LEN]);
    Ok(u32::from_le_bytes(raw) as usize)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// Finds a series in the head row `row_id` and decodes its points into `into`, reading
/// only the directory probes and the segment. Returns the entry when the series is there.
pub fn read_series(
    connection: &Connection,
    row_id: i64,
    series_id: i64,
    into: &mut Columns,
) -> Result<Option<Entry>, StoreError> {
    let mut blob = connection.blob_open(DatabaseName::Main, "head", "data", row_id, true)?;
    let Some(entry) = find_in(&blob, series_id)? else {
        return Ok(None);
    };
    codec::decode_into(&segment_of(&mut blob, &entry)?, into)?;
    Ok(Some(entry))
}

/// A series' entry in the head row `row_id`.
pub fn find(
    connection: &Connection,
    row_id: i64,
    series_id: i64,
) -> Result<Option<Entry>, StoreError> {
    find_in(
        &connection.blob_open(DatabaseName::Main, "head", "data", row_id, true)?,
        series_id,
    )
}

/// Binary search over a head row's directory with incremental blob I/O.
fn find_in(blob: &Blob<'_>, series_id: i64) -> Result<Option<Entry>, StoreError> {
    let mut header = [0u8; HEADER_LEN];
    blob.read_at_exact(&mut header, 0)?;
    let count = entry_count(&header)?;
    let (mut low, mut high) = (0usize, count);
    let mut raw = [0u8; ENTRY_LEN];
    while low < high {
        let middle = (low + high) / 2;
        blob.read_at_exact(&mut raw, HEADER_LEN + middle * ENTRY_LEN)?;
        let entry = Entry::parse(&raw);
        match entry.series_id.cmp(&series_id) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => return Ok(Some(entry)),
        }
    }
    Ok(None)
}

/// The encoded segment of `entry` in the head row `row_id`.
pub fn segment(connection: &Connection, row_id: i64, entry: &Entry) -> Result<Vec<u8>, StoreError> {
    segment_of(
        &mut connection.blob_open(DatabaseName::Main, "head", "data", row_id, true)?,
        entry,
    )
}

fn segment_of(blob: &mut Blob<'_>, entry: &Entry) -> Result<Vec<u8>, StoreError> {
    // Not into `vec![0; length]`: that is calloc, and jemalloc zeroes a reused large block
    // by giving its pages back to the kernel (MADV_DONTNEED), so every read of a long
    // segment faulted all its pages in again (145 page faults, about 0.5 ms, per
    // bench/http downsample; issue 15). `read_to_end` fills a plain allocation instead.
    let length = entry.length as usize;
    let mut segment = Vec::with_capacity(length);
    blob.seek(SeekFrom::Start(u64::from(entry.offset)))
        .and_then(|_| blob.take(u64::from(entry.length)).read_to_end(&mut segment))
        .map_err(|e| StoreError::Database(e.to_string()))?;
    if segment.len() != length {
        return Err(StoreError::Corrupt(format!(
            "head segment of series {} ends early",
            entry.series_id
        )));
    }
    Ok(segment)
}

/// Reads a whole head row (compaction, listings).
pub fn read_all(connection: &Connection, row_id: i64) -> Result<Vec<u8>, StoreError> {
    let mut blob = connection.blob_open(DatabaseName::Main, "head", "data", row_id, true)?;
    let mut bytes = Vec::with_capacity(blob.len());
    blob.read_to_end(&mut bytes)
        .map_err(|e| StoreError::Database(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(points: &[(i64, f64)]) -> Columns {
        let mut c = Columns::default();
        for &(t, v) in points {
            c.push(t, v, 0);
        }
        c
    }

    #[test]
    fn every_series_is_found_and_decoded() {
        let row = encode(vec![
            (7, columns(&[(1, 0.5), (2, 0.25)])),
            (3, columns(&[(5, 1.0)])),
            (9, Columns::default()),
            (11, columns(&[(0, 2.0)])),
        ]);
        let found = entries(&row).unwrap();
        assert_eq!(
            found.iter().map(|e| e.series_id).collect::<Vec<_>>(),
            [3, 7, 11]
        );
        let mut out = Columns::default();
        decode_entry(&row, &found[1], &mut out).unwrap();
        assert_eq!(out.values, [0.5, 0.25]);
        assert_eq!((found[1].min_ms, found[1].max_ms), (1, 2));

        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE head (id INTEGER PRIMARY KEY, data BLOB)")
            .unwrap();
        connection
            .execute("INSERT INTO head (id, data) VALUES (1, ?1)", [&row])
            .unwrap();
        for (series, expected) in [
            (3, Some(vec![1.0])),
            (7, Some(vec![0.5, 0.25])),
            (11, Some(vec![2.0])),
            (5, None),
        ] {
            let mut out = Columns::default();
            let entry = read_series(&connection, 1, series, &mut out).unwrap();
            assert_eq!(entry.map(|_| out.values), expected, "series {series}");
        }
        assert_eq!(read_all(&connection, 1).unwrap(), row);
    }

    /// A whole long segment (a 30-day per-minute series, one ingested batch: the
    /// downsample bench/http measures) comes back byte for byte from the blob, between
    /// short ones; an entry that runs past the blob's end is corruption, not a short read.
    #[test]
    fn a_whole_long_segment_is_read_exactly_and_a_short_blob_is_corrupt() {
        let long: Vec<(i64, f64)> = (0..43_200)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 60_000,
                    40.0 + (i % 1440) as f64 / 100.0,
                )
            })
            .collect();
        let row = encode(vec![
            (1, columns(&[(1, 0.5)])),
            (2, columns(&long)),
            (3, columns(&[(2, 0.75)])),
        ]);
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE head (id INTEGER PRIMARY KEY, data BLOB)")
            .unwrap();
        connection
            .execute("INSERT INTO head (id, data) VALUES (1, ?1)", [&row])
            .unwrap();
        let found = entries(&row).unwrap();
        assert!(found[1].length > 100_000, "{:?}", found[1]);
        for entry in &found {
            let (start, end) = (
                entry.offset as usize,
                (entry.offset + entry.length) as usize,
            );
            assert_eq!(segment(&connection, 1, entry).unwrap(), row[start..end]);
        }
        let mut out = Columns::default();
        read_series(&connection, 1, 2, &mut out).unwrap();
        assert_eq!(out.len(), long.len());
        assert_eq!(out.values.last(), long.last().map(|(_, v)| v));

        let past_the_end = Entry {
            length: found[2].length + 1,
            ..found[2]
        };
        assert!(matches!(
            segment(&connection, 1, &past_the_end),
            Err(StoreError::Corrupt(_))
        ));
    }
}
