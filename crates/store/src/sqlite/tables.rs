//! What both the readers and the writer need to know of the tables (how a series names
//! its dataset, the custom metric definitions), so neither imports the other.

use modelwatch_core::{Direction, Metric, MetricDefinition, ValueRange};
use rusqlite::Connection;

use crate::StoreError;

/// The condition matching a series (`series`, unaliased) whose dataset is named by
/// parameter 4, null for the default dataset (stored as 0). A name no dataset has
/// matches nothing.
pub(super) const SERIES_DATASET_IS_4: &str = "dataset_id = CASE WHEN ?4 IS NULL THEN 0
    ELSE (SELECT id FROM datasets WHERE name = ?4) END";

/// The custom metric definitions (`metric define`), read inside any transaction: the
/// readers list them, the writer validates a batch against them.
pub(super) fn load_custom_metrics(
    connection: &Connection,
) -> Result<Vec<MetricDefinition>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT metric, direction, min_value, max_value FROM metric_definitions ORDER BY metric",
    )?;
    let mut rows = statement.query([])?;
    let mut definitions = Vec::new();
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let direction: String = row.get(1)?;
        let metric = Metric::parse(&name)
            .map_err(|e| StoreError::Corrupt(format!("metric definition: {e}")))?;
        let direction = match direction.as_str() {
            "lower_is_better" => Direction::LowerIsBetter,
            _ => Direction::HigherIsBetter,
        };
        definitions.push(MetricDefinition {
            metric,
            direction,
            range: ValueRange {
                min: row.get(2)?,
                max: row.get(3)?,
            },
        });
    }
    Ok(definitions)
}
