//! The compact encodings of a chunk of one series' points, as stored in SQLite blobs.
//!
//! Version 1, for the head's segments (written at every commit, so fast to write):
//! `1 | n | t0 | d1 | dod2 .. dodn-1 | value block | dataset runs`, all integers LEB128
//! varints, signed ones zigzag-encoded. Timestamps are delta-of-delta coded, so a regular
//! cadence costs one byte per point. Values that are all short decimals (the usual case:
//! metrics are written as `0.912345` or `23.5`) are stored as delta-coded scaled integers
//! — two to three bytes for a typical metric — and anything else as raw IEEE-754 doubles.
//! The decimal form is used only when it reproduces every value bit for bit. Dataset tags
//! are run-length coded ids, 0 meaning none.
//!
//! Version 2, for sealed chunks (written once, read often, kept for years): the same
//! columns, timestamps and values each compressed by pcodec (`pco`), which finds the
//! cadence and the values' distribution and codes them near their entropy: a regular
//! cadence costs nearly nothing and a noisy 6-decimal metric under two bytes a point,
//! against about 3.2 for version 1 (issue 21). Layout: `2 | n | len | pco(timestamps) |
//! value kind [| exponent] | len | pco(values) | dataset runs`, where the values are the
//! scaled integers of the decimal form or the doubles themselves, bit for bit.
//! Readers take either version.

use crate::StoreError;

const VERSION: u8 = 1;
const VERSION_SEALED: u8 = 2;
const VALUES_RAW: u8 = 0;
const VALUES_DECIMAL: u8 = 1;
const MAX_DECIMAL_EXPONENT: u32 = 9;
/// pco's compression level for sealed chunks: on the peer benchmark's metrics (6-decimal
/// accuracies, 3-decimal latencies), level 2 comes within 4 % of the maximum (level 12)
/// at a twentieth of its compression time (~25 ns a point); decompression is as fast at
/// every level (~5 ns a point).
const SEALED_LEVEL: usize = 2;
/// More points than any chunk is written with: a corrupt length is refused before
/// anything is allocated for it.
const MAX_SEALED_POINTS: usize = 1 << 20;

/// Points of one chunk in columns: time-ordered, timestamps unique.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Columns {
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// Dataset id per point; 0 = no dataset.
    pub datasets: Vec<u32>,
}

impl Columns {
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn push(&mut self, timestamp: i64, value: f64, dataset: u32) {
        self.timestamps.push(timestamp);
        self.values.push(value);
        self.datasets.push(dataset);
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_ivarint(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, ((value << 1) ^ (value >> 63)) as u64);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, StoreError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| corrupt("chunk ends early"))?;
        self.at += 1;
        Ok(b)
    }

    fn uvarint(&mut self) -> Result<u64, StoreError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn ivarint(&mut self) -> Result<i64, StoreError> {
        let raw = self.uvarint()?;
        Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }

    fn f64(&mut self) -> Result<f64, StoreError> {
        let end = self.at + 8;
        let bytes = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| corrupt("chunk ends inside a value"))?;
        self.at = end;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        Ok(f64::from_le_bytes(raw))
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// The smallest exponent `e` such that every value is exactly `k / 10^e` for an integer `k`
/// of at most 53 bits, if there is one.
fn decimal_exponent(values: &[f64]) -> Option<u32> {
    let mut exponent = 0u32;
    'values: for &value in values {
        if value == 0.0 && value.is_sign_negative() {
            return None;
        }
        while exponent <= MAX_DECIMAL_EXPONENT {
            let scale = POW10[exponent as usize];
            let scaled = (value * scale).round();
            if scaled.abs() < 9.0e15 && scaled / scale == value {
                continue 'values;
            }
            exponent += 1;
        }
        return None;
    }
    Some(exponent)
}

pub fn encode(columns: &Columns) -> Vec<u8> {
    let n = columns.len();
    let mut out = Vec::with_capacity(8 + n * 4);
    out.push(VERSION);
    put_uvarint(&mut out, n as u64);
    let mut previous = 0i64;
    let mut previous_delta = 0i64;
    for (i, &t) in columns.timestamps.iter().enumerate() {
        match i {
            0 => put_ivarint(&mut out, t),
            1 => {
                previous_delta = t - previous;
                put_ivarint(&mut out, previous_delta);
            }
            _ => {
                let delta = t - previous;
                put_ivarint(&mut out, delta - previous_delta);
                previous_delta = delta;
            }
        }
        previous = t;
    }
    match decimal_exponent(&columns.values) {
        Some(exponent) => {
            out.push(VALUES_DECIMAL);
            out.push(exponent as u8);
            let scale = POW10[exponent as usize];
            let mut previous = 0i64;
            for &value in &columns.values {
                let scaled = (value * scale).round() as i64;
                put_ivarint(&mut out, scaled - previous);
                previous = scaled;
            }
        }
        None => {
            out.push(VALUES_RAW);
            for &value in &columns.values {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
    put_dataset_runs(&mut out, &columns.datasets);
    out
}

fn put_dataset_runs(out: &mut Vec<u8>, datasets: &[u32]) {
    let mut i = 0;
    while i < datasets.len() {
        let id = datasets[i];
        let run = datasets[i..].iter().take_while(|&&d| d == id).count();
        put_uvarint(out, run as u64);
        put_uvarint(out, u64::from(id));
        i += run;
    }
}

/// A sealed chunk's encoding (version 2).
pub fn encode_sealed(columns: &Columns) -> Vec<u8> {
    let n = columns.len();
    if n == 0 {
        return encode(columns);
    }
    let mut out = Vec::with_capacity(16 + n * 2);
    out.push(VERSION_SEALED);
    put_uvarint(&mut out, n as u64);
    put_pco(&mut out, &columns.timestamps);
    match decimal_exponent(&columns.values) {
        Some(exponent) => {
            out.push(VALUES_DECIMAL);
            out.push(exponent as u8);
            let scale = POW10[exponent as usize];
            let scaled: Vec<i64> = columns
                .values
                .iter()
                .map(|&value| (value * scale).round() as i64)
                .collect();
            put_pco(&mut out, &scaled);
        }
        None => {
            out.push(VALUES_RAW);
            put_pco(&mut out, &columns.values);
        }
    }
    put_dataset_runs(&mut out, &columns.datasets);
    out
}

fn put_pco<T: pco::data_types::Number>(out: &mut Vec<u8>, numbers: &[T]) {
    let config = pco::ChunkConfig::default().with_compression_level(SEALED_LEVEL);
    // pco refuses only an invalid configuration, and this one is a constant; the
    // fallback keeps the chunk readable (as an error) rather than panicking a writer.
    let compressed = pco::standalone::simple_compress(numbers, &config).unwrap_or_default();
    put_uvarint(out, compressed.len() as u64);
    out.extend_from_slice(&compressed);
}

impl Reader<'_> {
    /// A length-prefixed pco block of exactly `n` numbers.
    fn pco<T: pco::data_types::Number>(&mut self, n: usize) -> Result<Vec<T>, StoreError> {
        let len = usize::try_from(self.uvarint()?).map_err(|_| corrupt("pco block length"))?;
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| corrupt("chunk ends inside a pco block"))?;
        let block = &self.bytes[self.at..end];
        self.at = end;
        let mut numbers = vec![T::default(); n];
        let progress = pco::standalone::simple_decompress_into(block, &mut numbers)
            .map_err(|error| corrupt(format!("pco block: {error}")))?;
        if progress.n_processed != n || !progress.finished {
            return Err(corrupt("a pco block's length does not match the chunk's"));
        }
        Ok(numbers)
    }
}

/// Decodes a sealed chunk (version 2), appending to `into`.
fn decode_sealed(bytes: &[u8], into: &mut Columns) -> Result<(), StoreError> {
    let mut reader = Reader { bytes, at: 1 };
    let n = usize::try_from(reader.uvarint()?)
        .ok()
        .filter(|&n| n <= MAX_SEALED_POINTS)
        .ok_or_else(|| corrupt("chunk length"))?;
    let timestamps: Vec<i64> = reader.pco(n)?;
    let values: Vec<f64> = match reader.byte()? {
        VALUES_DECIMAL => {
            let scale = *POW10
                .get(usize::from(reader.byte()?))
                .ok_or_else(|| corrupt("decimal exponent"))?;
            let scaled: Vec<i64> = reader.pco(n)?;
            scaled.into_iter().map(|k| k as f64 / scale).collect()
        }
        VALUES_RAW => reader.pco(n)?,
        _ => return Err(corrupt("unknown value encoding")),
    };
    let start = into.datasets.len();
    while into.datasets.len() - start < n {
        let run = usize::try_from(reader.uvarint()?).map_err(|_| corrupt("dataset run"))?;
        let dataset = u32::try_from(reader.uvarint()?).map_err(|_| corrupt("dataset id"))?;
        if run == 0 || run > n - (into.datasets.len() - start) {
            into.datasets.truncate(start);
            return Err(corrupt("dataset runs do not match the chunk length"));
        }
        into.datasets.extend(std::iter::repeat_n(dataset, run));
    }
    into.timestamps.extend(timestamps);
    into.values.extend(values);
    Ok(())
}

/// Decodes a chunk, appending to `into`.
pub fn decode_into(bytes: &[u8], into: &mut Columns) -> Result<(), StoreError> {
    if bytes.first() == Some(&VERSION_SEALED) {
        return decode_sealed(bytes, into);
    }
    let n = point_count(bytes)?;
    into.timestamps.reserve(n);
    into.values.reserve(n);
    into.datasets.reserve(n);
    for_each_point(bytes, |timestamp, value, dataset| {
        into.push(timestamp, value, dataset);
        Ok(())
    })
}

/// How many points a chunk holds.
fn point_count(bytes: &[u8]) -> Result<usize, StoreError> {
    let mut reader = Reader { bytes, at: 0 };
    if reader.byte()? != VERSION {
        return Err(corrupt("unknown chunk version"));
    }
    let n = usize::try_from(reader.uvarint()?).map_err(|_| corrupt("chunk length"))?;
    if n > bytes.len() * 8 {
        return Err(corrupt("chunk length exceeds its size"));
    }
    Ok(n)
}

/// Decodes a chunk a point at a time, holding none of it: `visit` gets each point's
/// timestamp, value and dataset id, in order, and may stop the decoding with an error.
/// The three blocks (times, values, dataset runs) are read side by side, so the value
/// and run blocks are first found by skipping over the blocks before them.
pub fn for_each_point(
    bytes: &[u8],
    mut visit: impl FnMut(i64, f64, u32) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if bytes.first() == Some(&VERSION_SEALED) {
        // pco decodes a block whole; a sealed chunk is at most a few thousand points.
        let mut columns = Columns::default();
        decode_sealed(bytes, &mut columns)?;
        for i in 0..columns.len() {
            visit(
                columns.timestamps[i],
                columns.values[i],
                columns.datasets[i],
            )?;
        }
        return Ok(());
    }
    let n = point_count(bytes)?;
    let mut header = Reader { bytes, at: 1 };
    header.uvarint()?;
    let mut times = Reader {
        bytes,
        at: header.at,
    };
    let mut skip = Reader {
        bytes,
        at: header.at,
    };
    for _ in 0..n {
        skip.uvarint()?;
    }
    let scale = match skip.byte()? {
        VALUES_DECIMAL => Some(
            *POW10
                .get(usize::from(skip.byte()?))
                .ok_or_else(|| corrupt("decimal exponent"))?,
        ),
        VALUES_RAW => None,
        _ => return Err(corrupt("unknown value encoding")),
    };
    let mut values = Reader { bytes, at: skip.at };
    match scale {
        Some(_) => {
            for _ in 0..n {
                skip.uvarint()?;
            }
        }
        None => {
            skip.at = n
                .checked_mul(8)
                .and_then(|len| skip.at.checked_add(len))
                .filter(|&end| end <= bytes.len())
                .ok_or_else(|| corrupt("chunk ends inside a value"))?;
        }
    }
    let mut runs = Reader { bytes, at: skip.at };
    let (mut previous, mut delta, mut scaled) = (0i64, 0i64, 0i64);
    let (mut run_left, mut dataset) = (0usize, 0u32);
    for i in 0..n {
        let timestamp = match i {
            0 => times.ivarint()?,
            1 => {
                delta = times.ivarint()?;
                previous.wrapping_add(delta)
            }
            _ => {
                delta = delta.wrapping_add(times.ivarint()?);
                previous.wrapping_add(delta)
            }
        };
        previous = timestamp;
        let value = match scale {
            Some(scale) => {
                scaled = scaled.wrapping_add(values.ivarint()?);
                scaled as f64 / scale
            }
            None => values.f64()?,
        };
        if run_left == 0 {
            let run = usize::try_from(runs.uvarint()?).map_err(|_| corrupt("dataset run"))?;
            dataset = u32::try_from(runs.uvarint()?).map_err(|_| corrupt("dataset id"))?;
            if run == 0 || run > n - i {
                return Err(corrupt("dataset runs do not match the chunk length"));
            }
            run_left = run;
        }
        run_left -= 1;
        visit(timestamp, value, dataset)?;
    }
    Ok(())
}

/// Sorts points gathered in write order by time; for equal times the later one wins.
pub fn sort_keeping_last(columns: Columns) -> Columns {
    if columns.timestamps.windows(2).all(|w| w[0] < w[1]) {
        return columns;
    }
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by_key(|&i| columns.timestamps[i]);
    let mut sorted = Columns::default();
    for (position, &i) in order.iter().enumerate() {
        let superseded = order
            .get(position + 1)
            .is_some_and(|&j| columns.timestamps[j] == columns.timestamps[i]);
        if !superseded {
            sorted.push(
                columns.timestamps[i],
                columns.values[i],
                columns.datasets[i],
            );
        }
    }
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both encodings decode to the columns, bit for bit, whole and a point at a time;
    /// the head's (version 1) bytes are returned.
    fn round_trip(columns: &Columns) -> Vec<u8> {
        round_trip_sealed(columns);
        check(columns, encode(columns))
    }

    /// The sealed encoding (version 2) round trip; its bytes are returned.
    fn round_trip_sealed(columns: &Columns) -> Vec<u8> {
        check(columns, encode_sealed(columns))
    }

    fn check(columns: &Columns, bytes: Vec<u8>) -> Vec<u8> {
        let mut decoded = Columns {
            timestamps: vec![7],
            values: vec![7.0],
            datasets: vec![7],
        };
        decode_into(&bytes, &mut decoded).unwrap();
        assert_eq!(decoded.timestamps[1..], columns.timestamps[..]);
        assert_eq!(decoded.datasets[1..], columns.datasets[..]);
        assert_eq!(decoded.values.len(), columns.len() + 1);
        for (a, b) in decoded.values[1..].iter().zip(&columns.values) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        let mut visited = Columns::default();
        for_each_point(&bytes, |t, value, dataset| {
            visited.push(t, value, dataset);
            Ok(())
        })
        .unwrap();
        assert_eq!(visited.timestamps, columns.timestamps);
        assert_eq!(visited.datasets, columns.datasets);
        bytes
    }

    /// The peer benchmark's kind of metric: a 6-decimal accuracy with noise of sd 0.004
    /// around a slow drift, one point a minute.
    fn noisy_accuracy(n: i64) -> Columns {
        let mut columns = Columns::default();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..n {
            // A sum of uniforms: close enough to normal noise for a size test.
            let mut noise = 0.0;
            for _ in 0..12 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                noise += (state >> 11) as f64 / (1u64 << 53) as f64;
            }
            let value = 0.9 + 0.005 * (i as f64 / 2000.0).sin() + 0.004 * (noise - 6.0);
            let value: f64 = format!("{value:.6}").parse().unwrap();
            columns.push(1_704_110_400_000 + i * 60_000, value, 0);
        }
        columns
    }

    #[test]
    fn sealed_chunks_of_a_noisy_metric_take_under_two_bytes_a_point() {
        let columns = noisy_accuracy(4096);
        let head = round_trip(&columns).len() as f64 / 4096.0;
        let sealed = round_trip_sealed(&columns).len() as f64 / 4096.0;
        assert!(sealed < 2.0, "{sealed} bytes a point sealed");
        assert!(head > 2.8, "{head} bytes a point in the head");
    }

    #[test]
    fn a_constant_regular_series_seals_to_almost_nothing() {
        let mut columns = Columns::default();
        for i in 0..4096 {
            columns.push(1_704_110_400_000 + i * 60_000, 0.5, 2);
        }
        let bytes = round_trip_sealed(&columns);
        assert!(bytes.len() < 100, "{} bytes", bytes.len());
    }

    #[test]
    fn corrupt_sealed_chunks_are_reported_not_panicked() {
        let columns = noisy_accuracy(300);
        let mut raw = columns.clone();
        raw.push(1_800_000_000_000, f64::from_bits(0x7ff8_dead_beef_0001), 3);
        for bytes in [encode_sealed(&columns), encode_sealed(&raw)] {
            for cut in 0..bytes.len() {
                assert!(decode_into(&bytes[..cut], &mut Columns::default()).is_err());
                assert!(for_each_point(&bytes[..cut], |_, _, _| Ok(())).is_err());
            }
            // A length that lies.
            let mut lying = bytes.clone();
            lying[1] ^= 0x01;
            assert!(decode_into(&lying, &mut Columns::default()).is_err());
            // Bytes flipped anywhere: an error or other points, never a panic.
            for at in (2..bytes.len()).step_by(7) {
                let mut flipped = bytes.clone();
                flipped[at] ^= 0x5a;
                let _ = decode_into(&flipped, &mut Columns::default());
            }
        }
    }

    #[test]
    fn regular_decimal_series_is_small_and_exact() {
        let mut columns = Columns::default();
        for i in 0..1000 {
            let value: f64 = format!("{:.6}", 0.9 + ((i * 7919) % 100) as f64 / 10_000.0)
                .parse()
                .unwrap();
            columns.push(1_704_110_400_000 + i * 60_000, value, 0);
        }
        let bytes = round_trip(&columns);
        assert!(bytes.len() < 4 * 1000, "{} bytes", bytes.len());
    }

    #[test]
    fn arbitrary_doubles_fall_back_to_raw_and_stay_exact() {
        let mut columns = Columns::default();
        for (i, value) in [
            std::f64::consts::PI,
            -0.0,
            0.0,
            1e300,
            -1e-300,
            5e-324,
            0.1 + 0.2,
            f64::INFINITY,
            f64::from_bits(0x7ff8_dead_beef_0001),
            f64::MAX,
            f64::MIN_POSITIVE,
        ]
        .into_iter()
        .enumerate()
        {
            columns.push(i as i64 * 17 - 3, value, (i % 2) as u32);
        }
        round_trip(&columns);
    }

    #[test]
    fn irregular_times_and_dataset_runs_round_trip() {
        let mut columns = Columns::default();
        for (t, d) in [(0, 0), (5, 0), (6, 3), (1_000_000, 3), (1_000_001, 1)] {
            columns.push(t, 12.5, d);
        }
        round_trip(&columns);
        round_trip(&Columns::default());
    }

    #[test]
    fn truncated_chunk_is_reported_not_panicked() {
        let mut columns = Columns::default();
        columns.push(1, 0.5, 0);
        columns.push(2, 0.25, 0);
        let mut raw = columns.clone();
        raw.push(3, std::f64::consts::PI, 2);
        for bytes in [encode(&columns), encode(&raw)] {
            for cut in 0..bytes.len() {
                assert!(decode_into(&bytes[..cut], &mut Columns::default()).is_err());
                assert!(for_each_point(&bytes[..cut], |_, _, _| Ok(())).is_err());
            }
        }
    }
}
