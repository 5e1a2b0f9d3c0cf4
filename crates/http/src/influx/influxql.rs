//! A strict parser for the InfluxQL that Grafana's InfluxDB data source, Telegraf and the
//! Influx client libraries send (no InfluxQL parser is published on crates.io; IOx's is
//! not). Pure: "now" is an argument, times come out resolved to Unix milliseconds.
//!
//! The subset, case-insensitive in its keywords, statements separated by `;`:
//!
//! - `SELECT agg("field") [AS name][, …] FROM ["rp".]"measurement" [WHERE cond]
//!   [GROUP BY time(d[, offset])[, "tag"…] | "tag"… | *] [fill(null|none|previous|n)]
//!   [ORDER BY time [ASC|DESC]] [LIMIT n]`, where `agg` is `mean`, `last`, `first`, `min`,
//!   `max`, `count` or `sum`; or `SELECT "field"[, …]` for the raw points (no aggregate, no
//!   `GROUP BY time`);
//! - `cond`: tag comparisons (`"tag" = 'x'`, `!=`, `<>`, `=~ /re/`, `!~ /re/`) joined by
//!   `AND`, `OR` and parentheses, and, at the top level only, time bounds (`time >=
//!   now() - 6h`, `time <= 1700000000000ms`, `time > '2024-05-01T00:00:00Z'`);
//! - `SHOW MEASUREMENTS [WITH MEASUREMENT =~ /re/ | = "name"] [LIMIT n]`, `SHOW TAG KEYS
//!   [FROM m]`, `SHOW TAG VALUES [FROM m] WITH KEY = "k" | IN ("k", …) | =~ /re/ [WHERE
//!   cond] [LIMIT n]`, `SHOW FIELD KEYS [FROM m]`, `SHOW DATABASES`, `SHOW RETENTION
//!   POLICIES [ON db]`, `CREATE DATABASE name` (accepted, nothing to create).
//!
//! Anything else is an error naming what is not supported, at the point it is found.

use regex::Regex;

/// What went wrong, as InfluxDB words it: `error parsing query: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error parsing query: {0}")]
pub struct ParseError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

/// One statement of a query.
#[derive(Debug, Clone)]
pub enum Statement {
    Select(Select),
    ShowMeasurements {
        matching: Option<NameMatch>,
        limit: Option<usize>,
    },
    ShowTagKeys {
        from: Option<String>,
        limit: Option<usize>,
    },
    ShowTagValues {
        from: Option<String>,
        keys: NameMatch,
        condition: Option<Condition>,
        limit: Option<usize>,
    },
    ShowFieldKeys {
        from: Option<String>,
    },
    ShowDatabases,
    ShowRetentionPolicies,
    CreateDatabase(String),
}

/// Names picked by `= "x"`, `IN ("x", "y")` or `=~ /re/`.
#[derive(Debug, Clone)]
pub enum NameMatch {
    Names(Vec<String>),
    Regex(Regex),
}

impl NameMatch {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NameMatch::Names(names) => names.iter().any(|n| n == name),
            NameMatch::Regex(regex) => regex.is_match(name),
        }
    }
}

/// What a selected column computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Mean,
    Last,
    First,
    Min,
    Max,
    Count,
    Sum,
}

impl Aggregate {
    fn parse(name: &str) -> Option<Aggregate> {
        Some(match name.to_ascii_lowercase().as_str() {
            "mean" => Aggregate::Mean,
            "last" => Aggregate::Last,
            "first" => Aggregate::First,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "count" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Mean => "mean",
            Aggregate::Last => "last",
            Aggregate::First => "first",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
        }
    }
}

/// One column of a `SELECT`: an aggregate of a field, or the field's raw points (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub aggregate: Option<Aggregate>,
    pub field: String,
    pub alias: Option<String>,
}

/// What fills a time bucket without points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    Null,
    None,
    Previous,
    Value(f64),
}

/// The tags a `SELECT` groups by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupTags {
    Some(Vec<String>),
    /// `GROUP BY *`: every tag.
    All,
}

#[derive(Debug, Clone)]
pub struct Select {
    pub columns: Vec<Column>,
    pub measurement: String,
    pub condition: Option<Condition>,
    /// Inclusive start, in ms.
    pub start: Option<i64>,
    /// Exclusive end, in ms.
    pub end: Option<i64>,
    /// `GROUP BY time(…)`: the interval and offset, in ms.
    pub interval: Option<(i64, i64)>,
    pub group_tags: GroupTags,
    pub fill: Fill,
    pub descending: bool,
    pub limit: Option<usize>,
}

impl Select {
    pub fn is_aggregate(&self) -> bool {
        self.columns.iter().any(|c| c.aggregate.is_some())
    }
}

/// A condition on tags.
#[derive(Debug, Clone)]
pub enum Condition {
    Equal(String, String),
    NotEqual(String, String),
    Matches(String, Regex),
    NotMatches(String, Regex),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

impl Condition {
    /// Whether a series with `tag` (its value of a key, `""` for a key it lacks, as
    /// InfluxDB reads a missing tag) matches.
    pub fn matches(&self, tag: &dyn Fn(&str) -> String) -> bool {
        match self {
            Condition::Equal(key, value) => tag(key) == *value,
            Condition::NotEqual(key, value) => tag(key) != *value,
            Condition::Matches(key, regex) => regex.is_match(&tag(key)),
            Condition::NotMatches(key, regex) => !regex.is_match(&tag(key)),
            Condition::And(a, b) => a.matches(tag) && b.matches(tag),
            Condition::Or(a, b) => a.matches(tag) || b.matches(tag),
        }
    }
}

// ---- tokens ----

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word (keyword or name) or a double-quoted name; `quoted` tells them apart.
    Ident {
        text: String,
        quoted: bool,
    },
    Str(String),
    Regex(String),
    Number(String),
    /// An integer with a unit: `6h`, `1700000000000ms`; in ms (may be fractional for ns, µs).
    Duration {
        ms: f64,
        text: String,
    },
    Op(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident { text, quoted: true } => format!("\"{text}\""),
            Token::Ident { text, .. } | Token::Number(text) => text.clone(),
            Token::Str(text) => format!("'{text}'"),
            Token::Regex(text) => format!("/{text}/"),
            Token::Duration { text, .. } => text.clone(),
            Token::Op(op) => (*op).to_owned(),
        }
    }
}

const OPS: [&str; 17] = [
    "=~", "!~", "!=", "<>", "<=", ">=", "::", "=", "<", ">", "(", ")", ",", ";", "+", "-", ".",
];

/// The longest interval or offset of `GROUP BY time()`: 100 years.
const MAX_DURATION_MS: f64 = 100.0 * 365.25 * 86_400_000.0;

fn unit_ms(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1e-6,
        "u" | "µ" | "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        "w" => 604_800_000.0,
        _ => return None,
    })
}

/// Splits a query into tokens. A `/` starts a regular expression where an operand is
/// expected (after `=~`, `!~`); `*` is only `SELECT *` or `GROUP BY *`, read as a word.
fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            // A comment to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return fail(format!("unterminated {c}…{c}")),
                    Some('\\') => {
                        if let Some(next) = chars.get(i + 1) {
                            value.push(*next);
                        }
                        i += 2;
                    }
                    Some(q) if *q == c => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        value.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push(if c == '"' {
                Token::Ident {
                    text: value,
                    quoted: true,
                }
            } else {
                Token::Str(value)
            });
            continue;
        }
        if c == '/' && matches!(tokens.last(), Some(Token::Op("=~" | "!~"))) {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return fail("unterminated regular expression /…/"),
                    Some('\\') if chars.get(i + 1) == Some(&'/') => {
                        value.push('/');
                        i += 2;
                    }
                    Some('/') => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        value.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Regex(value));
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let number: String = chars[start..i].iter().collect();
            let unit_start = i;
            while i < chars.len() && (chars[i].is_alphabetic()) {
                i += 1;
            }
            let unit: String = chars[unit_start..i].iter().collect();
            if unit.is_empty() {
                tokens.push(Token::Number(number));
                continue;
            }
            let (Some(scale), Ok(value)) = (unit_ms(&unit), number.parse::<i64>()) else {
                return fail(format!("invalid duration {number}{unit}"));
            };
            tokens.push(Token::Duration {
                ms: value as f64 * scale,
                text: format!("{number}{unit}"),
            });
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '*' || c == '$' {
            let start = i;
            i += 1;
            if c != '*' {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            tokens.push(Token::Ident {
                text: chars[start..i].iter().collect(),
                quoted: false,
            });
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let Some(&op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
            return fail(format!("unexpected {c:?}"));
        };
        tokens.push(Token::Op(op));
        i += op.chars().count();
    }
    Ok(tokens)
}

// ---- the parser ----

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    now: i64,
}

/// Parses a query of one or more statements; `now` is the time `now()` means, in ms.
pub fn parse(text: &str, now: i64) -> Result<Vec<Statement>, ParseError> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        at: 0,
        now,
    };
    let mut statements = Vec::new();
    loop {
        while parser.eat_op(";") {}
        if parser.peek().is_none() {
            break;
        }
        statements.push(parser.statement()?);
        if parser.peek().is_some() && !parser.eat_op(";") {
            return parser.unexpected("; or the end of the query");
        }
    }
    if statements.is_empty() {
        return fail("empty query");
    }
    Ok(statements)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn unexpected<T>(&self, wanted: &str) -> Result<T, ParseError> {
        match self.peek() {
            Some(token) => fail(format!("found {}, expected {wanted}", token.describe())),
            None => fail(format!("found the end of the query, expected {wanted}")),
        }
    }

    /// Whether the next token is the bare keyword `word` (any case); consumes it if so.
    fn eat_keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Ident {
                text,
                quoted: false,
            }) if text.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn keyword(&mut self, word: &str) -> Result<(), ParseError> {
        if self.eat_keyword(word) {
            Ok(())
        } else {
            self.unexpected(&word.to_ascii_uppercase())
        }
    }

    fn peek_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident { text, quoted: false }) if text.eq_ignore_ascii_case(word))
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Token::Op(found)) if *found == op) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn op(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            self.unexpected(op)
        }
    }

    /// A name: a bare word or a double-quoted one, without a `::field`/`::tag` cast.
    fn name(&mut self, what: &str) -> Result<String, ParseError> {
        let name = match self.peek() {
            Some(Token::Ident { text, .. }) if text != "*" => text.clone(),
            _ => return self.unexpected(what),
        };
        self.at += 1;
        if self.eat_op("::") {
            let cast = self.name("field or tag")?;
            if !["field", "tag"].contains(&cast.to_ascii_lowercase().as_str()) {
                return fail(format!("found ::{cast}, expected ::field or ::tag"));
            }
        }
        Ok(name)
    }

    /// `["db".]["rp".]"measurement"`: the measurement.
    fn measurement(&mut self) -> Result<String, ParseError> {
        if matches!(self.peek(), Some(Token::Op("=~")))
            || matches!(self.peek(), Some(Token::Regex(_)))
        {
            return fail("FROM with a regular expression is not supported; name the measurement");
        }
        let mut name = self.name("a measurement")?;
        while self.eat_op(".") {
            name = self.name("a measurement")?;
        }
        Ok(name)
    }

    fn limit(&mut self) -> Result<Option<usize>, ParseError> {
        if !self.eat_keyword("LIMIT") {
            return Ok(None);
        }
        match self.next() {
            Some(Token::Number(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| ParseError(format!("LIMIT {text} is not a whole number"))),
            _ => {
                self.at -= 1;
                self.unexpected("a number after LIMIT")
            }
        }
    }

    fn statement(&mut self) -> Result<Statement, ParseError> {
        if self.eat_keyword("SELECT") {
            return self.select().map(Statement::Select);
        }
        if self.eat_keyword("SHOW") {
            return self.show();
        }
        if self.eat_keyword("CREATE") {
            if self.eat_keyword("DATABASE") {
                let name = self.name("a database name")?;
                // Telegraf sends `CREATE DATABASE "telegraf"` alone; options are refused.
                return Ok(Statement::CreateDatabase(name));
            }
            return self.unexpected("DATABASE (only CREATE DATABASE is supported)");
        }
        match self.peek() {
            Some(Token::Ident {
                text,
                quoted: false,
            }) => fail(format!(
                "{} statements are not supported (SELECT, SHOW and CREATE DATABASE are)",
                text.to_ascii_uppercase()
            )),
            _ => self.unexpected("SELECT, SHOW or CREATE DATABASE"),
        }
    }

    fn show(&mut self) -> Result<Statement, ParseError> {
        if self.eat_keyword("MEASUREMENTS") {
            if self.eat_keyword("ON") {
                self.name("a database name")?;
            }
            let mut matching = None;
            if self.eat_keyword("WITH") {
                self.keyword("MEASUREMENT")?;
                matching = Some(self.name_match(false)?);
            }
            if self.peek_keyword("WHERE") {
                return fail("SHOW MEASUREMENTS … WHERE is not supported");
            }
            let limit = self.limit()?;
            return Ok(Statement::ShowMeasurements { matching, limit });
        }
        if self.eat_keyword("DATABASES") {
            return Ok(Statement::ShowDatabases);
        }
        if self.eat_keyword("RETENTION") {
            self.keyword("POLICIES")?;
            if self.eat_keyword("ON") {
                self.name("a database name")?;
            }
            return Ok(Statement::ShowRetentionPolicies);
        }
        if self.eat_keyword("FIELD") {
            self.keyword("KEYS")?;
            let from = self.show_from()?;
            return Ok(Statement::ShowFieldKeys { from });
        }
        if self.eat_keyword("TAG") {
            if self.eat_keyword("KEYS") {
                let from = self.show_from()?;
                if self.peek_keyword("WHERE") {
                    return fail("SHOW TAG KEYS … WHERE is not supported");
                }
                let limit = self.limit()?;
                return Ok(Statement::ShowTagKeys { from, limit });
            }
            if self.eat_keyword("VALUES") {
                let from = self.show_from()?;
                self.keyword("WITH")?;
                self.keyword("KEY")?;
                let keys = self.name_match(true)?;
                let condition = if self.eat_keyword("WHERE") {
                    let (condition, start, end) = self.condition()?;
                    if start.is_some() || end.is_some() {
                        return fail("time conditions in SHOW TAG VALUES are not supported");
                    }
                    condition
                } else {
                    None
                };
                let limit = self.limit()?;
                return Ok(Statement::ShowTagValues {
                    from,
                    keys,
                    condition,
                    limit,
                });
            }
            return self.unexpected("KEYS or VALUES");
        }
        match self.peek() {
            Some(Token::Ident {
                text,
                quoted: false,
            }) => fail(format!(
                "SHOW {} is not supported (SHOW MEASUREMENTS, TAG KEYS, TAG VALUES, FIELD KEYS, \
                 DATABASES and RETENTION POLICIES are)",
                text.to_ascii_uppercase()
            )),
            _ => self.unexpected("what to SHOW"),
        }
    }

    fn show_from(&mut self) -> Result<Option<String>, ParseError> {
        if self.eat_keyword("ON") {
            self.name("a database name")?;
        }
        if self.eat_keyword("FROM") {
            return self.measurement().map(Some);
        }
        Ok(None)
    }

    /// `= "name"`, `IN ("a", "b")` or `=~ /re/` (`=~` only where `allow_in`… and everywhere).
    fn name_match(&mut self, allow_in: bool) -> Result<NameMatch, ParseError> {
        if self.eat_op("=") {
            return Ok(NameMatch::Names(vec![self.name("a name")?]));
        }
        if self.eat_op("=~") {
            return match self.next() {
                Some(Token::Regex(text)) => Ok(NameMatch::Regex(regex(&text)?)),
                _ => {
                    self.at -= 1;
                    self.unexpected("a regular expression /…/")
                }
            };
        }
        if allow_in && self.eat_keyword("IN") {
            self.op("(")?;
            let mut names = vec![self.name("a name")?];
            while self.eat_op(",") {
                names.push(self.name("a name")?);
            }
            self.op(")")?;
            return Ok(NameMatch::Names(names));
        }
        self.unexpected(if allow_in { "=, =~ or IN" } else { "= or =~" })
    }

    fn select(&mut self) -> Result<Select, ParseError> {
        let mut columns = vec![self.column()?];
        while self.eat_op(",") {
            columns.push(self.column()?);
        }
        if self.eat_keyword("INTO") {
            return fail("SELECT … INTO is not supported");
        }
        self.keyword("FROM")?;
        if matches!(self.peek(), Some(Token::Op("("))) {
            return fail("subqueries are not supported");
        }
        let measurement = self.measurement()?;
        if self.eat_op(",") {
            return fail("SELECT from several measurements is not supported");
        }
        let (mut condition, mut start, mut end) = (None, None, None);
        if self.eat_keyword("WHERE") {
            (condition, start, end) = self.condition()?;
        }
        let mut select = Select {
            columns,
            measurement,
            condition,
            start,
            end,
            interval: None,
            group_tags: GroupTags::Some(Vec::new()),
            fill: Fill::Null,
            descending: false,
            limit: None,
        };
        if self.eat_keyword("GROUP") {
            self.keyword("BY")?;
            self.group_by(&mut select)?;
        }
        if self.eat_keyword("FILL") {
            self.op("(")?;
            select.fill = match self.next() {
                Some(Token::Ident {
                    text,
                    quoted: false,
                }) => match text.to_ascii_lowercase().as_str() {
                    "null" => Fill::Null,
                    "none" => Fill::None,
                    "previous" => Fill::Previous,
                    other => {
                        return fail(format!(
                            "fill({other}) is not supported (null, none, previous or a number are)"
                        ))
                    }
                },
                Some(Token::Number(text)) => Fill::Value(number(&text)?),
                Some(Token::Op("-")) => match self.next() {
                    Some(Token::Number(text)) => Fill::Value(-number(&text)?),
                    _ => return fail("fill(-…) needs a number"),
                },
                _ => {
                    self.at -= 1;
                    return self.unexpected("null, none, previous or a number in fill()");
                }
            };
            self.op(")")?;
        }
        if self.eat_keyword("ORDER") {
            self.keyword("BY")?;
            self.keyword("time")?;
            if self.eat_keyword("DESC") {
                select.descending = true;
            } else {
                self.eat_keyword("ASC");
            }
        }
        select.limit = self.limit()?;
        for word in ["OFFSET", "SLIMIT", "SOFFSET", "TZ"] {
            if self.peek_keyword(word) {
                return fail(format!("{word} is not supported"));
            }
        }
        if select.interval.is_some() && !select.is_aggregate() {
            return fail("GROUP BY requires at least one aggregate function");
        }
        if select.is_aggregate() && select.columns.iter().any(|c| c.aggregate.is_none()) {
            return fail("mixing aggregate and non-aggregate queries is not supported");
        }
        if select.interval.is_some() && select.start.is_none() {
            return fail("aggregate functions with GROUP BY time require a WHERE time clause with a lower limit");
        }
        Ok(select)
    }

    fn column(&mut self) -> Result<Column, ParseError> {
        let (aggregate, field) = match self.peek().cloned() {
            Some(Token::Ident {
                text,
                quoted: false,
            }) if text == "*" => {
                return fail("SELECT * is not supported; name the field");
            }
            Some(Token::Ident {
                text,
                quoted: false,
            }) if matches!(self.tokens.get(self.at + 1), Some(Token::Op("("))) => {
                let Some(aggregate) = Aggregate::parse(&text) else {
                    return fail(format!(
                        "function {text}() is not supported (mean, last, first, min, max, count and sum are)"
                    ));
                };
                self.at += 2;
                if self.peek_keyword("DISTINCT") {
                    return fail("DISTINCT is not supported");
                }
                let field = self.name("a field")?;
                if !self.eat_op(")") {
                    return self.unexpected(&format!(") after {}(\"{field}\"", aggregate.name()));
                }
                (Some(aggregate), field)
            }
            Some(Token::Ident { .. }) => (None, self.name("a field")?),
            _ => return self.unexpected("a field or an aggregate"),
        };
        if let Some(Token::Op(op @ ("+" | "-"))) = self.peek() {
            return fail(format!("arithmetic in SELECT ({op}) is not supported"));
        }
        if self.peek_keyword("*") {
            return fail("arithmetic in SELECT (*) is not supported");
        }
        let alias = if self.eat_keyword("AS") {
            Some(self.name("a column name")?)
        } else {
            None
        };
        Ok(Column {
            aggregate,
            field,
            alias,
        })
    }

    fn group_by(&mut self, select: &mut Select) -> Result<(), ParseError> {
        let mut tags = Vec::new();
        loop {
            if self.peek_keyword("time")
                && matches!(self.tokens.get(self.at + 1), Some(Token::Op("(")))
            {
                self.at += 2;
                let interval = self.duration("an interval in time()")?;
                if interval <= 0 {
                    return fail("GROUP BY time() needs a positive interval");
                }
                let offset = if self.eat_op(",") {
                    let negative = self.eat_op("-");
                    let offset = self.duration("an offset in time(…, offset)")?;
                    if negative {
                        -offset
                    } else {
                        offset
                    }
                } else {
                    0
                };
                self.op(")")?;
                if select.interval.replace((interval, offset)).is_some() {
                    return fail("GROUP BY time() given twice");
                }
            } else if self.peek_keyword("*") {
                self.at += 1;
                select.group_tags = GroupTags::All;
            } else if matches!(self.peek(), Some(Token::Regex(_)) | Some(Token::Op("/"))) {
                return fail("GROUP BY a regular expression is not supported");
            } else {
                tags.push(self.name("time(…), a tag or *")?);
            }
            if !self.eat_op(",") {
                break;
            }
        }
        if let GroupTags::Some(existing) = &mut select.group_tags {
            existing.extend(tags);
        }
        Ok(())
    }

    /// A duration literal (`1m`, `30s`), in whole ms, at most [`MAX_DURATION_MS`].
    fn duration(&mut self, what: &str) -> Result<i64, ParseError> {
        match self.next() {
            Some(Token::Duration { ms, text }) => {
                if ms > MAX_DURATION_MS {
                    return fail(format!("{text} is longer than the 100 years supported"));
                }
                Ok(ms.round() as i64)
            }
            Some(Token::Ident { text, .. }) if text.starts_with('$') => fail(format!(
                "{text} is a Grafana variable the query was sent with unreplaced"
            )),
            _ => {
                self.at -= 1;
                self.unexpected(what)
            }
        }
    }

    /// A `WHERE` condition: the tag condition left when the top-level time bounds are
    /// taken out, and those bounds (inclusive start, exclusive end, ms).
    #[allow(clippy::type_complexity)]
    fn condition(&mut self) -> Result<(Option<Condition>, Option<i64>, Option<i64>), ParseError> {
        let expression = self.or()?;
        let mut conjuncts = Vec::new();
        flatten_and(expression, &mut conjuncts);
        let (mut start, mut end): (Option<i64>, Option<i64>) = (None, None);
        let mut tags: Option<Condition> = None;
        for conjunct in conjuncts {
            match conjunct {
                Expression::Time { op, ms } => {
                    // Within the times a sample may have, so no arithmetic overflows.
                    let ms = ms.clamp(
                        modelwatch_core::Timestamp::MIN.as_millis() as f64,
                        modelwatch_core::Timestamp::MAX.as_millis() as f64,
                    );
                    let (ceil, after) = (ms.ceil() as i64, ms.floor() as i64 + 1);
                    let (from, until) = match op {
                        ">=" => (Some(ceil), None),
                        ">" => (Some(after), None),
                        "<=" => (None, Some(after)),
                        "<" => (None, Some(ceil)),
                        _ => (Some(ceil), Some(after)),
                    };
                    if let Some(from) = from {
                        start = Some(start.map_or(from, |s| s.max(from)));
                    }
                    if let Some(until) = until {
                        end = Some(end.map_or(until, |e| e.min(until)));
                    }
                }
                other => {
                    let condition = other.into_condition()?;
                    tags = Some(match tags {
                        None => condition,
                        Some(before) => Condition::And(Box::new(before), Box::new(condition)),
                    });
                }
            }
        }
        Ok((tags, start, end))
    }

    fn or(&mut self) -> Result<Expression, ParseError> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            let right = self.and()?;
            left = Expression::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expression, ParseError> {
        let mut left = self.comparison()?;
        while self.eat_keyword("AND") {
            let right = self.comparison()?;
            left = Expression::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expression, ParseError> {
        if self.eat_op("(") {
            let inner = self.or()?;
            self.op(")")?;
            return Ok(inner);
        }
        let key = match self.peek() {
            Some(Token::Ident { text, .. }) if text.starts_with('$') => {
                return fail(format!(
                    "{text} is a Grafana variable the query was sent with unreplaced"
                ))
            }
            Some(Token::Ident { text, .. }) => text.clone(),
            _ => return self.unexpected("a tag or time in the condition"),
        };
        let is_time = key.eq_ignore_ascii_case("time");
        self.name("a tag")?;
        let op = match self.next() {
            Some(Token::Op(op @ ("=" | "!=" | "<>" | "=~" | "!~" | "<" | "<=" | ">" | ">="))) => op,
            _ => {
                self.at -= 1;
                return self.unexpected("a comparison (=, !=, =~, !~, <, <=, >, >=)");
            }
        };
        if is_time {
            if matches!(op, "!=" | "<>" | "=~" | "!~") {
                return fail(format!("time {op} is not supported"));
            }
            let ms = self.time_expression()?;
            return Ok(Expression::Time { op, ms });
        }
        match (op, self.next()) {
            ("=", Some(Token::Str(value))) => Ok(Expression::Tag(Condition::Equal(key, value))),
            ("!=" | "<>", Some(Token::Str(value))) => {
                Ok(Expression::Tag(Condition::NotEqual(key, value)))
            }
            ("=~", Some(Token::Regex(text))) => {
                Ok(Expression::Tag(Condition::Matches(key, regex(&text)?)))
            }
            ("!~", Some(Token::Regex(text))) => {
                Ok(Expression::Tag(Condition::NotMatches(key, regex(&text)?)))
            }
            (_, Some(Token::Number(_) | Token::Duration { .. } | Token::Op("-"))) => fail(format!(
                "conditions on field values (\"{key}\" {op} a number) are not supported; \
                 compare tags with strings ('…') or regular expressions (/…/)"
            )),
            (_, Some(Token::Ident { text, .. })) if text.starts_with('$') => fail(format!(
                "{text} is a Grafana variable the query was sent with unreplaced"
            )),
            (_, Some(token)) => fail(format!(
                "found {} after \"{key}\" {op}, expected a string ('…') or, after =~ and !~, \
                 a regular expression (/…/)",
                token.describe()
            )),
            (_, None) => fail(format!("found the end of the query after \"{key}\" {op}")),
        }
    }

    /// `now()`, `now() - 6h`, `1700000000000ms`, `1700000000000000000` (ns),
    /// `'2024-05-01T00:00:00Z'`, each optionally `± duration`; in ms.
    fn time_expression(&mut self) -> Result<f64, ParseError> {
        let mut ms = match self.next() {
            Some(Token::Ident {
                text,
                quoted: false,
            }) if text.eq_ignore_ascii_case("now") => {
                self.op("(")?;
                self.op(")")?;
                self.now as f64
            }
            Some(Token::Duration { ms, .. }) => ms,
            Some(Token::Number(text)) => {
                let ns: i64 = text.parse().map_err(|_| {
                    ParseError(format!("{text} is not a time (an integer of nanoseconds)"))
                })?;
                ns as f64 / 1e6
            }
            Some(Token::Str(text)) => modelwatch_core::Timestamp::parse(&text)
                .map(|t| t.as_millis() as f64)
                .map_err(|_| ParseError(format!("'{text}' is not an RFC 3339 time")))?,
            Some(Token::Ident { text, .. }) if text.starts_with('$') => {
                return fail(format!(
                    "{text} is a Grafana variable the query was sent with unreplaced"
                ))
            }
            _ => {
                self.at -= 1;
                return self.unexpected("a time (now(), 1700000000000ms, '2024-05-01T00:00:00Z')");
            }
        };
        loop {
            let sign = if self.eat_op("+") {
                1.0
            } else if self.eat_op("-") {
                -1.0
            } else {
                break;
            };
            match self.next() {
                Some(Token::Duration { ms: by, .. }) => ms += sign * by,
                _ => {
                    self.at -= 1;
                    return self.unexpected("a duration (6h, 30m)");
                }
            }
        }
        Ok(ms)
    }
}

/// A condition before the time bounds are taken out of it.
enum Expression {
    Tag(Condition),
    Time { op: &'static str, ms: f64 },
    And(Box<Expression>, Box<Expression>),
    Or(Box<Expression>, Box<Expression>),
}

impl Expression {
    fn into_condition(self) -> Result<Condition, ParseError> {
        Ok(match self {
            Expression::Tag(condition) => condition,
            Expression::Time { .. } => {
                return fail(
                    "time conditions inside OR are not supported; AND them at the top level",
                )
            }
            Expression::And(a, b) => {
                Condition::And(Box::new(a.into_condition()?), Box::new(b.into_condition()?))
            }
            Expression::Or(a, b) => {
                Condition::Or(Box::new(a.into_condition()?), Box::new(b.into_condition()?))
            }
        })
    }
}

fn flatten_and(expression: Expression, out: &mut Vec<Expression>) {
    match expression {
        Expression::And(a, b) => {
            flatten_and(*a, out);
            flatten_and(*b, out);
        }
        other => out.push(other),
    }
}

fn number(text: &str) -> Result<f64, ParseError> {
    text.parse()
        .map_err(|_| ParseError(format!("{text} is not a number")))
}

fn regex(text: &str) -> Result<Regex, ParseError> {
    Regex::new(text).map_err(|e| ParseError(format!("/{text}/ is not a regular expression: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_714_564_800_000;

    fn select(text: &str) -> Select {
        match parse(text, NOW).expect(text).remove(0) {
            Statement::Select(select) => select,
            other => panic!("{other:?}"),
        }
    }

    fn error(text: &str) -> String {
        parse(text, NOW).expect_err(text).to_string()
    }

    #[test]
    fn grafana_s_default_query_with_a_relative_range() {
        let s = select(
            "SELECT mean(\"value\") FROM \"performance_metric\" WHERE (\"model_name\" = 'fraud') \
             AND time >= now() - 6h and time <= now() GROUP BY time(1m), \"model_version\" fill(null)",
        );
        assert_eq!(s.columns[0].aggregate, Some(Aggregate::Mean));
        assert_eq!(s.columns[0].field, "value");
        assert_eq!(s.measurement, "performance_metric");
        assert_eq!(s.start, Some(NOW - 6 * 3_600_000));
        assert_eq!(s.end, Some(NOW + 1));
        assert_eq!(s.interval, Some((60_000, 0)));
        assert_eq!(s.group_tags, GroupTags::Some(vec!["model_version".into()]));
        assert_eq!(s.fill, Fill::Null);
        let tag = |key: &str| {
            if key == "model_name" {
                "fraud".into()
            } else {
                String::new()
            }
        };
        assert!(s.condition.expect("a tag condition").matches(&tag));
    }

    #[test]
    fn epoch_millisecond_ranges_and_several_statements() {
        let statements = parse(
            "SELECT last(\"accuracy\") AS \"acc\", count(\"accuracy\") FROM \"autogen\".\"model_metrics\" \
             WHERE time >= 1700000000000ms and time <= 1700000060000ms GROUP BY time(30s) fill(none);\
             SELECT max(latency) FROM model_metrics WHERE \"model\" =~ /^(fraud|churn)$/ AND time > now() - 1h",
            NOW,
        )
        .expect("valid");
        assert_eq!(statements.len(), 2);
        let Statement::Select(first) = &statements[0] else {
            panic!()
        };
        assert_eq!(
            (first.start, first.end),
            (Some(1_700_000_000_000), Some(1_700_000_060_001))
        );
        assert_eq!(first.columns[0].alias.as_deref(), Some("acc"));
        assert_eq!(first.measurement, "model_metrics");
        assert_eq!(first.fill, Fill::None);
        let Statement::Select(second) = &statements[1] else {
            panic!()
        };
        assert_eq!(second.start, Some(NOW - 3_600_000 + 1));
        assert_eq!(second.interval, None);
    }

    #[test]
    fn show_statements_and_create_database() {
        let statements = parse(
            "SHOW MEASUREMENTS LIMIT 1; SHOW TAG KEYS FROM \"performance_metric\"; \
             SHOW TAG VALUES FROM \"model_metrics\" WITH KEY = \"version\" WHERE \"model\" = 'fraud'; \
             SHOW FIELD KEYS; SHOW DATABASES; CREATE DATABASE \"telegraf\"; \
             SHOW MEASUREMENTS WITH MEASUREMENT =~ /perf/ LIMIT 100; SHOW RETENTION POLICIES ON \"db\"",
            NOW,
        )
        .expect("valid");
        assert!(matches!(
            statements[0],
            Statement::ShowMeasurements { limit: Some(1), .. }
        ));
        assert!(
            matches!(&statements[2], Statement::ShowTagValues { keys: NameMatch::Names(k), condition: Some(_), .. } if k == &["version"])
        );
        assert!(matches!(&statements[5], Statement::CreateDatabase(name) if name == "telegraf"));
        assert!(matches!(
            &statements[6],
            Statement::ShowMeasurements {
                matching: Some(NameMatch::Regex(_)),
                ..
            }
        ));
        assert_eq!(statements.len(), 8);
    }

    #[test]
    fn what_is_not_supported_is_named() {
        for (query, says) in [
            (
                "SELECT percentile(\"value\", 95) FROM m",
                "function percentile() is not supported",
            ),
            ("SELECT * FROM m", "SELECT * is not supported"),
            (
                "SELECT mean(value) FROM m WHERE value > 0.5",
                "conditions on field values",
            ),
            (
                "SELECT mean(value) FROM m GROUP BY time(1m)",
                "require a WHERE time clause with a lower limit",
            ),
            ("DROP MEASUREMENT m", "DROP statements are not supported"),
            ("SHOW SERIES", "SHOW SERIES is not supported"),
            (
                "SELECT mean(value) FROM m WHERE time > now() - 1h OR model = 'a'",
                "time conditions inside OR",
            ),
            ("SELECT mean(value) * 100 FROM m", "arithmetic in SELECT"),
            (
                "SELECT mean(value) FROM m WHERE time > now() - 1h fill(linear)",
                "fill(linear) is not supported",
            ),
            ("SELECT value, mean(value) FROM m", "mixing aggregate"),
            (
                "SELECT mean(value) FROM m WHERE $timeFilter",
                "$timeFilter is a Grafana variable",
            ),
            ("SELECT mean(value) FROM m WHERE model = 'a", "unterminated"),
        ] {
            let message = error(query);
            assert!(message.contains(says), "{query}: {message}");
            assert!(message.starts_with("error parsing query: "), "{message}");
        }
    }

    #[test]
    fn times_as_strings_and_nanoseconds() {
        let s = select("SELECT \"value\" FROM m WHERE time >= '2024-05-01T12:00:00Z' AND time < 1714564860000000000");
        assert_eq!((s.start, s.end), (Some(NOW), Some(NOW + 60_000)));
        assert_eq!(s.columns[0].aggregate, None);
    }
}
