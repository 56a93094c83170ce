//! The query language of `GET /search`, parsed into a [`Query`] at the edge.
//!
//! ```text
//! query   := or
//! or      := and ( [OR] and )*        adjacent clauses without an operator: OR
//! and     := unary ( AND unary | NOT unary )*     `a NOT b` is `a AND NOT b`
//! unary   := NOT unary | primary
//! primary := "(" or ")" | term
//! term    := [field ":"] ( word | "quoted phrase" )
//! ```
//!
//! A bare term searches `symbol`, `alias_symbol` and `prev_symbol`; a word
//! may hold `*` wildcards anywhere; a quoted phrase is one exact value,
//! spaces included (`*` in it is a plain character). Operators are upper
//! case, as in Lucene. Matching is case-insensitive.

use std::fmt;

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 512;
/// Deepest nesting of parentheses and NOTs.
const MAX_DEPTH: usize = 16;
/// Most terms in one query.
const MAX_TERMS: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Term(Term),
    And(Box<Query>, Box<Query>),
    Or(Box<Query>, Box<Query>),
    Not(Box<Query>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// None: the symbol fields.
    pub field: Option<String>,
    /// Lowercased.
    pub text: String,
    /// `*` in `text` matches any run of characters.
    pub wildcard: bool,
    /// Where the term starts (1-based character), for error messages.
    pub at: usize,
}

/// A malformed query: where (1-based character) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.at, self.message)
    }
}

impl QueryError {
    fn new(at: usize, message: impl Into<String>) -> Self {
        Self {
            at,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Term(Term),
}

fn describe(t: Option<&(usize, Token)>) -> String {
    match t.map(|(_, t)| t) {
        None => "the end of the query".into(),
        Some(Token::Open) => "'('".into(),
        Some(Token::Close) => "')'".into(),
        Some(Token::And) => "AND".into(),
        Some(Token::Or) => "OR".into(),
        Some(Token::Not) => "NOT".into(),
        Some(Token::Term(t)) => format!("the term {:?}", t.text),
    }
}

fn lex(q: &str) -> Result<Vec<(usize, Token)>, QueryError> {
    let chars: Vec<char> = q.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let special = |c: char| c.is_whitespace() || c == '(' || c == ')' || c == '"';
    // A quoted phrase starting at `i` (its opening quote); returns its text and the next index.
    let phrase = |i: usize| -> Result<(String, usize), QueryError> {
        let close = chars[i + 1..]
            .iter()
            .position(|&c| c == '"')
            .ok_or_else(|| QueryError::new(i + 1, "this quote is never closed"))?;
        let text: String = chars[i + 1..i + 1 + close].iter().collect();
        if text.trim().is_empty() {
            return Err(QueryError::new(
                i + 1,
                "an empty phrase (\"\") matches nothing",
            ));
        }
        Ok((text, i + close + 2))
    };
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            tokens.push((at, Token::Open));
            i += 1;
        } else if c == ')' {
            tokens.push((at, Token::Close));
            i += 1;
        } else if c == '"' {
            let (text, next) = phrase(i)?;
            tokens.push((at, Token::Term(exact(None, &text, at))));
            i = next;
        } else {
            let start = i;
            while i < chars.len() && !special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match word.as_str() {
                "AND" => tokens.push((at, Token::And)),
                "OR" => tokens.push((at, Token::Or)),
                "NOT" => tokens.push((at, Token::Not)),
                _ => match word.split_once(':') {
                    None => tokens.push((at, Token::Term(word_term(None, &word, at)?))),
                    Some((field, value)) => {
                        if field.is_empty() {
                            return Err(QueryError::new(at, "a ':' needs a field name before it"));
                        }
                        if !value.is_empty() {
                            tokens.push((at, Token::Term(word_term(Some(field), value, at)?)));
                        } else if chars.get(i) == Some(&'"') {
                            let (text, next) = phrase(i)?;
                            tokens.push((at, Token::Term(exact(Some(field), &text, at))));
                            i = next;
                        } else if chars.get(i) == Some(&'(') {
                            return Err(QueryError::new(
                                i + 1,
                                format!(
                                    "{field}:(...) is not supported; write {field}:a OR {field}:b"
                                ),
                            ));
                        } else {
                            return Err(QueryError::new(
                                at,
                                format!("{field}: needs a term after the ':'"),
                            ));
                        }
                    }
                },
            }
        }
    }
    Ok(tokens)
}

fn exact(field: Option<&str>, text: &str, at: usize) -> Term {
    Term {
        field: field.map(str::to_string),
        text: text.to_lowercase(),
        wildcard: false,
        at,
    }
}

fn word_term(field: Option<&str>, word: &str, at: usize) -> Result<Term, QueryError> {
    if word.contains(':') {
        return Err(QueryError::new(
            at,
            format!("{word:?} has more than one ':'; quote a value that holds one"),
        ));
    }
    Ok(Term {
        field: field.map(str::to_string),
        text: word.to_lowercase(),
        wildcard: word.contains('*'),
        at,
    })
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
    depth: usize,
    terms: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(usize, Token)> {
        self.tokens.get(self.pos)
    }
    fn at(&self) -> usize {
        self.peek().map_or(self.end, |(at, _)| *at)
    }
    fn starts_clause(&self) -> bool {
        matches!(
            self.peek().map(|(_, t)| t),
            Some(Token::Open | Token::Not | Token::Term(_))
        )
    }
    fn or(&mut self) -> Result<Query, QueryError> {
        let mut left = self.and()?;
        loop {
            if matches!(self.peek(), Some((_, Token::Or))) {
                self.pos += 1;
            } else if !self.starts_clause() {
                return Ok(left);
            }
            let right = self.and()?;
            left = Query::Or(Box::new(left), Box::new(right));
        }
    }
    fn and(&mut self) -> Result<Query, QueryError> {
        let mut left = self.unary()?;
        loop {
            match self.peek() {
                Some((_, Token::And)) => {
                    self.pos += 1;
                    let right = self.unary()?;
                    left = Query::And(Box::new(left), Box::new(right));
                }
                Some((_, Token::Not)) => {
                    let right = self.unary()?;
                    left = Query::And(Box::new(left), Box::new(right));
                }
                _ => return Ok(left),
            }
        }
    }
    fn unary(&mut self) -> Result<Query, QueryError> {
        if matches!(self.peek(), Some((_, Token::Not))) {
            self.pos += 1;
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Query::Not(Box::new(inner)));
        }
        self.primary()
    }
    fn deeper(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(QueryError::new(
                self.at(),
                format!("nested more than {MAX_DEPTH} deep"),
            ));
        }
        Ok(())
    }
    fn primary(&mut self) -> Result<Query, QueryError> {
        let at = self.at();
        match self.tokens.get(self.pos).cloned() {
            Some((_, Token::Open)) => {
                self.pos += 1;
                self.deeper()?;
                if matches!(self.peek(), Some((_, Token::Close))) {
                    return Err(QueryError::new(at, "empty parentheses"));
                }
                let inner = self.or()?;
                self.depth -= 1;
                match self.peek() {
                    Some((_, Token::Close)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    other => Err(QueryError::new(
                        self.at(),
                        format!(
                            "expected ')' to close the '(' at character {at}, found {}",
                            describe(other)
                        ),
                    )),
                }
            }
            Some((_, Token::Term(t))) => {
                self.pos += 1;
                self.terms += 1;
                if self.terms > MAX_TERMS {
                    return Err(QueryError::new(at, format!("more than {MAX_TERMS} terms")));
                }
                Ok(Query::Term(t))
            }
            _ => Err(QueryError::new(
                at,
                format!(
                    "expected a term, '(' or NOT, found {}",
                    describe(self.peek())
                ),
            )),
        }
    }
}

/// Parses a query; the error says where it went wrong.
pub fn parse(q: &str) -> Result<Query, QueryError> {
    let len = q.chars().count();
    if len > MAX_QUERY_CHARS {
        return Err(QueryError::new(
            MAX_QUERY_CHARS + 1,
            format!("the query is longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    let tokens = lex(q)?;
    if tokens.is_empty() {
        return Err(QueryError::new(
            1,
            "the query is empty; try q=BRCA1 or q=BRCA*",
        ));
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        end: len + 1,
        depth: 0,
        terms: 0,
    };
    let query = p.or()?;
    match p.peek() {
        None => Ok(query),
        Some((at, Token::Close)) => Err(QueryError::new(*at, "this ')' closes nothing")),
        other => Err(QueryError::new(
            p.at(),
            format!("unexpected {}", describe(other)),
        )),
    }
}

/// Every term of a query, for checking field names against the data set.
pub fn terms(q: &Query) -> Vec<&Term> {
    fn walk<'q>(q: &'q Query, out: &mut Vec<&'q Term>) {
        match q {
            Query::Term(t) => out.push(t),
            Query::And(a, b) | Query::Or(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            Query::Not(a) => walk(a, out),
        }
    }
    let mut out = Vec::new();
    walk(q, &mut out);
    out
}

impl Query {
    /// The query with `field` for every term that names none: HGNC's
    /// `/search/<field>/<query>`, where the path names the default field.
    pub fn with_default_field(self, field: &str) -> Query {
        match self {
            Query::Term(mut t) => {
                t.field.get_or_insert_with(|| field.to_string());
                Query::Term(t)
            }
            Query::And(a, b) => Query::And(
                Box::new(a.with_default_field(field)),
                Box::new(b.with_default_field(field)),
            ),
            Query::Or(a, b) => Query::Or(
                Box::new(a.with_default_field(field)),
                Box::new(b.with_default_field(field)),
            ),
            Query::Not(a) => Query::Not(Box::new(a.with_default_field(field))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_field_goes_to_the_terms_that_name_none() {
        let q = parse("ZNF* AND status:Approved NOT (ZNF3 OR name:x)")
            .unwrap()
            .with_default_field("symbol");
        let fields: Vec<Option<&str>> = terms(&q).iter().map(|t| t.field.as_deref()).collect();
        assert_eq!(
            fields,
            [Some("symbol"), Some("status"), Some("symbol"), Some("name")]
        );
    }

    fn t(field: Option<&str>, text: &str, wildcard: bool, at: usize) -> Query {
        Query::Term(Term {
            field: field.map(str::to_string),
            text: text.into(),
            wildcard,
            at,
        })
    }
    fn and(a: Query, b: Query) -> Query {
        Query::And(Box::new(a), Box::new(b))
    }
    fn or(a: Query, b: Query) -> Query {
        Query::Or(Box::new(a), Box::new(b))
    }
    fn not(a: Query) -> Query {
        Query::Not(Box::new(a))
    }

    #[test]
    fn bare_terms_lowercase_and_wildcards() {
        assert_eq!(parse("BRCA1").unwrap(), t(None, "brca1", false, 1));
        assert_eq!(parse("  BRCA*").unwrap(), t(None, "brca*", true, 3));
        assert_eq!(parse("*kinase*").unwrap(), t(None, "*kinase*", true, 1));
        assert_eq!(parse("a*b").unwrap(), t(None, "a*b", true, 1));
    }

    #[test]
    fn fields_and_phrases() {
        assert_eq!(
            parse("symbol:TP53").unwrap(),
            t(Some("symbol"), "tp53", false, 1)
        );
        assert_eq!(
            parse(r#"locus_group:"protein-coding gene""#).unwrap(),
            t(Some("locus_group"), "protein-coding gene", false, 1)
        );
        // In a phrase, * is a plain character.
        assert_eq!(parse(r#""a*b c""#).unwrap(), t(None, "a*b c", false, 1));
        assert_eq!(
            parse("name:*kinase*").unwrap(),
            t(Some("name"), "*kinase*", true, 1)
        );
    }

    #[test]
    fn operators_precedence_and_parentheses() {
        // AND binds tighter than OR.
        assert_eq!(
            parse("a OR b AND c").unwrap(),
            or(
                t(None, "a", false, 1),
                and(t(None, "b", false, 6), t(None, "c", false, 12))
            )
        );
        assert_eq!(
            parse("(a OR b) AND c").unwrap(),
            and(
                or(t(None, "a", false, 2), t(None, "b", false, 7)),
                t(None, "c", false, 14)
            )
        );
        // Adjacent clauses: OR, as in Lucene.
        assert_eq!(
            parse("a b").unwrap(),
            or(t(None, "a", false, 1), t(None, "b", false, 3))
        );
        // `a NOT b` is a AND NOT b.
        assert_eq!(
            parse("a NOT b").unwrap(),
            and(t(None, "a", false, 1), not(t(None, "b", false, 7)))
        );
        assert_eq!(
            parse("NOT NOT a").unwrap(),
            not(not(t(None, "a", false, 9)))
        );
        assert_eq!(
            parse("a AND NOT (b OR c)").unwrap(),
            and(
                t(None, "a", false, 1),
                not(or(t(None, "b", false, 12), t(None, "c", false, 17)))
            )
        );
        // Lower-case words are terms, not operators.
        assert_eq!(
            parse("a and b").unwrap(),
            or(
                or(t(None, "a", false, 1), t(None, "and", false, 3)),
                t(None, "b", false, 7)
            )
        );
    }

    #[test]
    fn every_error_says_where() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "empty"),
            ("   ", 1, "empty"),
            ("(", 2, "expected a term"),
            ("(a", 3, "expected ')' to close the '(' at character 1"),
            ("a)", 2, "closes nothing"),
            ("()", 1, "empty parentheses"),
            ("AND a", 1, "expected a term"),
            ("a AND", 6, "expected a term, '(' or NOT, found the end"),
            ("a OR OR b", 6, "found OR"),
            ("NOT", 4, "found the end"),
            ("\"abc", 1, "never closed"),
            ("a \"\" b", 3, "empty phrase"),
            (":a", 1, "field name"),
            ("symbol:", 1, "needs a term"),
            ("symbol:(a b)", 8, "not supported"),
            ("a:b:c", 1, "more than one ':'"),
        ];
        for (q, at, want) in cases {
            let e = parse(q).unwrap_err();
            assert_eq!(e.at, *at, "{q:?}: {e}");
            assert!(e.message.contains(want), "{q:?}: {e}");
            assert!(e.to_string().starts_with(&format!("at character {at}:")));
        }
    }

    #[test]
    fn limits_are_errors_too() {
        let long = "a".repeat(MAX_QUERY_CHARS + 1);
        assert!(parse(&long).unwrap_err().message.contains("longer than"));
        let deep = format!(
            "{}a{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
        let many = vec!["a"; MAX_TERMS + 1].join(" OR ");
        assert!(parse(&many)
            .unwrap_err()
            .message
            .contains("more than 32 terms"));
        assert!(parse(&vec!["a"; MAX_TERMS].join(" ")).is_ok());
    }

    #[test]
    fn terms_lists_every_term() {
        let q = parse("a AND (symbol:b OR NOT c)").unwrap();
        let names: Vec<&str> = terms(&q).iter().map(|t| t.text.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
