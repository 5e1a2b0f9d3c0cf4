//! Rendering results for people (tables) and for programs (JSON, CSV).
//!
//! JSON field names are snake_case and shared with the HTTP API: they are a contract.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Result};
use clap::ValueEnum;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table as Grid};
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
#[derive(Debug, Default)]
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }
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
                .set_content_arrangement(ContentArrangement::Dynamic);
            grid.set_header(&table.headers);
            for row in &table.rows {
                grid.add_row(row);
            }
            writeln!(out, "{grid}")?;
        }
    }
    Ok(())
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
