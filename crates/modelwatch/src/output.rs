//! Rendering results for people (tables) and for programs (JSON, CSV).
//!
//! JSON field names are snake_case and shared with the HTTP API: they are a contract.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Result};
use clap::ValueEnum;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ColumnConstraint, ContentArrangement, Row, Table as Grid};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The result types as JSON (snake_case field names, shared with the HTTP API).
    Json,
    /// The table's columns as CSV with a header line.
    Csv,
    /// Only the ids (rules, alerts, silences, tokens, notifications), one per line, for
    /// scripts: `alert=$(modelwatch alerts list --status open --format id | head -n 1)`.
    Id,
}

impl Format {
    /// `table` on a terminal, JSON when the output goes to a program.
    pub fn default_for_stdout() -> Format {
        if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        }
    }
}

/// Rows for the table and CSV forms.
///
/// On a terminal (or with `COLUMNS` set) a table fits the width and every row is one
/// line: ids, times, numbers and states are never broken, text columns (messages,
/// recommendations, notes…) are cut with "…" instead, and when even that does not fit,
/// the columns named by [`Table::optional`] are left out, first named first. JSON and
/// CSV always have everything.
#[derive(Debug, Default)]
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// Columns a narrow terminal may leave out, in that order.
    pub optional: Vec<&'static str>,
}

/// Columns whose text may be cut to fit: everything else is shown whole.
const TEXT_COLUMNS: [&str; 12] = [
    "message",
    "recommendation",
    "comment",
    "notes",
    "error",
    "target",
    "name",
    "rule",
    "metrics",
    "condition",
    "channels",
    "when",
];

/// The narrowest a text column is cut to.
const MIN_TEXT_WIDTH: usize = 12;

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
            optional: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Names columns a narrow terminal may leave out, least useful first.
    pub fn optional(mut self, columns: &[&'static str]) -> Self {
        self.optional = columns.to_vec();
        self
    }

    /// Each column's widest cell (header included), in characters.
    fn content_widths(&self) -> Vec<usize> {
        self.headers
            .iter()
            .enumerate()
            .map(|(i, header)| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(i))
                    .map(|cell| {
                        compact_time(cell)
                            .lines()
                            .map(|l| l.chars().count())
                            .max()
                            .unwrap_or(0)
                    })
                    .chain(std::iter::once(header.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Which columns to hide so the table fits `width`: optional ones, in order, until
    /// the whole columns plus the narrowest text columns fit.
    fn hidden(&self, width: usize) -> Vec<bool> {
        let widths = self.content_widths();
        let mut hidden = vec![false; self.headers.len()];
        let needed = |hidden: &[bool]| -> usize {
            1 + self
                .headers
                .iter()
                .zip(&widths)
                .zip(hidden)
                .filter(|(_, hidden)| !**hidden)
                .map(|((header, width), _)| {
                    let shown = if TEXT_COLUMNS.contains(header) {
                        (*width).min(MIN_TEXT_WIDTH)
                    } else {
                        *width
                    };
                    shown + 3
                })
                .sum::<usize>()
        };
        for column in &self.optional {
            if needed(&hidden) <= width {
                break;
            }
            if let Some(i) = self.headers.iter().position(|h| h == column) {
                hidden[i] = true;
            }
        }
        hidden
    }
}

/// A time as a table shows it: to the second, without the `T` (`2024-05-01 12:00:00Z`);
/// JSON and CSV keep the milliseconds. Anything else is returned as it is.
fn compact_time(cell: &str) -> String {
    let bytes = cell.as_bytes();
    let is_time = cell.len() >= 20
        && cell.ends_with('Z')
        && bytes.get(10) == Some(&b'T')
        && bytes.get(4) == Some(&b'-')
        && bytes.get(13) == Some(&b':')
        && cell[..19]
            .bytes()
            .enumerate()
            .all(|(i, b)| matches!(i, 4 | 7 | 10 | 13 | 16) || b.is_ascii_digit());
    if is_time {
        format!("{} {}Z", &cell[..10], &cell[11..19])
    } else {
        cell.to_owned()
    }
}

/// The width tables must fit: the terminal's, else `COLUMNS` when set (scripts, tests).
fn table_width(grid: &Grid) -> Option<usize> {
    if std::io::stdout().is_terminal() {
        return grid.width().map(usize::from);
    }
    std::env::var("COLUMNS").ok()?.trim().parse().ok()
}

/// Prints `json` as JSON, or `table` as a table or CSV.
pub fn emit(format: Format, json: &impl Serialize, table: &Table) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, json)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(&table.headers)?;
            for row in &table.rows {
                writer.write_record(row)?;
            }
            writer.flush()?;
        }
        Format::Id => {
            let Some(column) = table.headers.iter().position(|h| *h == "id") else {
                bail!("--format id: this output has no ids; use --format json or csv");
            };
            for row in &table.rows {
                writeln!(out, "{}", row[column])?;
            }
        }
        Format::Table => {
            let mut grid = Grid::new();
            grid.load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_truncation_indicator("…");
            let width = table_width(&grid);
            if let Some(width) = width {
                grid.set_width(u16::try_from(width).unwrap_or(u16::MAX));
            }
            let mut header = Row::from(&table.headers);
            header.max_height(1);
            grid.set_header(header);
            for row in &table.rows {
                let mut row = Row::from(row.iter().map(|cell| compact_time(cell)));
                row.max_height(1);
                grid.add_row(row);
            }
            let hidden =
                width.map_or_else(|| vec![false; table.headers.len()], |w| table.hidden(w));
            for (i, header) in table.headers.iter().enumerate() {
                let Some(column) = grid.column_mut(i) else {
                    continue;
                };
                if hidden[i] {
                    column.set_constraint(ColumnConstraint::Hidden);
                } else if !TEXT_COLUMNS.contains(header) {
                    column.set_constraint(ColumnConstraint::ContentWidth);
                }
            }
            writeln!(out, "{grid}")?;
        }
    }
    Ok(())
}

/// `--hours`, as every command takes it: a positive number of hours (fractions too: 0.5
/// is half an hour) or `all` (`None`, any time). The HTTP API's `hours` reads the same.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hours(pub Option<f64>);

impl Hours {
    pub const DAY: Hours = Hours(Some(24.0));

    /// The window these hours reach back from `now`.
    pub fn window(self, now: modelwatch_core::Timestamp) -> modelwatch_core::TimeRange {
        modelwatch_engine::analysis::window(self.0, now)
    }

    /// "the last 24 hours", "the last 0.5 hours", "all time".
    pub fn describe(self) -> String {
        match self.0 {
            None => "all time".into(),
            Some(1.0) => "the last hour".into(),
            Some(hours) => format!("the last {} hours", number(hours)),
        }
    }
}

impl serde::Serialize for Hours {
    /// A number, or "all".
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(hours) => serializer.serialize_f64(hours),
            None => serializer.serialize_str("all"),
        }
    }
}

/// Parses `--hours` (clap's value parser).
pub fn parse_hours(text: &str) -> Result<Hours, String> {
    modelwatch_core::alerting::parse_hours_or_all(text)
        .map(Hours)
        .map_err(|error| error.message)
}

/// "1 sample", "2 samples": `noun` with an `s` unless there is one.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A number for people: up to six significant decimals, no trailing zeros.
pub fn number(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let decimals = if value.abs() >= 1000.0 { 2 } else { 6 };
    let text = format!("{value:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}
