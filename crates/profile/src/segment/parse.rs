//! The text form: a tokenizer and a recursive-descent parser that say where and what went wrong.

use super::{Expr, Op, SegmentError, Value};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(i64),
    Op(Op),
    Open,
    Close,
    Comma,
    End,
}

fn describe(t: &Token) -> String {
    match t {
        Token::Word(w) => format!("{w:?}"),
        Token::Text(s) => format!("the text {s:?}"),
        Token::Number(n) => format!("the number {n}"),
        Token::Op(op) => format!("'{}'", op.as_str()),
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::Comma => "','".into(),
        Token::End => "the end of the expression".into(),
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, SegmentError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                out.push((
                    at,
                    match c {
                        '(' => Token::Open,
                        ')' => Token::Close,
                        _ => Token::Comma,
                    },
                ));
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let eq = chars.peek().is_some_and(|&(_, n)| n == '=');
                if eq {
                    chars.next();
                }
                let op = match (c, eq) {
                    ('=', _) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    _ => return Err(SegmentError::new(at, "expected '!=' after '!'")),
                };
                out.push((at, Token::Op(op)));
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, e @ ('"' | '\\'))) => s.push(e),
                            Some((p, other)) => {
                                return Err(SegmentError::new(
                                    p,
                                    format!("unknown escape '\\{other}' (only \\\" and \\\\)"),
                                ))
                            }
                            None => {
                                return Err(SegmentError::new(
                                    text.len(),
                                    "unterminated text: expected '\"'",
                                ))
                            }
                        },
                        Some((_, ch)) => s.push(ch),
                        None => {
                            return Err(SegmentError::new(
                                at,
                                "unterminated text: expected a closing '\"'",
                            ))
                        }
                    }
                }
                out.push((at, Token::Text(s)));
            }
            c if c.is_ascii_digit() || c == '-' => {
                chars.next();
                let mut digits = c.to_string();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        digits.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let n = digits.parse::<i64>().map_err(|_| {
                    SegmentError::new(at, format!("{digits:?} is not a whole number"))
                })?;
                out.push((at, Token::Number(n)));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut w = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' || d == '.' {
                        w.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push((at, Token::Word(w)));
            }
            other => {
                return Err(SegmentError::new(
                    at,
                    format!("unexpected character {other:?}"),
                ))
            }
        }
    }
    out.push((text.len(), Token::End));
    Ok(out)
}

/// An expression and the byte position of each of its nodes, in pre-order.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub expr: Expr,
    pub positions: Vec<usize>,
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    depth: usize,
}

/// Deepest nesting accepted, so a hostile expression cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

fn is_kw(t: &Token, kw: &str) -> bool {
    matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(kw))
}

/// Words that start or continue a clause and so cannot name a field.
const KEYWORDS: &[&str] = &[
    "and", "or", "not", "tag", "in", "segment", "did", "where", "at", "least", "times", "last",
    "days",
];

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)].1
    }

    fn pos(&self) -> usize {
        self.tokens[self.at.min(self.tokens.len() - 1)].0
    }

    fn next(&mut self) -> (usize, Token) {
        let t = self.tokens[self.at.min(self.tokens.len() - 1)].clone();
        self.at += 1;
        t
    }

    fn expected(&self, what: &str) -> SegmentError {
        SegmentError::new(
            self.pos(),
            format!("expected {what}, found {}", describe(self.peek())),
        )
    }

    fn keyword(&mut self, kw: &str) -> Result<(), SegmentError> {
        if is_kw(self.peek(), kw) {
            self.next();
            Ok(())
        } else {
            Err(self.expected(&format!("'{kw}'")))
        }
    }

    fn number(&mut self, what: &str) -> Result<i64, SegmentError> {
        match self.peek() {
            Token::Number(n) => {
                let n = *n;
                self.next();
                Ok(n)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn text(&mut self, what: &str) -> Result<String, SegmentError> {
        match self.peek() {
            Token::Text(s) => {
                let s = s.clone();
                self.next();
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn value(&mut self) -> Result<Value, SegmentError> {
        match self.peek().clone() {
            Token::Number(n) => {
                self.next();
                Ok(Value::Number(n))
            }
            Token::Text(s) => {
                self.next();
                Ok(Value::Text(s))
            }
            _ => Err(self.expected("a value (\"text\" or a number)")),
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, SegmentError> {
        match self.peek() {
            Token::Word(w) if !KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                let w = w.clone();
                self.next();
                Ok(w)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn or(&mut self, out: &mut Vec<usize>) -> Result<Expr, SegmentError> {
        self.chain(out, "or", Self::and, Expr::Or)
    }

    fn and(&mut self, out: &mut Vec<usize>) -> Result<Expr, SegmentError> {
        self.chain(out, "and", Self::unary, Expr::And)
    }

    /// `item (KW item)*`, flattened into one node when there is more than one item.
    fn chain(
        &mut self,
        out: &mut Vec<usize>,
        kw: &str,
        item: fn(&mut Self, &mut Vec<usize>) -> Result<Expr, SegmentError>,
        node: fn(Vec<Expr>) -> Expr,
    ) -> Result<Expr, SegmentError> {
        let start = self.pos();
        let slot = out.len();
        out.push(start);
        let mut items = vec![item(self, out)?];
        while is_kw(self.peek(), kw) {
            self.next();
            items.push(item(self, out)?);
        }
        if items.len() == 1 {
            out.remove(slot);
            Ok(items.remove(0))
        } else {
            Ok(node(items))
        }
    }

    fn unary(&mut self, out: &mut Vec<usize>) -> Result<Expr, SegmentError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SegmentError::new(
                self.pos(),
                format!("nested more than {MAX_DEPTH} deep"),
            ));
        }
        let result = self.unary_inner(out);
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self, out: &mut Vec<usize>) -> Result<Expr, SegmentError> {
        let start = self.pos();
        if is_kw(self.peek(), "not") {
            self.next();
            out.push(start);
            return Ok(Expr::Not(Box::new(self.unary(out)?)));
        }
        if *self.peek() == Token::Open {
            self.next();
            let inner = self.or(out)?;
            if *self.peek() != Token::Close {
                return Err(self.expected("')'"));
            }
            self.next();
            return Ok(inner);
        }
        out.push(start);
        if is_kw(self.peek(), "tag") {
            self.next();
            return Ok(Expr::Tag(self.text("a tag name in quotes")?));
        }
        if is_kw(self.peek(), "in") {
            self.next();
            self.keyword("segment")?;
            return Ok(Expr::Segment(self.text("a segment name in quotes")?));
        }
        if is_kw(self.peek(), "did") {
            self.next();
            let event = self.ident("an event type (view, add_to_cart, purchase, …)")?;
            let filter = if is_kw(self.peek(), "where") {
                self.next();
                let prop = self.ident("a property name")?;
                if *self.peek() != Token::Op(Op::Eq) {
                    return Err(self.expected("'=' (a property filter compares for equality)"));
                }
                self.next();
                Some((prop, self.value()?))
            } else {
                None
            };
            let mut at_least = 1;
            if is_kw(self.peek(), "at") {
                self.next();
                self.keyword("least")?;
                let p = self.pos();
                let n = self.number("a number of times")?;
                at_least = u32::try_from(n)
                    .map_err(|_| SegmentError::new(p, format!("{n} is not a count of times")))?;
                self.keyword("times")?;
            }
            self.keyword("in")?;
            self.keyword("last")?;
            let p = self.pos();
            let n = self.number("a number of days")?;
            let days = u32::try_from(n)
                .map_err(|_| SegmentError::new(p, format!("{n} is not a number of days")))?;
            self.keyword("days")?;
            return Ok(Expr::Did {
                event,
                filter,
                at_least,
                days,
            });
        }
        let field =
            self.ident("a condition: a field, tag \"…\", in segment \"…\", did …, NOT or '('")?;
        match self.peek().clone() {
            Token::Op(op) => {
                self.next();
                Ok(Expr::Compare {
                    field,
                    op,
                    value: self.value()?,
                })
            }
            Token::Word(w) if w.eq_ignore_ascii_case("in") => {
                self.next();
                if *self.peek() != Token::Open {
                    return Err(self.expected("'(' to start the list"));
                }
                self.next();
                let mut values = vec![self.value()?];
                while *self.peek() == Token::Comma {
                    self.next();
                    values.push(self.value()?);
                }
                if *self.peek() != Token::Close {
                    return Err(self.expected("',' or ')'"));
                }
                self.next();
                Ok(Expr::In { field, values })
            }
            _ => Err(self.expected(&format!(
                "a comparison (=, !=, <, <=, >, >=) or 'in' after {field:?}"
            ))),
        }
    }
}

/// Parses the text form.
pub fn parse(text: &str) -> Result<Parsed, SegmentError> {
    let tokens = tokenize(text)?;
    let mut p = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let mut positions = Vec::new();
    if *p.peek() == Token::End {
        return Err(p.expected("a condition"));
    }
    let expr = p.or(&mut positions)?;
    if *p.peek() != Token::End {
        return Err(p.expected("AND, OR or the end of the expression"));
    }
    Ok(Parsed { expr, positions })
}
