//! The PromQL subset modelwatch answers, evaluated purely: a query is parsed (by the
//! `promql-parser` crate) into a [`Query`] of the nodes modelwatch supports, which names
//! the [`Selector`]s whose series it needs; the caller reads those series and
//! [`instant`] / [`range`] compute the answer from them. No I/O and no clock here.
//!
//! The subset: selectors with `=`, `!=`, `=~`, `!~`; `offset`; `avg`, `min`, `max`, `sum`,
//! `count`, `last` and `quantile` `_over_time`; the aggregations `sum`, `avg`, `min`,
//! `max`, `count` and `group` with `by` or `without`; arithmetic and comparisons between
//! a vector and a scalar or two scalars; unary minus; number literals. Anything else is a
//! [`QueryError::Unsupported`] that names it. Semantics follow Prometheus: an instant
//! selector takes each series' latest sample no older than the lookback (5 minutes by
//! default), a range selector the samples in `(t - range, t]`, and functions, arithmetic
//! and aggregations drop the metric name.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::Arc;

use modelwatch_core::WindowStats;
use promql_parser::label::{Matcher, METRIC_NAME};
use promql_parser::parser::{self, Expr, LabelModifier, Offset};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// A series' labels, the metric name under `__name__`, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// Why a query cannot be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The text is not PromQL.
    #[error("invalid parameter \"query\": {0}")]
    Parse(String),
    /// PromQL that modelwatch does not evaluate; names what.
    #[error("{0} is not supported by modelwatch (it answers a subset of PromQL: see the README)")]
    Unsupported(String),
    /// The query is valid but its evaluation failed (Prometheus's `execution` errors).
    #[error("{0}")]
    Execution(String),
}

/// One vector selector of a query: the series it matches, and how far back it reads.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Every matcher, the metric name's as one on `__name__`.
    pub matchers: Vec<Matcher>,
    /// `offset`, in milliseconds (negative for a negative offset).
    pub offset_ms: i64,
    /// The range of a range selector (`x[5m]`); `None` for an instant selector.
    pub range_ms: Option<i64>,
}

impl Selector {
    /// Whether a series with these labels is selected (a missing label is empty).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| m.is_match(labels.get(&m.name).map_or("", String::as_str)))
    }

    /// Whether a series whose label `name` is `value` may be selected, from the matchers
    /// on `name` alone (to skip a whole family of series before building their labels).
    pub fn may_match(&self, name: &str, value: &str) -> bool {
        self.matchers
            .iter()
            .filter(|m| m.name == name)
            .all(|m| m.is_match(value))
    }

    /// The value an equality matcher on `name` requires, if there is one.
    pub fn equal(&self, name: &str) -> Option<&str> {
        self.matchers
            .iter()
            .find(|m| m.name == name && m.op == promql_parser::label::MatchOp::Equal)
            .map(|m| m.value.as_str())
    }

    /// The times, in ms and both ends included, whose samples evaluating at `steps`
    /// may read.
    pub fn window(&self, steps: Steps, lookback_ms: i64) -> (i64, i64) {
        let back = self.range_ms.unwrap_or(lookback_ms);
        (
            steps
                .start
                .saturating_sub(self.offset_ms)
                .saturating_sub(back),
            steps.end.saturating_sub(self.offset_ms),
        )
    }
}

/// The evaluation times: `start`, `start + step`, … up to `end` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    pub start: i64,
    pub end: i64,
    /// Positive.
    pub step: i64,
}

impl Steps {
    /// One evaluation at `t`.
    pub fn at(t: i64) -> Steps {
        Steps {
            start: t,
            end: t,
            step: 1,
        }
    }

    /// How many evaluation times there are.
    pub fn count(&self) -> i64 {
        if self.end < self.start {
            0
        } else {
            (self.end - self.start) / self.step + 1
        }
    }

    fn times(self) -> impl Iterator<Item = i64> {
        (0..self.count()).map(move |i| self.start + i * self.step)
    }
}

/// The samples of one series a selector read.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// Stored points, in time order (ms, value).
    Points(Vec<(i64, f64)>),
    /// 1 from `from` until `until` (excluded; `None`: still going): an alert's `ALERTS`
    /// series, which Prometheus would have sampled at each rule evaluation.
    Active { from: i64, until: Option<i64> },
    /// The series already reduced by the store over exactly the window the one
    /// `*_over_time` that reads it evaluates (see [`Query::reduced_by_store`]).
    Window(WindowStats),
    /// A series computed at evaluation times, in time order (ms, value; `None`: absent
    /// from then), each value holding until the next (no lookback bound): a version's
    /// health, graded as at each time.
    Graded(Vec<(i64, Option<f64>)>),
}

/// A series a selector read.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Arc<Labels>,
    pub samples: Samples,
}

/// A parsed query in the supported subset.
#[derive(Debug, Clone)]
pub struct Query {
    root: Node,
    selectors: Vec<Selector>,
}

/// The value of an expression at one time.
#[derive(Debug, Clone, PartialEq)]
pub enum Instant {
    Scalar(f64),
    Vector(Vec<(Arc<Labels>, f64)>),
}

/// Each series of a range query's answer with its (time, value) points, by labels.
pub type Matrix = Vec<(Arc<Labels>, Vec<(i64, f64)>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Scalar,
    Vector,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OverTime {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Last,
    Quantile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregation {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
}

#[derive(Debug, Clone, PartialEq)]
enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl Operator {
    fn is_comparison(self) -> bool {
        matches!(
            self,
            Operator::Eq | Operator::Ne | Operator::Gt | Operator::Lt | Operator::Ge | Operator::Le
        )
    }

    fn apply(self, a: f64, b: f64) -> f64 {
        let truth = |t: bool| if t { 1.0 } else { 0.0 };
        match self {
            Operator::Add => a + b,
            Operator::Sub => a - b,
            Operator::Mul => a * b,
            Operator::Div => a / b,
            Operator::Mod => a % b,
            Operator::Pow => a.powf(b),
            Operator::Eq => truth(a == b),
            Operator::Ne => truth(a != b),
            Operator::Gt => truth(a > b),
            Operator::Lt => truth(a < b),
            Operator::Ge => truth(a >= b),
            Operator::Le => truth(a <= b),
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Number(f64),
    /// An instant selector: index into `Query::selectors`.
    Selector(usize),
    OverTime {
        function: OverTime,
        /// `quantile_over_time`'s φ.
        parameter: Option<Box<Node>>,
        selector: usize,
    },
    Aggregate {
        op: Aggregation,
        grouping: Grouping,
        inner: Box<Node>,
    },
    Binary {
        op: Operator,
        lhs: Box<Node>,
        rhs: Box<Node>,
        /// `bool`: a comparison gives 0 or 1 instead of filtering.
        returns_bool: bool,
    },
    Negate(Box<Node>),
}

impl Node {
    fn kind(&self) -> Kind {
        match self {
            Node::Number(_) => Kind::Scalar,
            Node::Selector(_) | Node::OverTime { .. } | Node::Aggregate { .. } => Kind::Vector,
            Node::Binary { lhs, rhs, .. } => {
                if lhs.kind() == Kind::Scalar && rhs.kind() == Kind::Scalar {
                    Kind::Scalar
                } else {
                    Kind::Vector
                }
            }
            Node::Negate(inner) => inner.kind(),
        }
    }
}

impl Query {
    /// Parses PromQL and checks it is in the subset.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let expr = parser::parse(text).map_err(QueryError::Parse)?;
        let mut query = Query {
            root: Node::Number(0.0),
            selectors: Vec::new(),
        };
        query.root = query.node(&expr)?;
        Ok(query)
    }

    /// The selectors whose series [`instant`] and [`range`] take, in this order.
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// The selector, when the query is nothing but one instant selector (`match[]`).
    pub fn as_selector(&self) -> Option<&Selector> {
        match self.root {
            Node::Selector(index) => self.selectors.get(index),
            _ => None,
        }
    }

    /// Whether selector `index` is read by nothing but one `*_over_time` that the
    /// store's per-window statistics answer (every function but `quantile_over_time`),
    /// so an instant query can ask the store for one [`WindowStats`] per series instead
    /// of reading their points.
    pub fn reduced_by_store(&self, index: usize) -> bool {
        fn reads(node: &Node, index: usize) -> Option<bool> {
            match node {
                Node::Number(_) => None,
                Node::Selector(i) => (*i == index).then_some(false),
                Node::OverTime {
                    function,
                    parameter,
                    selector,
                } => {
                    if *selector == index {
                        return Some(*function != OverTime::Quantile);
                    }
                    parameter.as_deref().and_then(|p| reads(p, index))
                }
                Node::Aggregate { inner, .. } | Node::Negate(inner) => reads(inner, index),
                Node::Binary { lhs, rhs, .. } => reads(lhs, index).or_else(|| reads(rhs, index)),
            }
        }
        reads(&self.root, index).unwrap_or(false)
    }

    /// Whether the answer is a scalar.
    pub fn is_scalar(&self) -> bool {
        self.root.kind() == Kind::Scalar
    }

    fn selector(
        &mut self,
        vs: &parser::VectorSelector,
        range: Option<std::time::Duration>,
    ) -> Result<usize, QueryError> {
        if vs.at.is_some() {
            return Err(QueryError::Unsupported("the @ modifier".into()));
        }
        if !vs.matchers.or_matchers.is_empty() {
            return Err(QueryError::Unsupported("`or` inside a selector".into()));
        }
        let mut matchers = vs.matchers.matchers.clone();
        if let Some(name) = &vs.name {
            if !matchers.iter().any(|m| m.name == METRIC_NAME) {
                matchers.push(Matcher::new(
                    promql_parser::label::MatchOp::Equal,
                    METRIC_NAME,
                    name,
                ));
            }
        }
        let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let offset_ms = match &vs.offset {
            None => 0,
            Some(Offset::Pos(d)) => millis(*d),
            Some(Offset::Neg(d)) => -millis(*d),
        };
        self.selectors.push(Selector {
            matchers,
            offset_ms,
            range_ms: range.map(millis),
        });
        Ok(self.selectors.len() - 1)
    }

    fn node(&mut self, expr: &Expr) -> Result<Node, QueryError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Node::Number(n.val)),
            Expr::Paren(p) => self.node(&p.expr),
            Expr::Unary(u) => Ok(Node::Negate(Box::new(self.node(&u.expr)?))),
            Expr::VectorSelector(vs) => Ok(Node::Selector(self.selector(vs, None)?)),
            Expr::MatrixSelector(_) => Err(QueryError::Unsupported(
                "a range vector as the result (wrap it in a *_over_time function)".into(),
            )),
            Expr::StringLiteral(_) => Err(QueryError::Unsupported("a string result".into())),
            Expr::Subquery(_) => Err(QueryError::Unsupported("a subquery".into())),
            Expr::Extension(_) => Err(QueryError::Unsupported("an extension".into())),
            Expr::Call(call) => self.call(call),
            Expr::Aggregate(aggregate) => self.aggregate(aggregate),
            Expr::Binary(binary) => self.binary(binary),
        }
    }

    fn call(&mut self, call: &parser::Call) -> Result<Node, QueryError> {
        let function = match call.func.name {
            "avg_over_time" => OverTime::Avg,
            "min_over_time" => OverTime::Min,
            "max_over_time" => OverTime::Max,
            "sum_over_time" => OverTime::Sum,
            "count_over_time" => OverTime::Count,
            "last_over_time" => OverTime::Last,
            "quantile_over_time" => OverTime::Quantile,
            other => {
                return Err(QueryError::Unsupported(format!("the function {other}()")));
            }
        };
        let args = &call.args.args;
        let (parameter, series) = match (function, args.as_slice()) {
            (OverTime::Quantile, [phi, series]) => {
                let phi = self.node(phi)?;
                if phi.kind() != Kind::Scalar {
                    return Err(QueryError::Parse(
                        "quantile_over_time's first argument must be a scalar".into(),
                    ));
                }
                (Some(Box::new(phi)), series)
            }
            (OverTime::Quantile, _) => {
                return Err(QueryError::Parse(
                    "quantile_over_time takes a scalar and a range vector".into(),
                ))
            }
            (_, [series]) => (None, series),
            _ => {
                return Err(QueryError::Parse(format!(
                    "{} takes one range vector",
                    call.func.name
                )))
            }
        };
        let Expr::MatrixSelector(matrix) = &**series else {
            return Err(QueryError::Unsupported(format!(
                "{}() of anything but a range selector (`metric{{…}}[5m]`)",
                call.func.name
            )));
        };
        let selector = self.selector(&matrix.vs, Some(matrix.range))?;
        Ok(Node::OverTime {
            function,
            parameter,
            selector,
        })
    }

    fn aggregate(&mut self, aggregate: &parser::AggregateExpr) -> Result<Node, QueryError> {
        let name = aggregate.op.to_string();
        let op = match name.as_str() {
            "sum" => Aggregation::Sum,
            "avg" => Aggregation::Avg,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            "count" => Aggregation::Count,
            "group" => Aggregation::Group,
            other => {
                return Err(QueryError::Unsupported(format!("the aggregation {other}")));
            }
        };
        let grouping = match &aggregate.modifier {
            None => Grouping::By(Vec::new()),
            Some(LabelModifier::Include(labels)) => Grouping::By(labels.labels.clone()),
            Some(LabelModifier::Exclude(labels)) => Grouping::Without(labels.labels.clone()),
        };
        let inner = self.node(&aggregate.expr)?;
        if inner.kind() != Kind::Vector {
            return Err(QueryError::Parse(format!(
                "expected type instant vector in aggregation expression, got scalar ({name})"
            )));
        }
        Ok(Node::Aggregate {
            op,
            grouping,
            inner: Box::new(inner),
        })
    }

    fn binary(&mut self, binary: &parser::BinaryExpr) -> Result<Node, QueryError> {
        let symbol = binary.op.to_string();
        let op = match symbol.as_str() {
            "+" => Operator::Add,
            "-" => Operator::Sub,
            "*" => Operator::Mul,
            "/" => Operator::Div,
            "%" => Operator::Mod,
            "^" => Operator::Pow,
            "==" => Operator::Eq,
            "!=" => Operator::Ne,
            ">" => Operator::Gt,
            "<" => Operator::Lt,
            ">=" => Operator::Ge,
            "<=" => Operator::Le,
            other => {
                return Err(QueryError::Unsupported(format!("the operator {other}")));
            }
        };
        let lhs = self.node(&binary.lhs)?;
        let rhs = self.node(&binary.rhs)?;
        if lhs.kind() == Kind::Vector && rhs.kind() == Kind::Vector {
            return Err(QueryError::Unsupported(format!(
                "`{symbol}` between two vectors (one side must be a scalar)"
            )));
        }
        Ok(Node::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            returns_bool: binary.return_bool(),
        })
    }
}

/// What evaluation reads: the series of each selector (in [`Query::selectors`] order).
struct Context<'a> {
    selectors: &'a [Selector],
    data: &'a [Vec<Series>],
    lookback_ms: i64,
    memo: Memo,
    /// Per selector and series, where its last instant selection ended ([`points_until`]).
    cursors: Vec<Vec<Cell<usize>>>,
}

impl<'a> Context<'a> {
    fn new(selectors: &'a [Selector], data: &'a [Vec<Series>], lookback_ms: i64) -> Self {
        Context {
            selectors,
            data,
            lookback_ms,
            memo: Memo::default(),
            cursors: data
                .iter()
                .map(|series| series.iter().map(|_| Cell::new(0)).collect())
                .collect(),
        }
    }
}

/// How many `points` are at or before `at` (a partition point), searched from `cursor`,
/// where the last search ended: a range's steps move forward, so it is the same place or
/// a few points on. (A binary search of the whole series at each step, of a thousand
/// series, spent most of a range query's time in cache misses.)
fn points_until<T>(points: &[(i64, T)], at: i64, cursor: &Cell<usize>) -> usize {
    let mut end = cursor.get().min(points.len());
    if end > 0 && points[end - 1].0 > at {
        end = points[..end].partition_point(|(time, _)| *time <= at);
    } else {
        // Every point before `end` is at or before `at`: gallop forward, then search the
        // last stride.
        let mut stride = 1;
        while end + stride <= points.len() && points[end + stride - 1].0 <= at {
            end += stride;
            stride *= 2;
        }
        let last = (end + stride).min(points.len());
        end += points[end..last].partition_point(|(time, _)| *time <= at);
    }
    cursor.set(end);
    end
}

/// Which labels a [`Memo`] derives from a series' labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Derived {
    /// Without the metric name.
    WithoutName,
    /// The group of the aggregation whose grouping is at this address.
    Group(usize),
}

/// The labels derived from (kept alive, so their address stays theirs), and the result.
type Derivation = (Arc<Labels>, Arc<Labels>);

/// Labels derived from a series' labels (without the name, a group's), computed once
/// per series for a whole range instead of at each step. Keyed by the address of the
/// input `Arc`, which the memo keeps alive so the address is not reused while it lives;
/// equal results are one `Arc` (interned), so samples can be grouped by address.
#[derive(Debug, Default)]
struct Memo {
    derived: RefCell<HashMap<(Derived, usize), Derivation>>,
    interned: RefCell<HashSet<Arc<Labels>>>,
}

impl Memo {
    fn derive(
        &self,
        kind: Derived,
        labels: &Arc<Labels>,
        compute: impl FnOnce(&Labels) -> Labels,
    ) -> Arc<Labels> {
        let key = (kind, Arc::as_ptr(labels) as usize);
        if let Some((_, derived)) = self.derived.borrow().get(&key) {
            return Arc::clone(derived);
        }
        let computed = compute(labels);
        let derived = {
            let mut interned = self.interned.borrow_mut();
            match interned.get(&computed) {
                Some(existing) => Arc::clone(existing),
                None => {
                    let fresh = Arc::new(computed);
                    interned.insert(Arc::clone(&fresh));
                    fresh
                }
            }
        };
        self.derived
            .borrow_mut()
            .insert(key, (Arc::clone(labels), Arc::clone(&derived)));
        derived
    }

    fn without_name(&self, labels: &Arc<Labels>) -> Arc<Labels> {
        self.derive(Derived::WithoutName, labels, |labels| {
            let mut labels = labels.clone();
            labels.remove(METRIC_NAME);
            labels
        })
    }
}

impl Context<'_> {
    /// The selector's series and the time its offset moves `t` to.
    fn read(&self, index: usize, t: i64) -> (&[Series], i64, &Selector) {
        let series = self.data.get(index).map_or(&[][..], Vec::as_slice);
        let selector = &self.selectors[index];
        (series, t.saturating_sub(selector.offset_ms), selector)
    }
}

/// The query's value at `t` (ms). `data` holds the series of each selector, in order.
pub fn instant(
    query: &Query,
    t: i64,
    lookback_ms: i64,
    data: &[Vec<Series>],
) -> Result<Instant, QueryError> {
    let context = Context::new(&query.selectors, data, lookback_ms);
    Ok(match evaluate(&query.root, t, &context)? {
        Instant::Vector(mut samples) => {
            samples.sort_by(|a, b| a.0.cmp(&b.0));
            Instant::Vector(samples)
        }
        scalar => scalar,
    })
}

/// The query's values at each of `steps`, one series per label set (a scalar query is
/// one series without labels), sorted by labels.
pub fn range(
    query: &Query,
    steps: Steps,
    lookback_ms: i64,
    data: &[Vec<Series>],
) -> Result<Matrix, QueryError> {
    let context = Context::new(&query.selectors, data, lookback_ms);
    // Each answer's series by the address of its labels (the memo and the data keep
    // them alive and the same from step to step), merged by content at the end.
    let mut series: Matrix = Vec::new();
    let mut index: HashMap<usize, usize> = HashMap::default();
    let scalar: Arc<Labels> = Arc::default();
    let mut add = |labels: &Arc<Labels>, t: i64, value: f64| {
        let at = *index
            .entry(Arc::as_ptr(labels) as usize)
            .or_insert_with(|| {
                series.push((Arc::clone(labels), Vec::new()));
                series.len() - 1
            });
        series[at].1.push((t, value));
    };
    for t in steps.times() {
        match evaluate(&query.root, t, &context)? {
            Instant::Scalar(value) => add(&scalar, t, value),
            Instant::Vector(samples) => {
                for (labels, value) in &samples {
                    add(labels, t, *value);
                }
            }
        }
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Matrix = Vec::with_capacity(series.len());
    for (labels, points) in series {
        match merged.last_mut() {
            Some((last, existing)) if *last == labels => {
                existing.extend(points);
                existing.sort_by_key(|(t, _)| *t);
            }
            _ => merged.push((labels, points)),
        }
    }
    Ok(merged)
}

fn evaluate(node: &Node, t: i64, context: &Context<'_>) -> Result<Instant, QueryError> {
    match node {
        Node::Number(value) => Ok(Instant::Scalar(*value)),
        Node::Negate(inner) => Ok(match evaluate(inner, t, context)? {
            Instant::Scalar(value) => Instant::Scalar(-value),
            Instant::Vector(samples) => Instant::Vector(
                samples
                    .into_iter()
                    .map(|(labels, value)| (context.memo.without_name(&labels), -value))
                    .collect(),
            ),
        }),
        Node::Selector(index) => Ok(Instant::Vector(select(*index, t, context))),
        Node::OverTime {
            function,
            parameter,
            selector,
        } => {
            let phi = match parameter {
                Some(node) => match evaluate(node, t, context)? {
                    Instant::Scalar(phi) => Some(phi),
                    Instant::Vector(_) => None,
                },
                None => None,
            };
            Ok(Instant::Vector(over_time(
                *function, phi, *selector, t, context,
            )))
        }
        Node::Aggregate {
            op,
            grouping,
            inner,
        } => match evaluate(inner, t, context)? {
            Instant::Vector(samples) => Ok(Instant::Vector(aggregate(
                *op,
                grouping,
                samples,
                &context.memo,
            ))),
            Instant::Scalar(_) => Err(QueryError::Execution("an aggregation of a scalar".into())),
        },
        Node::Binary {
            op,
            lhs,
            rhs,
            returns_bool,
        } => {
            let lhs = evaluate(lhs, t, context)?;
            let rhs = evaluate(rhs, t, context)?;
            Ok(binary(*op, *returns_bool, lhs, rhs, &context.memo))
        }
    }
}

/// An instant selector at `t`: each series' latest sample in `(t - lookback, t]`.
fn select(index: usize, t: i64, context: &Context<'_>) -> Vec<(Arc<Labels>, f64)> {
    let (series, at, _) = context.read(index, t);
    let cursors = context.cursors.get(index).map_or(&[][..], Vec::as_slice);
    series
        .iter()
        .zip(cursors)
        .filter_map(|(series, cursor)| {
            latest(&series.samples, at, context.lookback_ms, cursor)
                .map(|value| (Arc::clone(&series.labels), value))
        })
        .collect()
}

fn latest(samples: &Samples, at: i64, lookback_ms: i64, cursor: &Cell<usize>) -> Option<f64> {
    match samples {
        Samples::Points(points) => {
            let end = points_until(points, at, cursor);
            let (time, value) = points.get(end.checked_sub(1)?)?;
            (*time > at - lookback_ms).then_some(*value)
        }
        Samples::Active { from, until } => {
            (*from <= at && until.is_none_or(|until| at < until)).then_some(1.0)
        }
        Samples::Graded(points) => {
            let end = points_until(points, at, cursor);
            points.get(end.checked_sub(1)?)?.1
        }
        Samples::Window(_) => None,
    }
}

/// The values of a series in `(from, to]`.
fn values_between(samples: &Samples, from: i64, to: i64) -> Vec<f64> {
    match samples {
        Samples::Points(points) => {
            let start = points.partition_point(|(time, _)| *time <= from);
            let end = points.partition_point(|(time, _)| *time <= to);
            points[start..end.max(start)]
                .iter()
                .map(|(_, value)| *value)
                .collect()
        }
        // An alert's series, as if sampled at the window's ends that it covers.
        Samples::Active { from: on, until } => {
            let first = (*on).max(from + 1);
            let last = until.map_or(to, |until| (until - 1).min(to));
            match first.cmp(&last) {
                std::cmp::Ordering::Less => vec![1.0, 1.0],
                std::cmp::Ordering::Equal => vec![1.0],
                std::cmp::Ordering::Greater => Vec::new(),
            }
        }
        Samples::Graded(points) => {
            let start = points.partition_point(|(time, _)| *time <= from);
            let end = points.partition_point(|(time, _)| *time <= to);
            points[start..end.max(start)]
                .iter()
                .filter_map(|(_, value)| *value)
                .collect()
        }
        Samples::Window(_) => Vec::new(),
    }
}

fn over_time(
    function: OverTime,
    phi: Option<f64>,
    index: usize,
    t: i64,
    context: &Context<'_>,
) -> Vec<(Arc<Labels>, f64)> {
    let (series, at, selector) = context.read(index, t);
    let range = selector.range_ms.unwrap_or(0);
    series
        .iter()
        .filter_map(|series| {
            let value = match &series.samples {
                Samples::Window(stats) => reduce_stats(function, stats),
                samples => reduce(
                    function,
                    phi,
                    &values_between(samples, at.saturating_sub(range), at),
                ),
            };
            value.map(|value| (context.memo.without_name(&series.labels), value))
        })
        .collect()
}

fn reduce(function: OverTime, phi: Option<f64>, values: &[f64]) -> Option<f64> {
    let (first, _) = values.split_first()?;
    let n = values.len() as f64;
    Some(match function {
        OverTime::Avg => values.iter().sum::<f64>() / n,
        OverTime::Sum => values.iter().sum(),
        OverTime::Min => values.iter().copied().fold(*first, f64::min),
        OverTime::Max => values.iter().copied().fold(*first, f64::max),
        OverTime::Count => n,
        OverTime::Last => *values.last()?,
        OverTime::Quantile => quantile(phi.unwrap_or(f64::NAN), values),
    })
}

/// `function` over a window the store reduced (`None` for `quantile_over_time`, which
/// is never reduced by the store).
fn reduce_stats(function: OverTime, stats: &WindowStats) -> Option<f64> {
    if stats.count == 0 {
        return None;
    }
    match function {
        OverTime::Avg => Some(stats.sum / stats.count as f64),
        OverTime::Sum => Some(stats.sum),
        OverTime::Min => Some(stats.min),
        OverTime::Max => Some(stats.max),
        OverTime::Count => Some(stats.count as f64),
        OverTime::Last => Some(stats.last),
        OverTime::Quantile => None,
    }
}

/// Prometheus's quantile: linear interpolation between the closest ranks; φ below 0 is
/// -Inf, above 1 +Inf.
fn quantile(phi: f64, values: &[f64]) -> f64 {
    if phi.is_nan() || values.is_empty() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = phi * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(sorted.len() - 1);
    let weight = rank - rank.floor();
    sorted[lower] * (1.0 - weight) + sorted[upper] * weight
}

fn group_labels(grouping: &Grouping, labels: &Labels) -> Labels {
    match grouping {
        Grouping::By(names) => labels
            .iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        Grouping::Without(names) => labels
            .iter()
            .filter(|(name, _)| *name != METRIC_NAME && !names.contains(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    }
}

fn aggregate(
    op: Aggregation,
    grouping: &Grouping,
    samples: Vec<(Arc<Labels>, f64)>,
    memo: &Memo,
) -> Vec<(Arc<Labels>, f64)> {
    struct Group {
        labels: Arc<Labels>,
        sum: f64,
        count: f64,
        min: f64,
        max: f64,
    }
    let kind = Derived::Group(grouping as *const Grouping as usize);
    // By the address of the group's interned labels.
    let mut index: HashMap<usize, usize> = HashMap::default();
    let mut groups: Vec<Group> = Vec::new();
    for (labels, value) in &samples {
        let group = memo.derive(kind, labels, |labels| group_labels(grouping, labels));
        let at = *index
            .entry(Arc::as_ptr(&group) as usize)
            .or_insert_with(|| {
                groups.push(Group {
                    labels: Arc::clone(&group),
                    sum: 0.0,
                    count: 0.0,
                    min: *value,
                    max: *value,
                });
                groups.len() - 1
            });
        let group = &mut groups[at];
        group.sum += value;
        group.count += 1.0;
        group.min = group.min.min(*value);
        group.max = group.max.max(*value);
    }
    groups
        .into_iter()
        .map(|group| {
            let value = match op {
                Aggregation::Sum => group.sum,
                Aggregation::Avg => group.sum / group.count,
                Aggregation::Min => group.min,
                Aggregation::Max => group.max,
                Aggregation::Count => group.count,
                Aggregation::Group => 1.0,
            };
            (group.labels, value)
        })
        .collect()
}

fn binary(op: Operator, returns_bool: bool, lhs: Instant, rhs: Instant, memo: &Memo) -> Instant {
    let filter = op.is_comparison() && !returns_bool;
    let each = |samples: Vec<(Arc<Labels>, f64)>, scalar: f64, vector_left: bool| {
        samples
            .into_iter()
            .filter_map(|(labels, value)| {
                let (a, b) = if vector_left {
                    (value, scalar)
                } else {
                    (scalar, value)
                };
                let result = op.apply(a, b);
                if filter {
                    // A filtering comparison keeps the sample as it is, name and all.
                    (result == 1.0).then_some((labels, value))
                } else {
                    Some((memo.without_name(&labels), result))
                }
            })
            .collect()
    };
    match (lhs, rhs) {
        (Instant::Scalar(a), Instant::Scalar(b)) => Instant::Scalar(op.apply(a, b)),
        (Instant::Vector(samples), Instant::Scalar(b)) => Instant::Vector(each(samples, b, true)),
        (Instant::Scalar(a), Instant::Vector(samples)) => Instant::Vector(each(samples, a, false)),
        // Refused when the query was parsed.
        (Instant::Vector(_), Instant::Vector(_)) => Instant::Vector(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_core::Timestamp;

    const MIN: i64 = 60_000;

    fn labels(model: &str, version: &str, metric: &str) -> Arc<Labels> {
        Arc::new(Labels::from([
            (METRIC_NAME.to_owned(), "modelwatch_model_metric".to_owned()),
            ("model".to_owned(), model.to_owned()),
            ("version".to_owned(), version.to_owned()),
            ("metric".to_owned(), metric.to_owned()),
        ]))
    }

    fn points(values: &[(i64, f64)]) -> Samples {
        Samples::Points(values.to_vec())
    }

    /// Two models' accuracy: fraud v1 and v2, churn v1, a point a minute from 0.
    fn catalog() -> Vec<Series> {
        vec![
            Series {
                labels: labels("fraud", "v1", "accuracy"),
                samples: points(&[(0, 0.9), (MIN, 0.8), (2 * MIN, 0.7)]),
            },
            Series {
                labels: labels("fraud", "v2", "accuracy"),
                samples: points(&[(0, 0.95), (MIN, 0.97), (2 * MIN, 0.99)]),
            },
            Series {
                labels: labels("churn", "v1", "accuracy"),
                samples: points(&[(0, 0.5), (MIN, 0.6)]),
            },
        ]
    }

    /// The query's series: each selector gets the catalogue's series it matches.
    fn data(query: &Query, catalog: &[Series]) -> Vec<Vec<Series>> {
        query
            .selectors()
            .iter()
            .map(|s| {
                catalog
                    .iter()
                    .filter(|series| s.matches(&series.labels))
                    .cloned()
                    .collect()
            })
            .collect()
    }

    /// The query at `t` as sorted `(model/version, value)` pairs, or a scalar's value.
    fn at(text: &str, t: i64) -> Vec<(String, f64)> {
        let query = Query::parse(text).expect("parses");
        let data = data(&query, &catalog());
        match instant(&query, t, 5 * MIN, &data).expect("evaluates") {
            Instant::Scalar(value) => vec![("scalar".into(), value)],
            Instant::Vector(samples) => {
                let mut found: Vec<(String, f64)> = samples
                    .into_iter()
                    .map(|(labels, value)| {
                        let name: Vec<String> = labels
                            .iter()
                            .filter(|(k, _)| *k != "metric")
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        (name.join(","), value)
                    })
                    .collect();
                found.sort_by(|a, b| a.0.cmp(&b.0));
                found
            }
        }
    }

    fn unsupported(text: &str) -> String {
        match Query::parse(text) {
            Err(QueryError::Unsupported(what)) => what,
            other => panic!("{text}: expected unsupported, got {other:?}"),
        }
    }

    #[test]
    fn a_selector_takes_each_matching_series_latest_sample_within_the_lookback() {
        let found = at(r#"modelwatch_model_metric{model="fraud"}"#, 2 * MIN + 1);
        assert_eq!(
            found,
            vec![
                (
                    "__name__=modelwatch_model_metric,model=fraud,version=v1".into(),
                    0.7
                ),
                (
                    "__name__=modelwatch_model_metric,model=fraud,version=v2".into(),
                    0.99
                ),
            ]
        );
        // churn's last point (at 1 min) is 5 minutes old at 6 min: out of `(t - 5m, t]`.
        assert_eq!(at(r#"{model="churn"}"#, 6 * MIN - 1).len(), 1);
        assert!(at(r#"{model="churn"}"#, 6 * MIN).is_empty());
    }

    #[test]
    fn all_four_matchers_select() {
        assert_eq!(at(r#"{model!="fraud",version=~"v.*"}"#, 2 * MIN).len(), 1);
        assert_eq!(at(r#"{model=~"fr.*"}"#, 2 * MIN).len(), 2);
        assert_eq!(
            at(r#"{model=~"fr"}"#, 2 * MIN).len(),
            0,
            "regexes are anchored"
        );
        assert_eq!(at(r#"{model!~"fr.*",version="v1"}"#, 2 * MIN).len(), 1);
        assert_eq!(at(r#"{dataset="default"}"#, 2 * MIN).len(), 0);
    }

    #[test]
    fn offset_moves_the_evaluation_back() {
        let found = at(
            r#"modelwatch_model_metric{model="fraud",version="v1"} offset 1m"#,
            2 * MIN,
        );
        assert_eq!(found[0].1, 0.8);
    }

    #[test]
    fn over_time_functions_reduce_the_window_and_drop_the_name() {
        let q = |f: &str| {
            at(
                &format!(r#"{f}(modelwatch_model_metric{{model="fraud",version="v1"}}[5m])"#),
                2 * MIN,
            )
        };
        assert_eq!(
            q("count_over_time"),
            vec![("model=fraud,version=v1".into(), 3.0)]
        );
        assert!((q("avg_over_time")[0].1 - 0.8).abs() < 1e-12);
        assert_eq!(q("min_over_time")[0].1, 0.7);
        assert_eq!(q("max_over_time")[0].1, 0.9);
        assert_eq!(q("last_over_time")[0].1, 0.7);
        assert!((q("sum_over_time")[0].1 - 2.4).abs() < 1e-12);
        // The window is (t - range, t]: the point at 0 is out of a 2m window at 2m.
        let found = at(
            r#"count_over_time({model="fraud",version="v1"}[2m])"#,
            2 * MIN,
        );
        assert_eq!(found[0].1, 2.0);
        let found = at(
            r#"quantile_over_time(0.5, {model="fraud",version="v1"}[5m])"#,
            2 * MIN,
        );
        assert!((found[0].1 - 0.8).abs() < 1e-12);
        let found = at(
            r#"quantile_over_time(0.25, {model="fraud",version="v1"}[5m])"#,
            2 * MIN,
        );
        assert!((found[0].1 - 0.75).abs() < 1e-12, "interpolated: {found:?}");
    }

    #[test]
    fn aggregations_group_by_and_without() {
        let found = at(r#"avg by (model) (modelwatch_model_metric)"#, MIN);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, "model=churn");
        assert!((found[1].1 - 0.885).abs() < 1e-12, "{found:?}");
        assert_eq!(
            at("count(modelwatch_model_metric)", MIN),
            vec![("".into(), 3.0)]
        );
        assert_eq!(at("max(modelwatch_model_metric)", MIN)[0].1, 0.97);
        assert_eq!(
            at("min by (version) (modelwatch_model_metric)", MIN)[0].1,
            0.6
        );
        assert!((at("sum without (version) ({model=\"fraud\"})", MIN)[0].1 - 1.77).abs() < 1e-12);
        assert_eq!(
            at("sum without (version) ({model=\"fraud\"})", MIN)[0].0,
            "model=fraud",
            "without also drops the name"
        );
    }

    #[test]
    fn arithmetic_and_comparisons_with_scalars() {
        assert_eq!(at("1 + 1", 0), vec![("scalar".into(), 2.0)]);
        let found = at(r#"100 * {model="churn"}"#, MIN);
        assert_eq!(found, vec![("model=churn,version=v1".into(), 60.0)]);
        let found = at(r#"-{model="churn"}"#, MIN);
        assert_eq!(found[0].1, -0.6);
        // A filtering comparison keeps the samples that pass, name and all.
        let found = at(r#"modelwatch_model_metric < 0.9"#, MIN);
        assert_eq!(found.len(), 2);
        assert!(found[0].0.starts_with("__name__="));
        let found = at(r#"modelwatch_model_metric < bool 0.9"#, MIN);
        assert_eq!(found.len(), 3);
        assert_eq!(found.iter().map(|f| f.1).sum::<f64>(), 2.0);
    }

    #[test]
    fn a_range_evaluates_each_step_into_one_series_per_label_set() {
        let query = Query::parse(r#"avg by (model) ({model="fraud"})"#).expect("parses");
        let steps = Steps {
            start: 0,
            end: 3 * MIN,
            step: MIN,
        };
        let matrix = range(&query, steps, 5 * MIN, &data(&query, &catalog())).expect("evaluates");
        assert_eq!(matrix.len(), 1);
        let times: Vec<i64> = matrix[0].1.iter().map(|p| p.0).collect();
        assert_eq!(times, vec![0, MIN, 2 * MIN, 3 * MIN]);
        assert!((matrix[0].1[3].1 - 0.845).abs() < 1e-12);
        let scalar = Query::parse("2").expect("parses");
        let matrix = range(&scalar, steps, 5 * MIN, &[]).expect("evaluates");
        assert_eq!(matrix.len(), 1);
        assert!(matrix[0].0.is_empty());
        assert_eq!(matrix[0].1.len(), 4);
    }

    /// A range query's labels are derived once per series and samples grouped by the
    /// address of those labels: each step must still equal an instant query at that step.
    #[test]
    fn each_step_of_a_range_is_the_instant_query_at_that_step() {
        let steps = Steps {
            start: 0,
            end: 8 * MIN,
            step: MIN / 2,
        };
        for text in [
            "avg by (model) (modelwatch_model_metric)",
            "sum without (version) (modelwatch_model_metric) * 2",
            "count(-modelwatch_model_metric > -0.9)",
            "max by (metric) (max_over_time(modelwatch_model_metric[2m] offset 1m))",
            "modelwatch_model_metric + 1",
            "min(modelwatch_model_metric{model=\"churn\"}) - 1",
        ] {
            let query = Query::parse(text).expect("parses");
            let data = data(&query, &catalog());
            let matrix = range(&query, steps, 5 * MIN, &data).expect("evaluates");
            let mut expected: BTreeMap<Arc<Labels>, Vec<(i64, f64)>> = BTreeMap::new();
            for t in steps.times() {
                if let Instant::Vector(samples) =
                    instant(&query, t, 5 * MIN, &data).expect("evaluates")
                {
                    for (labels, value) in samples {
                        expected.entry(labels).or_default().push((t, value));
                    }
                }
            }
            let expected: Matrix = expected.into_iter().collect();
            assert_eq!(matrix, expected, "{text}");
        }
    }

    #[test]
    fn a_search_from_the_last_cursor_finds_the_partition_point() {
        let points: Vec<(i64, f64)> = (0..100).map(|i| (i * 10, 0.0)).collect();
        let cursor = Cell::new(0);
        // Forward by small and large strides, backward, past both ends, repeated.
        for at in [
            -5, 0, 5, 10, 11, 35, 35, 400, 990, 2000, 15, -1, 500, 505, 0, 999,
        ] {
            let expected = points.partition_point(|(time, _)| *time <= at);
            assert_eq!(points_until(&points, at, &cursor), expected, "at {at}");
        }
        assert_eq!(points_until::<f64>(&[], 5, &Cell::new(3)), 0);
    }

    #[test]
    fn an_alert_series_is_one_while_the_alert_is_open() {
        let alert = Series {
            labels: Arc::new(Labels::from([
                (METRIC_NAME.to_owned(), "ALERTS".to_owned()),
                ("alertstate".to_owned(), "firing".to_owned()),
            ])),
            samples: Samples::Active {
                from: MIN,
                until: Some(3 * MIN),
            },
        };
        let query = Query::parse(r#"ALERTS{alertstate="firing"}"#).expect("parses");
        let data = vec![vec![alert.clone()]];
        let count = |t| match instant(&query, t, 5 * MIN, &data).expect("evaluates") {
            Instant::Vector(v) => v.len(),
            Instant::Scalar(_) => panic!("a vector"),
        };
        assert_eq!(
            (
                count(MIN - 1),
                count(MIN),
                count(3 * MIN - 1),
                count(3 * MIN)
            ),
            (0, 1, 1, 0)
        );
        let query = Query::parse("max_over_time(ALERTS[10m])").expect("parses");
        match instant(&query, 20 * MIN, 5 * MIN, &data).expect("evaluates") {
            Instant::Vector(v) => assert!(v.is_empty(), "closed 17 minutes before"),
            Instant::Scalar(_) => panic!("a vector"),
        }
        match instant(&query, 12 * MIN, 5 * MIN, &data).expect("evaluates") {
            Instant::Vector(v) => assert_eq!(v[0].1, 1.0),
            Instant::Scalar(_) => panic!("a vector"),
        }
    }

    #[test]
    fn what_is_outside_the_subset_is_named() {
        assert!(unsupported("rate(x[5m])").contains("rate()"));
        assert!(unsupported("x + y").contains("two vectors"));
        assert!(unsupported("topk(3, x)").contains("topk"));
        assert!(unsupported("x @ 100").contains("@"));
        assert!(unsupported("max_over_time(x[5m:1m])").contains("max_over_time"));
        assert!(unsupported("x and y").contains("and"));
        assert!(matches!(Query::parse("x{"), Err(QueryError::Parse(_))));
    }

    #[test]
    fn only_selectors_read_by_one_reducible_over_time_are_reduced_by_the_store() {
        let reduced = |text: &str| {
            let query = Query::parse(text).expect("parses");
            (0..query.selectors().len())
                .map(|index| query.reduced_by_store(index))
                .collect::<Vec<bool>>()
        };
        assert_eq!(reduced("avg_over_time(x[5m])"), [true]);
        assert_eq!(reduced("x"), [false]);
        assert_eq!(reduced("quantile_over_time(0.9, x[5m])"), [false]);
        assert_eq!(
            reduced("sum by (model) (max_over_time(x[1h] offset 1d))"),
            [true]
        );
        assert_eq!(reduced("avg(x) * 2"), [false]);
        assert_eq!(reduced("-last_over_time(x[5m]) + 1"), [true]);
    }

    #[test]
    fn statistics_reduce_as_the_points_do() {
        let points = [(1_000, 0.5), (2_000, 0.25), (3_000, 0.75)];
        let mut stats = WindowStats::of(Timestamp::from_millis(1_000).expect("valid"), 0.5);
        stats.push(Timestamp::from_millis(2_000).expect("valid"), 0.25);
        stats.push(Timestamp::from_millis(3_000).expect("valid"), 0.75);
        let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
        for function in [
            OverTime::Avg,
            OverTime::Sum,
            OverTime::Min,
            OverTime::Max,
            OverTime::Count,
            OverTime::Last,
        ] {
            assert_eq!(
                reduce_stats(function, &stats),
                reduce(function, None, &values),
                "{function:?}"
            );
        }
        assert_eq!(reduce_stats(OverTime::Quantile, &stats), None);
    }

    #[test]
    fn the_selectors_window_covers_range_offset_and_lookback() {
        let query = Query::parse("avg_over_time(x[10m] offset 1h)").expect("parses");
        let window = query.selectors()[0].window(
            Steps {
                start: 100 * MIN,
                end: 200 * MIN,
                step: MIN,
            },
            5 * MIN,
        );
        assert_eq!(window, (30 * MIN, 140 * MIN));
    }
}
