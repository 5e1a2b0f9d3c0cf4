//! The compact encoding of a chunk of one series' points, as stored in SQLite blobs.
//!
//! Layout (all integers are LEB128 varints, signed ones zigzag-encoded):
//! `version=1 | n | t0 | d1 | dod2 .. dodn-1 | value block | dataset runs`.
//! Timestamps are delta-of-delta coded, so a regular cadence costs one byte per point.
//! Values that are all short decimals (the usual case: metrics are written as `0.912345`
//! or `23.5`) are stored as delta-coded scaled integers — two to three bytes for a
//! typical metric — and anything else as raw IEEE-754 doubles. The decimal form is used
//! only when it reproduces every value bit for bit. Dataset tags are run-length coded
//! ids, 0 meaning none.

use crate::StoreError;

const VERSION: u8 = 1;
const VALUES_RAW: u8 = 0;
const VALUES_DECIMAL: u8 = 1;
const MAX_DECIMAL_EXPONENT: u32 = 9;

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

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
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
    let mut i = 0;
    while i < n {
        let id = columns.datasets[i];
        let run = columns.datasets[i..]
            .iter()
            .take_while(|&&d| d == id)
            .count();
        put_uvarint(&mut out, run as u64);
        put_uvarint(&mut out, u64::from(id));
        i += run;
    }
    out
}

/// Decodes a chunk, appending to `into`.
pub fn decode_into(bytes: &[u8], into: &mut Columns) -> Result<(), StoreError> {
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

    fn round_trip(columns: &Columns) -> Vec<u8> {
        let bytes = encode(columns);
        let mut decoded = Columns::default();
        decode_into(&bytes, &mut decoded).unwrap();
        assert_eq!(decoded.timestamps, columns.timestamps);
        assert_eq!(decoded.datasets, columns.datasets);
        for (a, b) in decoded.values.iter().zip(&columns.values) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        bytes
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
        for (i, value) in [std::f64::consts::PI, -0.0, 1e300, 5e-324, 0.1 + 0.2]
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
