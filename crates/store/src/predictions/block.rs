//! A block of raw predictions stored as columns: the predictions of one series that one
//! window received, in arrival order, encoded as one value.
//!
//! Layout: a format byte, the count (varint), the timestamps (the first as a zigzag
//! varint, each next as the zigzag varint of its difference from the one before: a byte
//! or two for predictions milliseconds to seconds apart), one tag byte per prediction
//! (class known, class true, score present, regression value), then the score or value
//! of each prediction that has one, 8 bytes little-endian (kept exact: the metrics must
//! equal scikit-learn's on the same data). About 10 bytes per scored prediction.
//!
//! A prediction is found by its **location**: its block's key times [`BLOCK_SLOTS`]
//! plus its slot (its position in the block). Slots never move while the block lives,
//! so the id index and the labels (keyed by location) stay valid as a block grows.

use modelwatch_core::predictions::Output;

use crate::StoreError;

/// Slots per block: a location is `block * BLOCK_SLOTS + slot`.
pub(crate) const BLOCK_SLOTS: i64 = 1 << 16;

/// A block holding fewer predictions takes the next ones of its window (rewritten);
/// a fuller one is left as it is and a new block started, so a trickle of small batches
/// fills blocks while a bulk batch never rewrites more than this many.
pub(crate) const BLOCK_OPEN: usize = 4_096;

const FORMAT: u8 = 1;

const CLASS_KNOWN: u8 = 1;
const CLASS_TRUE: u8 = 2;
const SCORE: u8 = 4;
const REGRESSION: u8 = 8;

/// The location of `slot` in block `block`.
pub(crate) fn location(block: i64, slot: usize) -> i64 {
    block * BLOCK_SLOTS + slot as i64
}

/// A location's block and slot.
pub(crate) fn block_and_slot(location: i64) -> (i64, usize) {
    (
        location.div_euclid(BLOCK_SLOTS),
        location.rem_euclid(BLOCK_SLOTS) as usize,
    )
}

/// A block's predictions: time (ms) and output, by slot.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Block {
    pub(crate) times: Vec<i64>,
    pub(crate) outputs: Vec<Output>,
}

impl Block {
    pub(crate) fn len(&self) -> usize {
        self.times.len()
    }

    /// Appends a prediction; returns its slot.
    pub(crate) fn push(&mut self, time_ms: i64, output: Output) -> usize {
        self.times.push(time_ms);
        self.outputs.push(output);
        self.times.len() - 1
    }

    /// Whether another prediction fits (its slot below [`BLOCK_SLOTS`]).
    pub(crate) fn is_full(&self) -> bool {
        self.len() as i64 >= BLOCK_SLOTS
    }

    /// The earliest and latest time; `None` for an empty block.
    pub(crate) fn span(&self) -> Option<(i64, i64)> {
        let min = self.times.iter().min()?;
        let max = self.times.iter().max()?;
        Some((*min, *max))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.len() * 11);
        out.push(FORMAT);
        put_uvarint(&mut out, self.len() as u64);
        let mut before = 0i64;
        for &time in &self.times {
            put_ivarint(&mut out, time.wrapping_sub(before));
            before = time;
        }
        for output in &self.outputs {
            out.push(tag(output));
        }
        for output in &self.outputs {
            match *output {
                Output::Classification {
                    score: Some(score), ..
                } => out.extend_from_slice(&score.to_le_bytes()),
                Output::Classification { score: None, .. } => {}
                Output::Regression { value } => out.extend_from_slice(&value.to_le_bytes()),
            }
        }
        out
    }

    /// The times alone, by slot (what a label's join needs to name its window).
    pub(crate) fn decode_times(bytes: &[u8]) -> Result<Vec<i64>, StoreError> {
        Self::times(&mut Reader { bytes, at: 0 })
    }

    fn times(reader: &mut Reader<'_>) -> Result<Vec<i64>, StoreError> {
        let format = reader.byte()?;
        if format != FORMAT {
            return Err(corrupt(format!("format {format}")));
        }
        let count = usize::try_from(reader.uvarint()?).map_err(|_| corrupt("count"))?;
        if count as i64 > BLOCK_SLOTS || count > reader.bytes.len() {
            return Err(corrupt(format!("count {count}")));
        }
        let mut times = Vec::with_capacity(count);
        let mut before = 0i64;
        for _ in 0..count {
            before = before.wrapping_add(reader.ivarint()?);
            times.push(before);
        }
        Ok(times)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Block, StoreError> {
        let mut reader = Reader { bytes, at: 0 };
        let times = Self::times(&mut reader)?;
        let count = times.len();
        let tags = reader.take(count)?.to_vec();
        let mut outputs = Vec::with_capacity(count);
        for tag in tags {
            let output = if tag & REGRESSION != 0 {
                if tag != REGRESSION {
                    return Err(corrupt(format!("tag {tag}")));
                }
                Output::Regression {
                    value: reader.f64()?,
                }
            } else {
                if tag & !(CLASS_KNOWN | CLASS_TRUE | SCORE) != 0
                    || tag & (CLASS_KNOWN | SCORE) == 0
                    || (tag & CLASS_TRUE != 0 && tag & CLASS_KNOWN == 0)
                {
                    return Err(corrupt(format!("tag {tag}")));
                }
                Output::Classification {
                    class: (tag & CLASS_KNOWN != 0).then_some(tag & CLASS_TRUE != 0),
                    score: if tag & SCORE != 0 {
                        Some(reader.f64()?)
                    } else {
                        None
                    },
                }
            };
            outputs.push(output);
        }
        if reader.at != bytes.len() {
            return Err(corrupt("bytes after the values"));
        }
        Ok(Block { times, outputs })
    }
}

fn tag(output: &Output) -> u8 {
    match *output {
        Output::Classification { class, score } => {
            let class = match class {
                None => 0,
                Some(false) => CLASS_KNOWN,
                Some(true) => CLASS_KNOWN | CLASS_TRUE,
            };
            class | if score.is_some() { SCORE } else { 0 }
        }
        Output::Regression { .. } => REGRESSION,
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("prediction block: {what}"))
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

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(n).ok_or_else(|| corrupt("length"))?;
        let bytes = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| corrupt("ends early"))?;
        self.at = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
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
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> Block {
        let mut block = Block::default();
        let outputs = [
            Output::Classification {
                class: None,
                score: Some(0.25),
            },
            Output::Classification {
                class: Some(true),
                score: Some(0.9),
            },
            Output::Classification {
                class: Some(false),
                score: None,
            },
            Output::Classification {
                class: Some(true),
                score: None,
            },
            Output::Regression { value: -3.5e7 },
        ];
        // Out of order, far apart, negative: the deltas are signed.
        for (time, output) in [5_000, 4_940, 0, -60_000, 1_700_000_000_000]
            .into_iter()
            .zip(outputs)
        {
            block.push(time, output);
        }
        block
    }

    #[test]
    fn a_block_reads_back_as_written() {
        let block = block();
        assert_eq!(Block::decode(&block.encode()).unwrap(), block);
        assert_eq!(block.span(), Some((-60_000, 1_700_000_000_000)));
        assert_eq!(
            Block::decode(&Block::default().encode()).unwrap(),
            Block::default()
        );
    }

    #[test]
    fn scored_predictions_a_minute_apart_take_ten_bytes_each() {
        let mut block = Block::default();
        for i in 0..10_000 {
            block.push(
                1_700_000_000_000 + i * 60,
                Output::Classification {
                    class: None,
                    score: Some(i as f64 / 10_000.0),
                },
            );
        }
        let bytes = block.encode();
        assert!(bytes.len() <= 10 * 10_000 + 16, "{} bytes", bytes.len());
        assert_eq!(Block::decode(&bytes).unwrap(), block);
    }

    #[test]
    fn a_damaged_block_is_refused_not_misread() {
        let bytes = block().encode();
        for cut in 0..bytes.len() {
            assert!(Block::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Block::decode(&longer).is_err());
        let mut other_format = bytes;
        other_format[0] = 9;
        assert!(Block::decode(&other_format).is_err());
    }

    #[test]
    fn a_location_is_its_block_and_slot() {
        for (block, slot) in [(0, 0), (1, 0), (7, 65_535), (123_456_789, 42)] {
            assert_eq!(block_and_slot(location(block, slot)), (block, slot));
        }
    }
}
