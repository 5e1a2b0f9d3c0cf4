//! The Flux that InfluxDB 2.x clients and Grafana's Flux data source send for time series
//! (`/api/v2/query`): a strict parser for a subset, and its evaluation over tables of
//! points (no Flux parser is published on crates.io apart from InfluxData's language
//! server, which brings the whole language). Pure: "now" is an argument, times are Unix
//! milliseconds.
//!
//! The subset, one pipeline:
//!
//! ```text
//! from(bucket: "any")
//!   |> range(start: -1h | 2024-05-01T00:00:00Z | 1714521600 [, stop: … | now()])
//!   |> filter(fn: (r) => r._measurement == "model_metrics" and r._field == "accuracy"
//!                        and (r.model == "fraud" or r.model =~ /^churn/))
//!   |> aggregateWindow(every: 5m, fn: mean [, createEmpty: false])
//!   |> mean() | last() | first() | min() | max() | count() | sum()
//!   |> limit(n: 10)
//!   |> yield(name: "x")
//! ```
//!
//! `filter` predicates compare a table's key columns (`_measurement`, `_field`, tags)
//! with `==`, `!=`, `=~`, `!~`, joined by `and`, `or` and parentheses. Anything else is an
//! error naming what is not supported.

use regex::Regex;

/// What went wrong, worded for the `message` of InfluxDB's error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FluxError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, FluxError> {
    Err(FluxError(message.into()))
}

/// A parsed query: the time range, the table filters and what is done to each table.
#[derive(Debug, Clone)]
pub struct Query {
    /// Inclusive start, in ms.
    pub start: i64,
    /// Exclusive stop, in ms.
    pub stop: i64,
    /// Every filter must hold for a table to be read.
    pub filters: Vec<Predicate>,
    pub steps: Vec<Step>,
    /// The `result` column's value: `yield`'s name, else `_result`.
    pub result: String,
}

/// A table function applied after `range` and `filter`, in order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// `aggregateWindow(every, fn, createEmpty)`: one row per window, `_time` its stop.
    Window {
        every: i64,
        function: Function,
        create_empty: bool,
    },
    /// A whole-table aggregate (`mean`, `count`, `sum`: the row loses `_time`) or
    /// selector (`first`, `last`, `min`, `max`: the selected row keeps it).
    Reduce(Function),
    Limit(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Mean,
    Sum,
    Count,
    Min,
    Max,
    First,
    Last,
}

impl Function {
    fn parse(name: &str) -> Option<Function> {
        Some(match name {
            "mean" => Function::Mean,
            "sum" => Function::Sum,
            "count" => Function::Count,
            "min" => Function::Min,
            "max" => Function::Max,
            "first" => Function::First,
            "last" => Function::Last,
            _ => return None,
        })
    }

    /// Selectors keep the selected row's time; aggregates drop it.
    pub fn is_selector(self) -> bool {
        matches!(
            self,
            Function::Min | Function::Max | Function::First | Function::Last
        )
    }

    /// The value of the points (in time order) under this function; `None` without points.
    fn apply(self, points: &[(i64, f64)]) -> Option<(i64, f64)> {
        let (first, last) = (points.first()?, points.last()?);
        Some(match self {
            Function::First => *first,
            Function::Last => *last,
            Function::Min => *points.iter().reduce(|a, b| if b.1 < a.1 { b } else { a })?,
            Function::Max => *points.iter().reduce(|a, b| if b.1 > a.1 { b } else { a })?,
            Function::Count => (last.0, points.len() as f64),
            Function::Sum => (last.0, points.iter().map(|p| p.1).sum()),
            Function::Mean => (
                last.0,
                points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64,
            ),
        })
    }
}

/// A condition on a table's key columns.
#[derive(Debug, Clone)]
pub enum Predicate {
    Equal(String, String),
    NotEqual(String, String),
    Matches(String, Regex),
    NotMatches(String, Regex),
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
}

impl Predicate {
    /// Whether a table whose column `column` has `value(column)` (`None`: no such
    /// column) matches; Flux's comparisons with a missing column are false.
    pub fn matches(&self, value: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Predicate::Equal(column, expected) => value(column).is_some_and(|v| v == *expected),
            Predicate::NotEqual(column, expected) => value(column).is_some_and(|v| v != *expected),
            Predicate::Matches(column, regex) => value(column).is_some_and(|v| regex.is_match(&v)),
            Predicate::NotMatches(column, regex) => {
                value(column).is_some_and(|v| !regex.is_match(&v))
            }
            Predicate::And(a, b) => a.matches(value) && b.matches(value),
            Predicate::Or(a, b) => a.matches(value) || b.matches(value),
        }
    }
}

/// One table's rows after the steps: `(time, value)`, the time `None` once an aggregate
/// dropped it, the value `None` for an empty window.
pub type Rows = Vec<(Option<i64>, Option<f64>)>;

impl Query {
    /// Runs the steps over one table's points (in time order, within the range).
    pub fn evaluate(&self, points: &[(i64, f64)]) -> Result<Rows, FluxError> {
        let mut rows: Rows = points.iter().map(|(t, v)| (Some(*t), Some(*v))).collect();
        for step in &self.steps {
            rows = match *step {
                Step::Window {
                    every,
                    function,
                    create_empty,
                } => self.windows(&rows, every, function, create_empty)?,
                Step::Reduce(function) => {
                    let known: Vec<(i64, f64)> = rows
                        .iter()
                        .filter_map(|(t, v)| Some((t.unwrap_or(self.stop), (*v)?)))
                        .collect();
                    match function.apply(&known) {
                        Some((t, v)) => vec![(function.is_selector().then_some(t), Some(v))],
                        // Flux's aggregates give a row for an empty table (count 0, a
                        // null mean); its selectors give none.
                        None if function == Function::Count => vec![(None, Some(0.0))],
                        None if function.is_selector() => Vec::new(),
                        None => vec![(None, None)],
                    }
                }
                Step::Limit(n) => rows.into_iter().take(n).collect(),
            };
        }
        Ok(rows)
    }

    fn windows(
        &self,
        rows: &Rows,
        every: i64,
        function: Function,
        create_empty: bool,
    ) -> Result<Rows, FluxError> {
        let window_of = |t: i64| t.div_euclid(every) * every;
        let first = window_of(self.start);
        let count = (self.stop - first + every - 1).div_euclid(every);
        if create_empty && count > super::MAX_BUCKETS {
            return fail(format!(
                "aggregateWindow(every: {every}ms) over this range makes {count} windows, more \
                 than {}; use a longer period, a shorter range or createEmpty: false",
                super::MAX_BUCKETS
            ));
        }
        let mut by_window: std::collections::BTreeMap<i64, Vec<(i64, f64)>> =
            std::collections::BTreeMap::new();
        for (t, v) in rows {
            if let (Some(t), Some(v)) = (t, v) {
                by_window.entry(window_of(*t)).or_default().push((*t, *v));
            }
        }
        let stop_of = |window: i64| (window + every).min(self.stop);
        if !create_empty {
            return Ok(by_window
                .into_iter()
                .filter_map(|(window, points)| {
                    let (_, v) = function.apply(&points)?;
                    Some((Some(stop_of(window)), Some(v)))
                })
                .collect());
        }
        Ok((0..count)
            .map(|i| {
                let window = first + i * every;
                let value = match by_window.get(&window) {
                    Some(points) => function.apply(points).map(|(_, v)| v),
                    None if function == Function::Count => Some(0.0),
                    None => None,
                };
                (Some(stop_of(window)), value)
            })
            .collect())
    }
}

// ---- tokens ----

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Regex(String),
    /// A number, possibly negative, as written.
    Number(String),
    /// A duration, possibly negative, in ms.
    Duration(i64),
    /// An RFC 3339 time, in ms.
    Time(i64),
    Pipe,
    Arrow,
    Op(&'static str),
    Punct(char),
}

fn duration_unit(unit: &str) -> Option<i64> {
    Some(match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return None,
    })
}

fn tokens(text: &str) -> Result<Vec<Token>, FluxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    // Whether a `/` here starts a regex (after an operator) rather than dividing.
    let regex_may_follow = |out: &Vec<Token>| matches!(out.last(), Some(Token::Op(_)));
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        if rest == "|>" {
            out.push(Token::Pipe);
            i += 2;
            continue;
        }
        if rest == "=>" {
            out.push(Token::Arrow);
            i += 2;
            continue;
        }
        if let Some(op) = ["==", "!=", "=~", "!~", "<=", ">="]
            .into_iter()
            .find(|op| rest == *op)
        {
            out.push(Token::Op(op));
            i += 2;
            continue;
        }
        if let Some(op) = ["<", ">"].into_iter().find(|op| rest.starts_with(*op)) {
            // Read so that a comparison outside the subset is named, not a stray character.
            out.push(Token::Op(op));
            i += 1;
            continue;
        }
        if c == '"' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return fail("unterminated string"),
                    Some('"') => break,
                    Some('\\') => {
                        let escaped = chars.get(i + 1).copied();
                        match escaped {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some(e) => value.push(e),
                            None => return fail("unterminated string"),
                        }
                        i += 2;
                        continue;
                    }
                    Some(ch) => value.push(*ch),
                }
                i += 1;
            }
            out.push(Token::Str(value));
            i += 1;
            continue;
        }
        if c == '/' && regex_may_follow(&out) {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return fail("unterminated regular expression"),
                    Some('/') => break,
                    Some('\\') if chars.get(i + 1) == Some(&'/') => {
                        value.push('/');
                        i += 2;
                        continue;
                    }
                    Some(ch) => value.push(*ch),
                }
                i += 1;
            }
            out.push(Token::Regex(value));
            i += 1;
            continue;
        }
        let negative_number = c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit() || negative_number {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | ':' | '-' | '+'))
            {
                // A minus ends a number unless it is inside a date (2024-05-01T…) or a
                // time's offset (…T12:00:00-05:00).
                let so_far = &chars[start..i];
                let in_date = so_far.iter().all(|c| c.is_ascii_digit() || *c == '-')
                    && so_far.first().is_some_and(char::is_ascii_digit);
                if chars[i] == '-' && !in_date && !so_far.contains(&'T') {
                    break;
                }
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(number_like(&word)?);
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        if "(),:.[]".contains(c) {
            out.push(Token::Punct(c));
            i += 1;
            continue;
        }
        return fail(format!("unexpected {c:?}"));
    }
    Ok(out)
}

/// A number, a duration (`-1h30m`) or an RFC 3339 time.
fn number_like(word: &str) -> Result<Token, FluxError> {
    if word.contains('T') && word.contains(':') {
        return modelwatch_core::Timestamp::parse(word)
            .map(|t| Token::Time(t.as_millis()))
            .or_else(|e| fail(format!("{word:?} is not an RFC 3339 time: {e}")));
    }
    if word
        .chars()
        .all(|c| c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Ok(Token::Number(word.to_owned()));
    }
    let (sign, digits) = match word.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, word),
    };
    let mut total: i64 = 0;
    let mut rest = digits;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (amount, after) = rest.split_at(split);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let (Ok(amount), Some(per)) = (amount.parse::<i64>(), duration_unit(unit)) else {
            return fail(format!(
                "{word:?} is not a duration this server reads (units ms, s, m, h, d, w)"
            ));
        };
        total = total.saturating_add(amount.saturating_mul(per));
        rest = next;
    }
    Ok(Token::Duration(sign * total))
}

// ---- parser ----

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    now: i64,
}

/// An argument's value.
#[derive(Debug)]
enum Argument {
    Str(String),
    Number(f64),
    /// A time in ms (a duration relative to now already resolved).
    Time(i64),
    Duration(i64),
    Name(String),
    Bool(bool),
    Predicate(Predicate),
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

    fn expect_punct(&mut self, c: char) -> Result<(), FluxError> {
        match self.next() {
            Some(Token::Punct(p)) if p == c => Ok(()),
            other => fail(format!("expected {c:?}, found {}", shown(other.as_ref()))),
        }
    }

    fn ident(&mut self) -> Result<String, FluxError> {
        match self.next() {
            Some(Token::Ident(name)) => Ok(name),
            other => fail(format!("expected a name, found {}", shown(other.as_ref()))),
        }
    }

    /// `name(arg: value, …)`: the name and the arguments.
    fn call(&mut self) -> Result<(String, Vec<(String, Argument)>), FluxError> {
        let name = self.ident()?;
        self.expect_punct('(')?;
        let mut arguments = Vec::new();
        if self.peek() == Some(&Token::Punct(')')) {
            self.at += 1;
            return Ok((name, arguments));
        }
        loop {
            let key = self.ident()?;
            self.expect_punct(':')?;
            let value = self.argument()?;
            arguments.push((key, value));
            match self.next() {
                Some(Token::Punct(',')) => {}
                Some(Token::Punct(')')) => break,
                other => {
                    return fail(format!(
                        "expected ',' or ')' in {name}(), found {}",
                        shown(other.as_ref())
                    ))
                }
            }
        }
        Ok((name, arguments))
    }

    fn argument(&mut self) -> Result<Argument, FluxError> {
        match self.next() {
            Some(Token::Str(text)) => Ok(Argument::Str(text)),
            Some(Token::Number(text)) => text
                .parse()
                .map(Argument::Number)
                .or_else(|_| fail(format!("{text:?} is not a number"))),
            Some(Token::Duration(ms)) => Ok(Argument::Duration(ms)),
            Some(Token::Time(ms)) => Ok(Argument::Time(ms)),
            Some(Token::Ident(name)) if name == "now" => {
                self.expect_punct('(')?;
                self.expect_punct(')')?;
                Ok(Argument::Time(self.now))
            }
            Some(Token::Ident(name)) if name == "true" || name == "false" => {
                Ok(Argument::Bool(name == "true"))
            }
            Some(Token::Ident(name)) if name == "v" => fail(
                "v.timeRangeStart and the other dashboard variables must be substituted by the \
                 client (Grafana does) before the query is sent",
            ),
            Some(Token::Ident(name)) => Ok(Argument::Name(name)),
            Some(Token::Punct('(')) => {
                // fn: (r) => predicate
                let parameter = self.ident()?;
                self.expect_punct(')')?;
                match self.next() {
                    Some(Token::Arrow) => {}
                    other => return fail(format!("expected =>, found {}", shown(other.as_ref()))),
                }
                Ok(Argument::Predicate(self.or(&parameter)?))
            }
            other => fail(format!("unexpected {}", shown(other.as_ref()))),
        }
    }

    fn or(&mut self, row: &str) -> Result<Predicate, FluxError> {
        let mut left = self.and(row)?;
        while matches!(self.peek(), Some(Token::Ident(word)) if word == "or") {
            self.at += 1;
            left = Predicate::Or(Box::new(left), Box::new(self.and(row)?));
        }
        Ok(left)
    }

    fn and(&mut self, row: &str) -> Result<Predicate, FluxError> {
        let mut left = self.comparison(row)?;
        while matches!(self.peek(), Some(Token::Ident(word)) if word == "and") {
            self.at += 1;
            left = Predicate::And(Box::new(left), Box::new(self.comparison(row)?));
        }
        Ok(left)
    }

    fn comparison(&mut self, row: &str) -> Result<Predicate, FluxError> {
        if self.peek() == Some(&Token::Punct('(')) {
            self.at += 1;
            let inner = self.or(row)?;
            self.expect_punct(')')?;
            return Ok(inner);
        }
        match self.next() {
            Some(Token::Ident(name)) if name == row => {}
            other => {
                return fail(format!(
                    "a filter compares {row}.column with a string or a regular expression; \
                     found {}",
                    shown(other.as_ref())
                ))
            }
        }
        let column = match self.next() {
            Some(Token::Punct('.')) => self.ident()?,
            Some(Token::Punct('[')) => {
                let Some(Token::Str(column)) = self.next() else {
                    return fail("expected a column name in quotes after [");
                };
                self.expect_punct(']')?;
                column
            }
            other => {
                return fail(format!(
                    "expected . after {row}, found {}",
                    shown(other.as_ref())
                ))
            }
        };
        if column == "_value" || column == "_time" {
            return fail(format!(
                "filtering on {column} is not supported: filter on _measurement, _field and tags"
            ));
        }
        let op = match self.next() {
            Some(Token::Op(op)) => op,
            other => {
                return fail(format!(
                    "expected ==, !=, =~ or !~ after {row}.{column}, found {}",
                    shown(other.as_ref())
                ))
            }
        };
        let regex = |pattern: &str| {
            Regex::new(pattern)
                .or_else(|e| fail(format!("bad regular expression /{pattern}/: {e}")))
        };
        Ok(match (op, self.next()) {
            ("==", Some(Token::Str(value))) => Predicate::Equal(column, value),
            ("!=", Some(Token::Str(value))) => Predicate::NotEqual(column, value),
            ("=~", Some(Token::Regex(pattern))) => Predicate::Matches(column, regex(&pattern)?),
            ("!~", Some(Token::Regex(pattern))) => Predicate::NotMatches(column, regex(&pattern)?),
            (op, other) => {
                return fail(format!(
                    "{row}.{column} {op} takes a {}, found {}",
                    if op.contains('~') {
                        "regular expression"
                    } else {
                        "string"
                    },
                    shown(other.as_ref())
                ))
            }
        })
    }
}

fn shown(token: Option<&Token>) -> String {
    match token {
        None => "the end of the query".into(),
        Some(Token::Ident(name)) => format!("{name:?}"),
        Some(Token::Str(text)) => format!("the string {text:?}"),
        Some(Token::Regex(text)) => format!("/{text}/"),
        Some(Token::Number(text)) => text.clone(),
        Some(Token::Duration(ms)) => format!("a duration of {ms} ms"),
        Some(Token::Time(ms)) => format!("the time {ms} ms"),
        Some(Token::Pipe) => "|>".into(),
        Some(Token::Arrow) => "=>".into(),
        Some(Token::Op(op)) => (*op).into(),
        Some(Token::Punct(c)) => format!("{c:?}"),
    }
}

/// Parses a query at time `now` (ms).
pub fn parse(text: &str, now: i64) -> Result<Query, FluxError> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
        now,
    };
    let (name, _) = parser.call()?;
    if name != "from" {
        return fail(format!(
            "a query starts with from(bucket: …); found {name}()"
        ));
    }
    let mut range: Option<(i64, i64)> = None;
    let mut query = Query {
        start: 0,
        stop: now,
        filters: Vec::new(),
        steps: Vec::new(),
        result: "_result".into(),
    };
    while parser.peek().is_some() {
        match parser.next() {
            Some(Token::Pipe) => {}
            other => return fail(format!("expected |>, found {}", shown(other.as_ref()))),
        }
        if let Some(Token::Ident(name)) = parser.peek() {
            let known = ["range", "filter", "aggregateWindow", "limit", "yield"];
            if !known.contains(&name.as_str()) && Function::parse(name).is_none() {
                return fail(format!(
                    "{name}() is not supported; this server reads range, filter, \
                     aggregateWindow, mean, sum, count, min, max, first, last, limit and yield"
                ));
            }
        }
        let (name, mut arguments) = parser.call()?;
        let mut take = |key: &str| {
            arguments
                .iter()
                .position(|(k, _)| k == key)
                .map(|i| arguments.remove(i).1)
        };
        match name.as_str() {
            "range" => {
                let time = |argument: Option<Argument>, default: i64| match argument {
                    None => Ok(default),
                    Some(Argument::Time(ms)) => Ok(ms),
                    Some(Argument::Duration(ms)) => Ok(now.saturating_add(ms)),
                    // Flux reads an integer time as Unix seconds.
                    Some(Argument::Number(seconds)) => Ok((seconds * 1000.0) as i64),
                    Some(other) => fail(format!("range() takes times or durations, not {other:?}")),
                };
                let Some(start) = take("start") else {
                    return fail("range() needs start");
                };
                let start = time(Some(start), 0)?;
                let stop = time(take("stop"), now)?;
                range = Some((start, stop));
            }
            "filter" => match take("fn") {
                Some(Argument::Predicate(predicate)) => {
                    take("onEmpty");
                    query.filters.push(predicate);
                }
                _ => return fail("filter() needs fn: (r) => …"),
            },
            "aggregateWindow" => {
                let Some(Argument::Duration(every)) = take("every") else {
                    return fail("aggregateWindow() needs every: a positive duration");
                };
                let Some(Argument::Name(function)) = take("fn") else {
                    return fail(
                        "aggregateWindow() needs fn: mean, sum, count, min, max, first or last",
                    );
                };
                let Some(function) = Function::parse(&function) else {
                    return fail(format!(
                        "aggregateWindow(fn: {function}) is not supported: use mean, sum, count, \
                         min, max, first or last"
                    ));
                };
                if every <= 0 {
                    return fail("aggregateWindow() needs every: a positive duration");
                }
                let create_empty = match take("createEmpty") {
                    None => true,
                    Some(Argument::Bool(value)) => value,
                    Some(_) => return fail("createEmpty is true or false"),
                };
                query.steps.push(Step::Window {
                    every,
                    function,
                    create_empty,
                });
            }
            "limit" => match take("n") {
                Some(Argument::Number(n)) if n >= 0.0 => query.steps.push(Step::Limit(n as usize)),
                _ => return fail("limit() needs n: a count"),
            },
            "yield" => {
                if let Some(Argument::Str(name)) = take("name") {
                    query.result = name;
                }
            }
            other => match Function::parse(other) {
                Some(function) => query.steps.push(Step::Reduce(function)),
                None => return fail(format!("{other}() is not supported")),
            },
        }
        if let Some((key, _)) = arguments.first() {
            return fail(format!("{name}() does not take {key}"));
        }
    }
    let Some((start, stop)) = range else {
        return fail("a query needs range(start: …) after from()");
    };
    query.start = start;
    query.stop = stop;
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_714_564_800_000; // 2024-05-01T12:00:00Z

    fn table(query: &Query) -> impl Fn(&[(&str, &str)]) -> bool + '_ {
        move |columns: &[(&str, &str)]| {
            query.filters.iter().all(|p| {
                p.matches(&|name: &str| {
                    columns
                        .iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| (*v).to_owned())
                })
            })
        }
    }

    #[test]
    fn grafana_s_query_parses_into_a_range_filters_and_a_window() {
        let query = parse(
            r#"from(bucket: "modelwatch")
              |> range(start: 2024-05-01T11:00:00Z, stop: 2024-05-01T12:00:00Z)
              |> filter(fn: (r) => r["_measurement"] == "model_metrics")
              |> filter(fn: (r) => r._field == "accuracy" and (r.model == "fraud" or r.model =~ /^churn/))
              |> aggregateWindow(every: 5m, fn: mean, createEmpty: false)
              |> yield(name: "mean")"#,
            NOW,
        )
        .expect("parses");
        assert_eq!((query.start, query.stop), (NOW - 3_600_000, NOW));
        assert_eq!(query.result, "mean");
        assert_eq!(
            query.steps,
            [Step::Window {
                every: 300_000,
                function: Function::Mean,
                create_empty: false
            }]
        );
        let matches = table(&query);
        let key = |model| {
            [
                ("_measurement", "model_metrics"),
                ("_field", "accuracy"),
                ("model", model),
            ]
        };
        assert!(matches(&key("fraud")));
        assert!(matches(&key("churn_v2")));
        assert!(!matches(&key("spam")));
        assert!(!matches(&[
            ("_measurement", "model_metrics"),
            ("_field", "latency"),
            ("model", "fraud")
        ]));
    }

    #[test]
    fn relative_ranges_are_from_now() {
        let query =
            parse(r#"from(bucket:"b") |> range(start: -1h30m) |> last()"#, NOW).expect("parses");
        assert_eq!((query.start, query.stop), (NOW - 5_400_000, NOW));
        assert_eq!(query.steps, [Step::Reduce(Function::Last)]);
        let seconds =
            parse(r#"from(bucket:"b") |> range(start: 0, stop: now())"#, NOW).expect("parses");
        assert_eq!((seconds.start, seconds.stop), (0, NOW));
    }

    /// The query over the first 30 ms of 1970 (Flux reads integer times as seconds).
    fn over_30_ms(steps: &str) -> Query {
        let mut query = parse(
            &format!(r#"from(bucket:"b") |> range(start: 0) |> {steps}"#),
            NOW,
        )
        .expect("parses");
        query.stop = 30;
        query
    }

    #[test]
    fn windows_are_stamped_with_their_stop_and_empty_ones_are_null() {
        let points = [(1, 1.0), (3, 3.0), (25, 5.0)];
        let rows = over_30_ms("aggregateWindow(every: 10ms, fn: mean)")
            .evaluate(&points)
            .expect("evaluates");
        assert_eq!(
            rows,
            [
                (Some(10), Some(2.0)),
                (Some(20), None),
                (Some(30), Some(5.0))
            ]
        );
        let counted = over_30_ms("aggregateWindow(every: 10ms, fn: count, createEmpty: false)");
        assert_eq!(
            counted.evaluate(&points).expect("evaluates"),
            [(Some(10), Some(2.0)), (Some(30), Some(1.0))]
        );
    }

    #[test]
    fn times_and_offsets_are_read_as_rfc_3339() {
        let query = parse(
            r#"from(bucket:"b") |> range(start: 2024-05-01T07:00:00-05:00, stop: 2024-05-01T12:00:00.5Z)"#,
            NOW,
        )
        .expect("parses");
        assert_eq!((query.start, query.stop), (NOW, NOW + 500));
    }

    #[test]
    fn selectors_keep_the_row_s_time_and_aggregates_drop_it() {
        let points = [(1, 4.0), (2, 9.0), (3, 1.0)];
        let run = |step: &str| over_30_ms(step).evaluate(&points).expect("evaluates");
        assert_eq!(run("max()"), [(Some(2), Some(9.0))]);
        assert_eq!(run("last()"), [(Some(3), Some(1.0))]);
        assert_eq!(run("mean()"), [(None, Some(14.0 / 3.0))]);
        assert_eq!(run("count()"), [(None, Some(3.0))]);
        assert_eq!(
            run("limit(n: 2)"),
            [(Some(1), Some(4.0)), (Some(2), Some(9.0))]
        );
    }

    #[test]
    fn what_is_outside_the_subset_is_named() {
        let error = |text: &str| parse(text, NOW).expect_err(text).0;
        assert!(
            error(r#"from(bucket:"b") |> range(start: -1h) |> pivot(rowKey: ["_time"])"#)
                .contains("pivot() is not supported")
        );
        assert!(
            error(r#"from(bucket:"b") |> range(start: v.timeRangeStart)"#)
                .contains("v.timeRangeStart")
        );
        assert!(error(
            r#"from(bucket:"b") |> range(start: -1h) |> filter(fn: (r) => r._value > 1)"#
        )
        .contains("_value"));
        assert!(
            error(r#"from(bucket:"b") |> filter(fn: (r) => r.model == "x")"#).contains("range(")
        );
        assert!(error(r#"buckets()"#).contains("from(bucket"));
        assert!(error(r#"from(bucket:"b") |> range(start: -1h, step: 5)"#).contains("step"));
        assert!(error(r#"from(bucket:"b") |> range(start: -1fortnight)"#).contains("duration"));
    }
}
