//! The part of the IoT Hub query language that people actually send to `POST /devices/query`:
//! `SELECT *` or `SELECT COUNT()` over `devices` or `devices.modules`, with a `WHERE` made of
//! comparisons, `IN`/`NIN` lists, the type-checking functions and `STARTSWITH`/`ENDSWITH`.
//! Everything else (field projections, `GROUP BY`, `ORDER BY`, `TOP`, `JOIN`, jobs) is refused
//! with an error that names it, so a client learns what to change instead of getting wrong rows.
//!
//! The filter is evaluated here, over each twin's JSON, rather than translated to SQL: twins are
//! stored as JSON text, and SQLite's JSON functions and PostgreSQL's `jsonb` operators disagree on
//! types, missing members and comparisons. One evaluator gives one answer on both stores.
//!
//! Semantics where the public docs leave room:
//! - a path that does not resolve is *undefined*; every comparison, `IN` and `NIN` with undefined
//!   is false, and `NOT` simply negates, so `NOT (x = 1)` is true when `x` is missing (no
//!   three-valued logic: it is simple to explain and matches what users usually expect);
//! - `=` compares values of the same JSON type (numbers numerically, `1 = 1.0`); values of
//!   different types are unequal, so `!=` between them is true; `x = null` needs `x` present
//!   and null;
//! - `<`, `>`, `<=`, `>=` order numbers numerically and strings by bytes (case-sensitive); any
//!   other pair of types is false;
//! - strings escape their quote by doubling it (`'it''s'`); backslashes are plain characters.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// IoT Hub refuses query texts of about this size; a larger body is a mistake or an attack.
pub const MAX_QUERY_CHARS: usize = 8192;
/// Parentheses and `NOT`s nested deeper than this are refused before they can exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// The collection a query runs over; the caller picks which twins to feed to [`HubQuery::matches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Devices,
    Modules,
}

/// What the caller returns per match: the twins, or one `{alias: count}` row.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    All,
    /// IoT Hub names the unaliased count `$1`, so that is the default alias.
    Count {
        alias: String,
    },
}

/// A parsed query; the filter is private so that its shape can change without breaking callers.
#[derive(Debug, Clone, PartialEq)]
pub struct HubQuery {
    pub source: Source,
    pub projection: Projection,
    filter: Option<Expr>,
}

/// Positions are 0-based character (not byte) offsets into the query text, so they line up with
/// what a user sees in an editor even when the query holds non-ASCII text.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    #[error("query is {len} characters long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("conditions nested deeper than {max} levels at {at}")]
    TooDeep { max: usize, at: usize },
    #[error("expected {expected} at {at}, found {found}")]
    Expected {
        expected: &'static str,
        found: String,
        at: usize,
    },
    #[error("unterminated string starting at {at}")]
    UnterminatedString { at: usize },
    #[error("unexpected character {ch:?} at {at}")]
    UnexpectedChar { ch: char, at: usize },
    #[error("invalid number {text} at {at}")]
    InvalidNumber { text: String, at: usize },
    #[error("unknown function {name} at {at}")]
    UnknownFunction { name: String, at: usize },
    #[error("{name} takes {expected} argument(s), found {found} at {at}")]
    Arity {
        name: &'static str,
        expected: usize,
        found: usize,
        at: usize,
    },
    #[error("unsupported: {what} at {at}")]
    Unsupported { what: String, at: usize },
}

/// Parses a query text; refuses anything outside the supported subset rather than guessing.
pub fn parse(text: &str) -> Result<HubQuery, QueryError> {
    // Count before collecting so a multi-megabyte body costs no allocation.
    let len = text.chars().count();
    if len > MAX_QUERY_CHARS {
        return Err(QueryError::TooLong {
            len,
            max: MAX_QUERY_CHARS,
        });
    }
    let chars: Vec<char> = text.chars().collect();
    let toks = lex(&chars)?;
    Parser { toks, pos: 0 }.query()
}

impl HubQuery {
    /// Whether `twin` (as the REST API returns it) passes the `WHERE` clause. The source is not
    /// checked here: the caller already chose device or module twins from [`HubQuery::source`].
    pub fn matches(&self, twin: &Value) -> bool {
        self.filter.as_ref().is_none_or(|f| f.eval(twin))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        ["=", "!=", "<", ">", "<=", ">="][self as usize]
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Path(Vec<String>),
    Lit(Value),
}

/// Function names (canonical upper case) and their argument counts.
const FUNCS: &[(&str, usize)] = &[
    ("IS_DEFINED", 1),
    ("IS_NULL", 1),
    ("IS_STRING", 1),
    ("IS_NUMBER", 1),
    ("IS_BOOL", 1),
    ("IS_OBJECT", 1),
    ("IS_ARRAY", 1),
    ("IS_PRIMITIVE", 1),
    ("STARTSWITH", 2),
    ("ENDSWITH", 2),
];

/// `AND`/`OR` hold flat lists so a long chain of conditions does not become a deep tree.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(CmpOp, Operand, Operand),
    In {
        operand: Operand,
        list: Vec<Value>,
        negated: bool,
    },
    Call(&'static str, Vec<Operand>),
}

impl Operand {
    /// `None` is "undefined": a member missing somewhere along the path.
    fn resolve<'a>(&'a self, twin: &'a Value) -> Option<&'a Value> {
        match self {
            Operand::Lit(v) => Some(v),
            Operand::Path(segs) => segs
                .iter()
                .try_fold(twin, |cur, seg| cur.as_object()?.get(seg)),
        }
    }
}

impl Expr {
    fn eval(&self, twin: &Value) -> bool {
        match self {
            Expr::Or(terms) => terms.iter().any(|e| e.eval(twin)),
            Expr::And(terms) => terms.iter().all(|e| e.eval(twin)),
            Expr::Not(e) => !e.eval(twin),
            Expr::Cmp(op, lhs, rhs) => match (lhs.resolve(twin), rhs.resolve(twin)) {
                (Some(a), Some(b)) => compare(*op, a, b),
                _ => false,
            },
            Expr::In {
                operand,
                list,
                negated,
            } => operand
                .resolve(twin)
                .is_some_and(|v| list.iter().any(|x| json_eq(v, x)) != *negated),
            Expr::Call(name, args) => {
                let a = args.first().and_then(|o| o.resolve(twin));
                let b = args.get(1).and_then(|o| o.resolve(twin));
                call(name, a, b)
            }
        }
    }
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> bool {
    let ord = || match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    };
    match op {
        CmpOp::Eq => json_eq(a, b),
        CmpOp::Ne => !json_eq(a, b),
        CmpOp::Lt => ord() == Some(Ordering::Less),
        CmpOp::Gt => ord() == Some(Ordering::Greater),
        CmpOp::Le => matches!(ord(), Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Ge => matches!(ord(), Some(Ordering::Greater | Ordering::Equal)),
    }
}

/// Integers compare exactly (a `u64` counter above 2^53 must not equal its neighbour); mixed
/// kinds fall back to `f64`.
fn num_cmp(x: &Number, y: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return Some(a.cmp(&b));
    }
    x.as_f64()?.partial_cmp(&y.as_f64()?)
}

/// `Value`'s own `==` treats `1` and `1.0` as different; the query language does not.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn call(name: &str, a: Option<&Value>, b: Option<&Value>) -> bool {
    let strings = match (a, b) {
        (Some(Value::String(s)), Some(Value::String(p))) => Some((s.as_str(), p.as_str())),
        _ => None,
    };
    match name {
        "IS_DEFINED" => a.is_some(),
        "IS_NULL" => matches!(a, Some(Value::Null)),
        "IS_STRING" => matches!(a, Some(Value::String(_))),
        "IS_NUMBER" => matches!(a, Some(Value::Number(_))),
        "IS_BOOL" => matches!(a, Some(Value::Bool(_))),
        "IS_OBJECT" => matches!(a, Some(Value::Object(_))),
        "IS_ARRAY" => matches!(a, Some(Value::Array(_))),
        "IS_PRIMITIVE" => matches!(a, Some(v) if !v.is_object() && !v.is_array()),
        "STARTSWITH" => strings.is_some_and(|(s, p)| s.starts_with(p)),
        "ENDSWITH" => strings.is_some_and(|(s, p)| s.ends_with(p)),
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(Number),
    /// One of `* ( ) [ ] , .`
    Sym(char),
    Cmp(CmpOp),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    at: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-')
}

/// Tokenizes the whole text up front; the token list ends with `Eof` carrying the text length.
fn lex(chars: &[char]) -> Result<Vec<Token>, QueryError> {
    let peek = |i: usize| chars.get(i).copied();
    let digit_at = |i: usize| peek(i).is_some_and(|c| c.is_ascii_digit());
    let digits_end = |mut i: usize| {
        while digit_at(i) {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = peek(i) {
        let at = i;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '*' | '(' | ')' | '[' | ']' | ',' | '.' => {
                i += 1;
                Tok::Sym(c)
            }
            '=' => {
                i += 1;
                Tok::Cmp(CmpOp::Eq)
            }
            '!' | '<' | '>' => {
                let (op, width) = match (c, peek(i + 1)) {
                    ('!', Some('=')) | ('<', Some('>')) => (CmpOp::Ne, 2),
                    ('<', Some('=')) => (CmpOp::Le, 2),
                    ('>', Some('=')) => (CmpOp::Ge, 2),
                    ('<', _) => (CmpOp::Lt, 1),
                    ('>', _) => (CmpOp::Gt, 1),
                    _ => return Err(QueryError::UnexpectedChar { ch: c, at }),
                };
                i += width;
                Tok::Cmp(op)
            }
            '\'' | '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match peek(i) {
                        None => return Err(QueryError::UnterminatedString { at }),
                        Some(q) if q == c && peek(i + 1) == Some(c) => {
                            s.push(c);
                            i += 2;
                        }
                        Some(q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(other) => {
                            s.push(other);
                            i += 1;
                        }
                    }
                }
                Tok::Str(s)
            }
            c if c.is_ascii_digit() || (c == '-' && digit_at(i + 1)) => {
                i = digits_end(i + 1);
                if peek(i) == Some('.') && digit_at(i + 1) {
                    i = digits_end(i + 1);
                }
                let sign = usize::from(matches!(peek(i + 1), Some('+' | '-')));
                if matches!(peek(i), Some('e' | 'E')) && digit_at(i + 1 + sign) {
                    i = digits_end(i + 1 + sign);
                }
                let text: String = chars.get(at..i).unwrap_or_default().iter().collect();
                Tok::Num(parse_number(&text).ok_or(QueryError::InvalidNumber { text, at })?)
            }
            c if is_ident_start(c) => {
                while peek(i).is_some_and(is_ident_char) {
                    i += 1;
                }
                Tok::Ident(chars.get(at..i).unwrap_or_default().iter().collect())
            }
            ch => return Err(QueryError::UnexpectedChar { ch, at }),
        };
        out.push(Token { tok, at });
    }
    out.push(Token {
        tok: Tok::Eof,
        at: chars.len(),
    });
    Ok(out)
}

/// Integers stay integers so they compare exactly; `1e999` (not finite) is refused.
fn parse_number(text: &str) -> Option<Number> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(u.into());
    }
    Number::from_f64(text.parse::<f64>().ok()?)
}

/// Words that cannot start a property path or be an alias, so `WHERE AND = 1` or
/// `COUNT() AS FROM` fails where the mistake is.
fn reserved(word: &str) -> bool {
    [
        "AND", "OR", "NOT", "IN", "NIN", "SELECT", "FROM", "WHERE", "GROUP", "ORDER", "BY", "AS",
    ]
    .iter()
    .any(|r| word.eq_ignore_ascii_case(r))
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Sym(c) => format!("'{c}'"),
        Tok::Cmp(op) => format!("'{}'", op.symbol()),
        Tok::Eof => "end of query".into(),
    }
}

static EOF: Token = Token {
    tok: Tok::Eof,
    at: 0,
};

/// Recursive descent; `depth` counts open parentheses and `NOT`s, the only ways to recurse.
struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        self.toks
            .get(self.pos + ahead)
            .or(self.toks.last())
            .unwrap_or(&EOF)
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.is_kw(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expected(&self, expected: &'static str) -> QueryError {
        let t = self.peek();
        QueryError::Expected {
            expected,
            found: describe(&t.tok),
            at: t.at,
        }
    }

    fn expect(&mut self, tok: Tok, what: &'static str) -> Result<(), QueryError> {
        if self.peek().tok == tok {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    fn unsupported(&self, what: impl Into<String>) -> QueryError {
        QueryError::Unsupported {
            what: what.into(),
            at: self.peek().at,
        }
    }

    fn deeper(&self, depth: usize) -> Result<usize, QueryError> {
        if depth >= MAX_DEPTH {
            return Err(QueryError::TooDeep {
                max: MAX_DEPTH,
                at: self.peek().at,
            });
        }
        Ok(depth + 1)
    }

    fn query(mut self) -> Result<HubQuery, QueryError> {
        if !self.eat_kw("SELECT") {
            return Err(self.expected("SELECT"));
        }
        let projection = self.projection()?;
        if !self.eat_kw("FROM") {
            return Err(self.expected("FROM"));
        }
        let source = self.source()?;
        let filter = if self.eat_kw("WHERE") {
            Some(self.chain(0, true)?)
        } else {
            None
        };
        for (kw, what) in [
            ("GROUP", "GROUP BY"),
            ("ORDER", "ORDER BY"),
            ("JOIN", "JOIN"),
        ] {
            if self.is_kw(kw) {
                return Err(self.unsupported(what));
            }
        }
        if self.peek().tok != Tok::Eof {
            return Err(self.expected(if filter.is_some() {
                "AND, OR or end of query"
            } else {
                "WHERE or end of query"
            }));
        }
        Ok(HubQuery {
            source,
            projection,
            filter,
        })
    }

    fn projection(&mut self) -> Result<Projection, QueryError> {
        if self.peek().tok == Tok::Sym('*') {
            self.pos += 1;
            if self.peek().tok == Tok::Sym(',') {
                return Err(self.unsupported("projections besides *"));
            }
            return Ok(Projection::All);
        }
        if self.is_kw("COUNT") && self.peek_at(1).tok == Tok::Sym('(') {
            self.pos += 2;
            self.expect(Tok::Sym(')'), "')' (COUNT takes no argument)")?;
            let alias = if self.eat_kw("AS") {
                if matches!(&self.peek().tok, Tok::Ident(a) if reserved(a)) {
                    return Err(self.expected("an alias"));
                }
                self.word(false, "an alias")?
            } else {
                "$1".to_string()
            };
            if self.peek().tok == Tok::Sym(',') {
                return Err(self.unsupported("projections besides COUNT()"));
            }
            return Ok(Projection::Count { alias });
        }
        if self.is_kw("TOP") {
            return Err(self.unsupported("TOP"));
        }
        match &self.peek().tok {
            Tok::Ident(name) if !reserved(name) => Err(self.unsupported(format!(
                "projecting {name} (only SELECT * and SELECT COUNT() are supported)"
            ))),
            _ => Err(self.expected("* or COUNT()")),
        }
    }

    fn source(&mut self) -> Result<Source, QueryError> {
        if !self.eat_kw("devices") {
            return Err(self.expected("devices or devices.modules"));
        }
        if self.peek().tok != Tok::Sym('.') {
            return Ok(Source::Devices);
        }
        self.pos += 1;
        if self.eat_kw("modules") {
            Ok(Source::Modules)
        } else if self.is_kw("jobs") {
            Err(self.unsupported("FROM devices.jobs"))
        } else {
            Err(self.expected("modules"))
        }
    }

    /// `or` parses an `OR` chain of `AND` chains; otherwise an `AND` chain of `NOT` terms.
    fn chain(&mut self, depth: usize, or: bool) -> Result<Expr, QueryError> {
        let term = |p: &mut Self| {
            if or {
                p.chain(depth, false)
            } else {
                p.not_expr(depth)
            }
        };
        let mut terms = vec![term(self)?];
        while self.eat_kw(if or { "OR" } else { "AND" }) {
            terms.push(term(self)?);
        }
        Ok(match (terms.len(), or) {
            (1, _) => terms.swap_remove(0),
            (_, true) => Expr::Or(terms),
            (_, false) => Expr::And(terms),
        })
    }

    fn not_expr(&mut self, depth: usize) -> Result<Expr, QueryError> {
        if self.is_kw("NOT") {
            let depth = self.deeper(depth)?;
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not_expr(depth)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, QueryError> {
        if self.peek().tok == Tok::Sym('(') {
            let depth = self.deeper(depth)?;
            self.pos += 1;
            let e = self.chain(depth, true)?;
            self.expect(Tok::Sym(')'), "')'")?;
            return Ok(e);
        }
        if let Tok::Ident(name) = &self.peek().tok {
            if self.peek_at(1).tok == Tok::Sym('(') {
                return self.call(name.clone());
            }
        }
        let lhs = self.operand()?;
        if let Tok::Cmp(op) = self.peek().tok {
            self.pos += 1;
            let rhs = self.operand()?;
            return Ok(Expr::Cmp(op, lhs, rhs));
        }
        let negated = self.is_kw("NIN");
        if !negated && !self.is_kw("IN") {
            return Err(self.expected("a comparison operator, IN or NIN"));
        }
        self.pos += 1;
        self.expect(Tok::Sym('['), "'[' (IoT Hub lists use square brackets)")?;
        let list = self.separated(']', "',' or ']'", |p| {
            let start = p.pos;
            match p.operand()? {
                Operand::Lit(v) => Ok(v),
                Operand::Path(_) => {
                    p.pos = start;
                    Err(p.expected("a string, number, true, false or null"))
                }
            }
        })?;
        Ok(Expr::In {
            operand: lhs,
            list,
            negated,
        })
    }

    fn call(&mut self, name: String) -> Result<Expr, QueryError> {
        let at = self.peek().at;
        let Some(&(canonical, arity)) = FUNCS.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name))
        else {
            return Err(QueryError::UnknownFunction { name, at });
        };
        self.pos += 2;
        let args = self.separated(')', "',' or ')'", Self::operand)?;
        if args.len() != arity {
            return Err(QueryError::Arity {
                name: canonical,
                expected: arity,
                found: args.len(),
                at,
            });
        }
        if matches!(self.peek().tok, Tok::Cmp(_)) {
            return Err(self.unsupported(format!(
                "comparing the result of {canonical}; use it as a condition on its own"
            )));
        }
        Ok(Expr::Call(canonical, args))
    }

    /// Comma-separated items up to and including `close`; `what` names what may follow an item.
    fn separated<T>(
        &mut self,
        close: char,
        what: &'static str,
        item: impl Fn(&mut Self) -> Result<T, QueryError>,
    ) -> Result<Vec<T>, QueryError> {
        let mut items = Vec::new();
        while self.peek().tok != Tok::Sym(close) {
            if !items.is_empty() {
                self.expect(Tok::Sym(','), what)?;
            }
            items.push(item(self)?);
        }
        self.pos += 1;
        Ok(items)
    }

    /// A property path (`a.b['c d'].e`) or a literal.
    fn operand(&mut self) -> Result<Operand, QueryError> {
        const WHAT: &str = "a property, string, number, true, false or null";
        let lit = match &self.peek().tok {
            Tok::Str(s) => Value::String(s.clone()),
            Tok::Num(n) => Value::Number(n.clone()),
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Tok::Ident(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            Tok::Ident(s) if s.eq_ignore_ascii_case("null") => Value::Null,
            Tok::Ident(s) if !reserved(s) => {
                return self.path();
            }
            _ => return Err(self.expected(WHAT)),
        };
        self.pos += 1;
        Ok(Operand::Lit(lit))
    }

    fn path(&mut self) -> Result<Operand, QueryError> {
        let mut segs = vec![self.word(false, "a property name")?];
        loop {
            match self.peek().tok {
                Tok::Sym('.') => {
                    self.pos += 1;
                    segs.push(self.word(false, "a property name after '.'")?);
                }
                Tok::Sym('[') => {
                    self.pos += 1;
                    segs.push(self.word(true, "a quoted property name")?);
                    self.expect(Tok::Sym(']'), "']'")?;
                }
                _ => return Ok(Operand::Path(segs)),
            }
        }
    }

    /// Takes an identifier (or, with `quoted`, a string literal) or reports what was there.
    fn word(&mut self, quoted: bool, what: &'static str) -> Result<String, QueryError> {
        match (&self.peek().tok, quoted) {
            (Tok::Ident(s), false) | (Tok::Str(s), true) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn twin() -> Value {
        json!({
            "deviceId": "dev-1", "status": "enabled", "connectionState": "Connected",
            "tags": {"location": {"region": "US", "city": "Zürich"}, "my key": "v",
                     "nothing": null, "floor": 3, "big": 18446744073709551615u64},
            "properties": {
                "desired": {"$metadata": {"$lastUpdated": "2024-01-01T00:00:00Z"}, "$version": 2},
                "reported": {"temp": 21.5, "fw": "1.2.0", "ok": true, "count": 10, "list": [1, 2]}
            }
        })
    }

    fn q(cond: &str) -> bool {
        let text = format!("SELECT * FROM devices WHERE {cond}");
        parse(&text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .matches(&twin())
    }

    fn err(text: &str) -> QueryError {
        parse(text).expect_err(text)
    }

    #[test]
    fn select_from_and_count() {
        let all = parse("SELECT * FROM devices").unwrap();
        assert!(all.matches(&json!({})));
        assert_eq!(
            (all.source, all.projection),
            (Source::Devices, Projection::All)
        );
        let m = parse("select *\n\tfrom DEVICES.Modules  where moduleId='m1'").unwrap();
        assert_eq!(m.source, Source::Modules);
        assert!(m.matches(&json!({"deviceId": "d", "moduleId": "m1"})));
        assert!(!m.matches(&json!({"deviceId": "d", "moduleId": "m2"})));
        let c = parse("SELECT COUNT() AS numberOfDevices FROM devices WHERE status='enabled'");
        let c = c.unwrap();
        let alias = "numberOfDevices".to_string();
        assert_eq!(c.projection, Projection::Count { alias });
        assert!(c.matches(&twin()));
        let c = parse("select count ( ) from devices.modules").unwrap();
        let alias = "$1".to_string();
        assert_eq!(c.projection, Projection::Count { alias });
    }

    #[test]
    fn comparisons() {
        assert!(q("deviceId = 'dev-1'") && q("deviceId = \"dev-1\"") && !q("deviceId = 'DEV-1'"));
        assert!(q("properties.reported.count = 10.0") && q("10 = properties.reported.count"));
        assert!(q("properties.reported.temp > 21") && q("properties.reported.temp >= 21.5"));
        assert!(q("properties.reported.temp < 2.2e1") && q("properties.reported.temp <= 215E-1"));
        assert!(q("properties.reported.temp > -1e3") && !q("properties.reported.temp < -1"));
        assert!(q("status != 'disabled'") && q("status <> 'disabled'"));
        assert!(!q("status != 'enabled'") && !q("status <> 'enabled'"));
        assert!(q("properties.reported.ok = true") && q("properties.reported.ok != false"));
        assert!(q("properties.desired.$metadata.$lastUpdated > '2023'"));
        assert!(q("properties.reported.list = properties.reported.list"));
        assert!(q("tags.big = 18446744073709551615") && !q("tags.big = 18446744073709551614"));
        assert!(q("tags.location = tags.location") && q("tags.location.city = 'Zürich'"));
    }

    #[test]
    fn numbers_versus_strings() {
        assert!(!q("properties.reported.count = '10'") && q("properties.reported.count != '10'"));
        assert!(!q("properties.reported.count > '9'") && !q("properties.reported.count < '9'"));
        // Strings order by bytes, not as versions or numbers.
        assert!(q("properties.reported.fw > '1.10'") && q("'B' < 'a'"));
        assert!(!q("properties.reported.ok > false") && !q("tags.nothing >= null"));
    }

    #[test]
    fn undefined_and_null() {
        assert!(!q("tags.missing = 1") && !q("tags.missing != 1") && !q("tags.missing < 1"));
        assert!(q("NOT (tags.missing = 1)") && q("NOT tags.missing != 1"));
        assert!(q("tags.nothing = null") && !q("tags.missing = null") && !q("tags.x.y = null"));
        assert!(!q("tags.missing IN [1]") && !q("tags.missing NIN [1]"));
        assert!(!q("deviceId.sub = 'x'") && !q("tags.missing = tags.missing"));
    }

    #[test]
    fn precedence() {
        // AND binds tighter than OR, NOT tighter than AND.
        let (dis, floor3, dev1) = (
            "status = 'disabled'",
            "tags.floor = 3",
            "deviceId = 'dev-1'",
        );
        assert!(q(&format!("{dis} AND {floor3} OR {dev1}")));
        assert!(!q(&format!("{dis} AND ({floor3} OR {dev1})")));
        assert!(q(&format!("{dev1} OR {dis} and {floor3}")));
        assert!(!q(&format!("NOT {dis} AND tags.floor = 4")));
        assert!(q(&format!("NOT ({dis} AND tags.floor = 4)")));
        assert!(q("NOT NOT status = 'enabled'") && q("((status = 'enabled'))"));
    }

    #[test]
    fn in_nin_functions_and_brackets() {
        assert!(q("status IN ['enabled', 'disabled']") && !q("status NIN ['enabled']"));
        assert!(q("tags.floor in [3.0]") && q("tags.floor nin []") && !q("tags.floor IN []"));
        assert!(q("IS_DEFINED(properties.desired.$metadata.$lastUpdated)"));
        assert!(!q("is_defined(tags.missing)") && q("IS_DEFINED(tags.nothing)"));
        assert!(q("IS_NULL(tags.nothing)") && !q("IS_NULL(tags.missing)") && !q("IS_NULL(tags)"));
        assert!(q("IS_STRING(deviceId)") && q("IS_NUMBER(tags.floor)") && !q("IS_NUMBER('1')"));
        assert!(q("IS_BOOL(properties.reported.ok)") && q("IS_OBJECT(tags)"));
        assert!(q("IS_ARRAY(properties.reported.list)") && q("IS_PRIMITIVE(tags.nothing)"));
        assert!(q("STARTSWITH(deviceId, 'dev')") && q("EndsWith(deviceId, '-1')"));
        assert!(!q("STARTSWITH(deviceId, 'Dev')") && !q("STARTSWITH(tags.floor, '3')"));
        assert!(q("tags['my key'] = 'v'") && q("tags[\"location\"].region = 'US'"));
        assert!(q("'it''s' = \"it's\"") && q("\"a\"\"b\" = 'a\"b'"));
    }

    /// The error for `SELECT * FROM devices WHERE {cond}` and its position.
    fn werr(cond: &str) -> (QueryError, usize) {
        let e = err(&format!("SELECT * FROM devices WHERE {cond}"));
        let at = match &e {
            QueryError::TooLong { .. } => usize::MAX,
            QueryError::TooDeep { at, .. }
            | QueryError::Expected { at, .. }
            | QueryError::UnterminatedString { at }
            | QueryError::UnexpectedChar { at, .. }
            | QueryError::InvalidNumber { at, .. }
            | QueryError::UnknownFunction { at, .. }
            | QueryError::Arity { at, .. }
            | QueryError::Unsupported { at, .. } => *at - 28,
        };
        (e, at)
    }

    #[test]
    fn errors_name_what_and_where() {
        let e = err("SELECT * devices");
        assert_eq!(e.to_string(), "expected FROM at 9, found 'devices'");
        let e = err("SELECT * FROM devices GROUP BY status");
        assert_eq!(e.to_string(), "unsupported: GROUP BY at 22");
        let unsupported = |text: &str| match err(text) {
            QueryError::Unsupported { what, at } => (what, at),
            other => panic!("{text}: {other}"),
        };
        let order = unsupported("SELECT * FROM devices ORDER BY x");
        assert_eq!(order, ("ORDER BY".into(), 22));
        assert_eq!(
            unsupported("SELECT TOP 5 * FROM devices"),
            ("TOP".into(), 7)
        );
        assert_eq!(unsupported("SELECT * FROM devices.jobs").1, 22);
        assert_eq!(unsupported("SELECT * FROM devices JOIN x").0, "JOIN");
        assert!(unsupported("SELECT deviceId FROM devices")
            .0
            .contains("deviceId"));
        assert!(unsupported("SELECT *, x FROM devices")
            .0
            .contains("besides *"));
        let e = werr("IS_NULL(x) = true").0.to_string();
        assert!(
            e.starts_with("unsupported: comparing the result of IS_NULL"),
            "{e}"
        );
        let e = err("SELECT * FROM things");
        assert!(matches!(e, QueryError::Expected { at: 14, .. }), "{e}");
        let e = err("UPDATE devices");
        assert!(matches!(e, QueryError::Expected { at: 0, .. }), "{e}");
        let (e, at) = werr("");
        assert_eq!(at, 0, "{e}");
        let alias = err("SELECT COUNT() AS FROM devices").to_string();
        assert_eq!(alias, "expected an alias at 18, found 'FROM'");
        let want =
            "expected a property, string, number, true, false or null at 28, found end of query";
        assert_eq!(e.to_string(), want);
        assert_eq!(werr("status IN ('a')").1, 10);
        assert_eq!(werr("status IN ['a', status]").1, 16);
        assert_eq!(werr("status IN ['a' 'b']").1, 15);
        assert_eq!(werr("status 'x'").1, 7);
        assert_eq!(werr("(status = 'x'").1, 13);
        assert_eq!(werr("status = 'x' status").1, 13);
        assert_eq!(werr("tags. = 1").1, 6);
        assert_eq!(werr("AND = 1").1, 0);
        let e = werr("LOWER(x) = 'a'").0;
        assert_eq!(e.to_string(), "unknown function LOWER at 28");
        let e = werr("startswith(x)").0;
        assert_eq!(
            e.to_string(),
            "STARTSWITH takes 2 argument(s), found 1 at 28"
        );
        let e = werr("x = 1e999").0;
        assert_eq!(e.to_string(), "invalid number 1e999 at 32");
        let e = werr("x ! 1").0;
        assert_eq!(e, QueryError::UnexpectedChar { ch: '!', at: 30 });
    }

    #[test]
    fn hostile_input() {
        let e = err(&"(".repeat(100_000));
        let max = MAX_QUERY_CHARS;
        assert_eq!(e, QueryError::TooLong { len: 100_000, max });
        let nested = |n: usize, not: &str| {
            let close = ")".repeat(n);
            format!("{}x = 1{close}", format!("{not}(").repeat(n))
        };
        assert!(parse(&format!(
            "SELECT * FROM devices WHERE {}",
            nested(MAX_DEPTH, "")
        ))
        .is_ok());
        let (e, at) = werr(&nested(MAX_DEPTH + 1, ""));
        assert_eq!(
            (e.to_string(), at),
            ("conditions nested deeper than 32 levels at 60".into(), 32)
        );
        assert!(matches!(
            werr(&nested(20, "NOT ")).0,
            QueryError::TooDeep { .. }
        ));
        let nots = format!("{}x = 1", "NOT ".repeat(2000));
        assert!(matches!(werr(&nots).0, QueryError::TooDeep { .. }));
        // Long flat chains are fine up to the length cap.
        let base = "SELECT * FROM devices WHERE x = 1";
        let room = MAX_QUERY_CHARS - base.len();
        assert!(parse(&format!("{base}{}", " OR x = 1".repeat(room / 9))).is_ok());
        let padded = format!("{base}{}", " ".repeat(room));
        assert!(parse(&padded).is_ok());
        assert!(matches!(
            err(&format!("{padded} ")),
            QueryError::TooLong { .. }
        ));
        // The cap counts characters, not bytes.
        assert!(parse(&format!(
            "SELECT * FROM devices WHERE x = '{}'",
            "é".repeat(8000)
        ))
        .is_ok());
        assert_eq!(
            werr("x = 'oops").0,
            QueryError::UnterminatedString { at: 32 }
        );
        assert_eq!(
            werr("tàgs = 1").0,
            QueryError::UnexpectedChar { ch: 'à', at: 29 }
        );
        let e = err("SELECT * FROM dévices");
        assert_eq!(e, QueryError::UnexpectedChar { ch: 'é', at: 15 });
    }

    #[test]
    fn parse_never_panics() {
        let pieces: Vec<&str> = "SELECT|*|FROM|devices|.|modules|WHERE|NOT|AND|OR|(|)|[|]|,|=|!=\
            |<>|<|>=|'|\"|'a''b'|-|1|-2.5|1e|e9|IN|NIN|COUNT()|AS|IS_DEFINED(|STARTSWITH(|tags|$\
            |é|\u{0}| |\n|GROUP|BY|null|true|x|99999999999999999999"
            .split('|')
            .collect();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        };
        let t = twin();
        for _ in 0..20_000 {
            let n = next() % 24;
            let text: Vec<&str> = (0..n).map(|_| pieces[next() % pieces.len()]).collect();
            if let Ok(query) = parse(&text.join(if next() % 2 == 0 { " " } else { "" })) {
                query.matches(&t);
            }
        }
        let valid = "SELECT COUNT() AS n FROM devices.modules WHERE NOT (a.b['c'] IN [1, 'x']) \
                     OR STARTSWITH(deviceId, 'd') AND x >= -1.5e3";
        assert!(parse(valid).is_ok());
        for (i, _) in valid.char_indices() {
            let _ = (parse(&valid[..i]), parse(&valid[i..]));
        }
    }
}
