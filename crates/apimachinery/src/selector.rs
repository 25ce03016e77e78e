//! Label selectors as kube-apiserver understands them (k8s.io/apimachinery `pkg/labels`,
//! `pkg/selection`, and `LabelSelectorAsSelector` from `pkg/apis/meta/v1`).
//!
//! Two sources, one type:
//!
//! - the string form of `?labelSelector=` ([`LabelSelector::parse`]): comma-separated
//!   requirements `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
//!   `key` (exists), `!key` (does not exist), `key>N` and `key<N` (integer comparisons);
//! - a `metav1.LabelSelector` object as found in a spec ([`LabelSelector::from_json`]):
//!   `matchLabels` and `matchExpressions` with the operators `In`, `NotIn`, `Exists` and
//!   `DoesNotExist`.
//!
//! A selector either *selects nothing* ([`LabelSelector::nothing`], what a `null` spec
//! selector means) or is a conjunction of [`Requirement`]s sorted by key; with no requirement it
//! selects everything ([`LabelSelector::everything`], the empty string, `{}`).
//!
//! Semantics and error messages follow upstream at Kubernetes v1.33 (the API version rkube
//! speaks), including its quirks: parse errors read `unable to parse requirement: …` or
//! `found '…', expected: …`; a key rejected by the parser is reported at the path `<nil>`;
//! label values at `values[i][key]`; several problems in one requirement as `[a, b]`.
//! One deliberate difference: a run of commas that ends a value set (`x in (a,,)`) parses, as
//! upstream's parser does since a 2025 fix; v1.33's rejects it.

use crate::gostr::go_quote;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// A label selector that could not be parsed or built; the message is upstream's wording.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectorError {
    message: String,
}

impl SelectorError {
    fn new(message: impl Into<String>) -> Self {
        SelectorError {
            message: message.into(),
        }
    }

    /// The message, as upstream's `err.Error()` would read.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// How a requirement relates a label to its values (upstream's `selection.Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key in (a,b)`: the label exists and its value is one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or its value is none of the values.
    NotIn,
    /// `key=value`.
    Equals,
    /// `key==value` (same meaning as `=`; kept apart so it prints back as written).
    DoubleEquals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label does not exist.
    DoesNotExist,
    /// `key>N`: the label exists, is an integer, and is greater than N.
    GreaterThan,
    /// `key<N`: the label exists, is an integer, and is less than N.
    LessThan,
}

impl Operator {
    /// Upstream's spelling of the operator (`in`, `notin`, `=`, `==`, `!=`, `exists`, `!`,
    /// `gt`, `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One condition on one label key. Always valid: built only by [`Requirement::new`] and the
/// parsers, which check the key, the value count for the operator and every value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Upstream's `labels.NewRequirement`. The rules:
    /// the key must be a qualified name; `In`/`NotIn` need at least one value;
    /// `Equals`/`DoubleEquals`/`NotEquals` exactly one; `Exists`/`DoesNotExist` none;
    /// `GreaterThan`/`LessThan` exactly one, an integer; every value must be a valid label
    /// value (the empty string is one). All violations are reported together.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, SelectorError> {
        let key = key.into();
        let mut errs = Vec::new();
        let key_errs = is_qualified_name(&key);
        if !key_errs.is_empty() {
            errs.push(invalid_str("key", &key, &key_errs.join("; ")));
        }
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(invalid_list(
                        "values",
                        &values,
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(invalid_list(
                        "values",
                        &values,
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(invalid_list(
                        "values",
                        &values,
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid_list(
                        "values",
                        &values,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid_str(
                            &format!("values[{i}]"),
                            v,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = is_valid_label_value(v);
            if !value_errs.is_empty() {
                errs.push(invalid_str(
                    &format!("values[{i}][{key}]"),
                    v,
                    &value_errs.join("; "),
                ));
            }
        }
        match aggregate(errs) {
            Some(message) => Err(SelectorError::new(message)),
            None => Ok(Requirement {
                key,
                operator,
                values,
            }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order given (the parser gives them sorted, without duplicates).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether labels, seen through `lookup` (key → value, `None` when absent), satisfy this
    /// requirement.
    pub fn matches_with<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => lookup(&self.key).is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !lookup(&self.key).is_some_and(has),
            Operator::Exists => lookup(&self.key).is_some(),
            Operator::DoesNotExist => lookup(&self.key).is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(label)) = lookup(&self.key).map(str::parse::<i64>) else {
                    return false;
                };
                let [bound] = self.values.as_slice() else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    label > bound
                } else {
                    label < bound
                }
            }
        }
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }
}

/// Upstream's `Requirement.String()`: `key=v`, `key==v`, `key!=v`, `key in (a,b)`,
/// `key notin (a,b)`, `key`, `!key`, `key>N`, `key<N`; set values sorted.
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (infix, set) = match self.operator {
            Operator::Exists => return f.write_str(&self.key),
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
        };
        write!(f, "{}{infix}", self.key)?;
        if set {
            f.write_str("(")?;
        }
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        f.write_str(&values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: selects nothing, or the objects whose labels satisfy every requirement.
///
/// The two "empty" cases differ, as upstream's `labels.Nothing()` and `labels.Everything()`:
/// [`LabelSelector::nothing`] (a `null` spec selector) matches no labels, is not
/// [`is_empty`](LabelSelector::is_empty) and prints as `""`;
/// [`LabelSelector::everything`] (the empty string, `{}`) matches all labels, is empty and
/// also prints as `""`. Use [`LabelSelector::is_nothing`] to tell them apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    repr: Repr,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Repr {
    Nothing,
    /// Sorted by key (stable: requirements on one key keep their order).
    All(Vec<Requirement>),
}

impl LabelSelector {
    /// The selector that matches every set of labels (no requirement).
    pub fn everything() -> Self {
        LabelSelector {
            repr: Repr::All(Vec::new()),
        }
    }

    /// The selector that matches nothing (upstream's `labels.Nothing()`).
    pub fn nothing() -> Self {
        LabelSelector { repr: Repr::Nothing }
    }

    /// A selector requiring all of `requirements` (sorted by key here, as upstream's
    /// `Selector.Add`). No requirement selects everything.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            repr: Repr::All(requirements),
        }
    }

    /// A selector matching exactly the labels of `set`, `key=value` each, without validating
    /// them (upstream's `SelectorFromValidatedSet`, what a Service's or ReplicationController's
    /// `selector` map means). An empty set selects everything.
    pub fn from_set(set: &BTreeMap<String, String>) -> Self {
        let requirements = set
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: vec![v.clone()],
            })
            .collect();
        LabelSelector {
            repr: Repr::All(requirements),
        }
    }

    /// Parses the string form (upstream's `labels.Parse`). The empty string (or only
    /// whitespace) selects everything.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let requirements = Parser::new(selector).parse().map_err(SelectorError::new)?;
        Ok(Self::from_requirements(requirements))
    }

    /// Builds a selector from a `metav1.LabelSelector` object (upstream's
    /// `LabelSelectorAsSelector`). `null` selects nothing; an object with neither
    /// `matchLabels` nor `matchExpressions` (or both empty) selects everything.
    ///
    /// `matchLabels` entries become `key=value` requirements; `matchExpressions` operators are
    /// `In`, `NotIn` (one value or more), `Exists`, `DoesNotExist` (no value); any other reads
    /// `"Op" is not a valid label selector operator`. JSON of the wrong shape is reported in the
    /// manner of Go's decoder (`json: cannot unmarshal …`); `null` where a string is expected
    /// reads as the empty string, as Go decodes it.
    pub fn from_json(selector: &Value) -> Result<Self, SelectorError> {
        let object = match selector {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(object) => object,
            other => {
                return Err(SelectorError::new(format!(
                    "json: cannot unmarshal {} into Go value of type v1.LabelSelector",
                    json_kind(other)
                )));
            }
        };
        let mut requirements = Vec::new();
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                let mut labels: Vec<(&String, &Value)> = labels.iter().collect();
                labels.sort_by(|a, b| a.0.cmp(b.0));
                for (key, value) in labels {
                    let value = json_string(value, "matchLabels")?;
                    requirements.push(Requirement::new(key.clone(), Operator::Equals, vec![value])?);
                }
            }
            Some(other) => return Err(type_error(other, "matchLabels", "map[string]string")),
        }
        match object.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for expression in expressions {
                    requirements.push(expression_requirement(expression)?);
                }
            }
            Some(other) => {
                return Err(type_error(
                    other,
                    "matchExpressions",
                    "[]v1.LabelSelectorRequirement",
                ));
            }
        }
        Ok(Self::from_requirements(requirements))
    }

    /// Whether this is [`LabelSelector::nothing`].
    pub fn is_nothing(&self) -> bool {
        matches!(self.repr, Repr::Nothing)
    }

    /// Whether the selector does not restrict the selection: no requirement. False for
    /// [`LabelSelector::nothing`], as upstream's `Empty()`.
    pub fn is_empty(&self) -> bool {
        matches!(&self.repr, Repr::All(r) if r.is_empty())
    }

    /// The requirements, sorted by key; none for both `everything` and `nothing`.
    pub fn requirements(&self) -> &[Requirement] {
        match &self.repr {
            Repr::Nothing => &[],
            Repr::All(requirements) => requirements,
        }
    }

    /// If the selector requires `key` to have one specific value (the first requirement on
    /// `key` is `=`, `==`, or `in` with a single value), that value (upstream's
    /// `RequiresExactMatch`).
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let requirement = self.requirements().iter().find(|r| r.key == key)?;
        match (requirement.operator, requirement.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [value]) => Some(value),
            _ => None,
        }
    }

    /// Whether labels, seen through `lookup` (key → value, `None` when absent), satisfy the
    /// selector.
    pub fn matches_with<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        match &self.repr {
            Repr::Nothing => false,
            Repr::All(requirements) => requirements.iter().all(|r| r.matches_with(&lookup)),
        }
    }

    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Whether an object's `metadata.labels` (a JSON map of strings; `None` or `null` for no
    /// labels) satisfy the selector. An entry whose value is not a string counts as absent.
    pub fn matches_json(&self, labels: Option<&Value>) -> bool {
        let labels = labels.and_then(Value::as_object);
        self.matches_with(|k| labels.and_then(|m| m.get(k)).and_then(Value::as_str))
    }
}

impl Default for LabelSelector {
    /// [`LabelSelector::everything`].
    fn default() -> Self {
        Self::everything()
    }
}

/// Upstream's `Selector.String()`: the requirements, sorted by key, joined by `,`; `""` for
/// both `everything` and `nothing`. Parsing the output gives back an equal selector (except
/// that `nothing` parses as `everything`).
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// ---------------------------------------------------------------------------------------------
// metav1.LabelSelector JSON

fn expression_requirement(expression: &Value) -> Result<Requirement, SelectorError> {
    let object = match expression {
        Value::Object(object) => object,
        // Go decodes `null` into a zero LabelSelectorRequirement, whose operator is "".
        Value::Null => return Err(SelectorError::new(r#""" is not a valid label selector operator"#)),
        other => {
            return Err(type_error(
                other,
                "matchExpressions",
                "v1.LabelSelectorRequirement",
            ));
        }
    };
    let key = object
        .get("key")
        .map_or(Ok(String::new()), |v| json_string(v, "matchExpressions.key"))?;
    let operator = object
        .get("operator")
        .map_or(Ok(String::new()), |v| json_string(v, "matchExpressions.operator"))?;
    let values = match object.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| json_string(v, "matchExpressions.values"))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(type_error(other, "matchExpressions.values", "[]string")),
    };
    let operator = match operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        _ => {
            return Err(SelectorError::new(format!(
                "{} is not a valid label selector operator",
                go_quote(&operator)
            )));
        }
    };
    Requirement::new(key, operator, values)
}

/// A JSON string where Go expects a `string`; `null` decodes as "".
fn json_string(value: &Value, field: &str) -> Result<String, SelectorError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => Err(type_error(other, field, "string")),
    }
}

fn type_error(value: &Value, field: &str, go_type: &str) -> SelectorError {
    SelectorError::new(format!(
        "json: cannot unmarshal {} into Go struct field LabelSelector.{field} of type {go_type}",
        json_kind(value)
    ))
}

/// The JSON type names Go's decoder uses in its errors (`cannot unmarshal <type> into …`).
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer and parser of the string form.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    End,
    Identifier,
    OpenPar,
    ClosedPar,
    Comma,
    /// `!` (does not exist).
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the input into tokens as upstream's lexer does: bytewise; whitespace separates;
/// the symbols `= == != ! ( ) , > <` need no whitespace around them; `in` and `notin` are
/// keywords; anything else up to a symbol or whitespace is an identifier. A NUL byte reads as
/// the end of input at the start of a token and as a separator within one (upstream's reader
/// returns 0 at the end of the string and does not tell the two apart).
struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn read(&mut self) -> u8 {
        match self.src.as_bytes().get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn next_token(&mut self) -> (Token, &'a str) {
        let mut b = self.read();
        while is_whitespace(b) {
            b = self.read();
        }
        if b == 0 {
            return (Token::End, "");
        }
        self.pos -= 1;
        if is_special(b) {
            self.symbol()
        } else {
            self.identifier_or_keyword()
        }
    }

    fn identifier_or_keyword(&mut self) -> (Token, &'a str) {
        let start = self.pos;
        let end = loop {
            let before = self.pos;
            let b = self.read();
            if b == 0 {
                break before;
            }
            if is_special(b) || is_whitespace(b) {
                self.pos = before;
                break before;
            }
        };
        let literal = &self.src[start..end];
        let token = match literal {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        (token, literal)
    }

    /// The longest symbol starting here: `=` and `!` may take a following `=`.
    fn symbol(&mut self) -> (Token, &'a str) {
        let start = self.pos;
        let mut token = match self.read() {
            b'=' => Token::Equals,
            b'!' => Token::Bang,
            b'(' => Token::OpenPar,
            b')' => Token::ClosedPar,
            b',' => Token::Comma,
            b'>' => Token::GreaterThan,
            _ => Token::LessThan,
        };
        let mut end = self.pos;
        loop {
            let before = self.pos;
            let b = self.read();
            if b == 0 {
                break;
            }
            token = match (token, b) {
                (Token::Equals, b'=') => Token::DoubleEquals,
                (Token::Bang, b'=') => Token::NotEquals,
                _ => {
                    self.pos = before;
                    break;
                }
            };
            end = self.pos;
        }
        (token, &self.src[start..end])
    }
}

/// Where the parser is: `in` and `notin` are operators only after a key, identifiers elsewhere
/// (`x in (in)`, `notin=in`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser<'a> {
    tokens: Vec<(Token, &'a str)>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        let mut lexer = Lexer { src, pos: 0 };
        let mut tokens = Vec::new();
        loop {
            let token = lexer.next_token();
            tokens.push(token);
            if token.0 == Token::End {
                break;
            }
        }
        Parser { tokens, pos: 0 }
    }

    fn lookahead(&self, context: Context) -> (Token, &'a str) {
        let (token, literal) = self.tokens[self.pos.min(self.tokens.len() - 1)];
        match token {
            Token::In | Token::NotIn if context == Context::Values => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn consume(&mut self, context: Context) -> (Token, &'a str) {
        let item = self.lookahead(context);
        self.pos += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::Bang => {
                    let requirement = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (next, literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::Bang {
                                return Err(format!("found '{literal}', expected: identifier after ','"));
                            }
                        }
                        _ => {
                            return Err(format!("found '{literal}', expected: ',' or 'end of string'"));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, unary) = self.key_and_inferred_operator()?;
        if let Some(operator) = unary {
            return Requirement::new(key, operator, Vec::new()).map_err(|e| e.message);
        }
        let operator = self.operator()?;
        let mut values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        values.sort_unstable();
        values.dedup();
        Requirement::new(key, operator, values).map_err(|e| e.message)
    }

    /// The key, with `Exists` or `DoesNotExist` when that is the whole requirement. A `!key`
    /// is `DoesNotExist` whatever follows (what follows then fails as a separator).
    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::Bang {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let errs = is_qualified_name(literal);
        if !errs.is_empty() {
            // Upstream validates the key here against a nil field path.
            return Err(invalid_str("<nil>", literal, &errs.join("; ")));
        }
        if operator.is_none() {
            let (next, _) = self.lookahead(Context::Values);
            if next == Token::End || next == Token::Comma {
                operator = Some(Operator::Exists);
            }
        }
        Ok((literal.to_owned(), operator))
    }

    fn operator(&mut self) -> Result<Operator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            _ => {
                return Err(format!(
                    "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    /// `( … )` after `in`/`notin`. Empty entries are the empty value: `()` is `{""}`,
    /// `(,a)`, `(a,)` and `(a,,b)` hold `""` besides the others.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.value_list()?;
                // `value_list` returns only before a ')'.
                let (token, _) = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{literal}', expected: ',', ')' or identifier")),
        }
    }

    fn value_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.push(literal.to_owned());
                    let (next, literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        values.push(String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>`, `<`: an identifier, or nothing (the empty value)
    /// when the requirement ends there.
    fn exact_value(&mut self) -> Result<String, String> {
        let (next, _) = self.lookahead(Context::Values);
        if next == Token::End || next == Token::Comma {
            return Ok(String::new());
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(literal.to_owned())
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation of keys and values (k8s.io/apimachinery/pkg/util/validation), worded as v1.33.

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// Upstream's `validation.RegexError`.
fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
    let mut out = format!("{message} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{example}', "));
    }
    out.push_str(&format!("regex used for validation is '{format}')"));
    out
}

fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the shape of a label name and a non-empty
/// label value.
fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Why `value` is not a lowercase RFC 1123 subdomain (upstream's `IsDNS1123Subdomain`); empty
/// when it is one.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
                lower_alnum(first) && lower_alnum(last) && b.iter().all(|c| lower_alnum(c) || *c == b'-')
            }
            _ => false,
        }
    };
    if !value.split('.').all(label_ok) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Why `value` is not a qualified name, i.e. a valid label key: an optional DNS-subdomain
/// prefix and `/`, then a name of at most 63 characters (upstream's `IsQualifiedName`); empty
/// when it is one.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|e| format!("prefix part {e}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !is_label_token(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Why `value` is not a valid label value: empty, or at most 63 characters of
/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?` (upstream's `IsValidLabelValue`); empty when it
/// is one.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !value.is_empty() && !is_label_token(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Error wording of k8s.io/apimachinery/pkg/util/validation/field and pkg/util/errors.

/// A `field.Invalid` error with a string value: `path: Invalid value: "v": detail`.
fn invalid_str(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {}: {detail}", go_quote(value))
}

/// A `field.Invalid` error with a `[]string` value, printed as Go's `%#v` (v1.33):
/// `[]string{"a", "b"}`, or `[]string(nil)` for none (what `LabelSelectorAsSelector` passes).
fn invalid_list(path: &str, values: &[String], detail: &str) -> String {
    let shown = if values.is_empty() {
        "[]string(nil)".to_owned()
    } else {
        let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
        format!("[]string{{{}}}", quoted.join(", "))
    };
    format!("{path}: Invalid value: {shown}: {detail}")
}

/// Upstream's aggregate of field errors: duplicates dropped; one error as itself, several as
/// `[a, b]`.
fn aggregate(errs: Vec<String>) -> Option<String> {
    let mut unique: Vec<String> = Vec::new();
    for e in errs {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.len() {
        0 => None,
        1 => unique.pop(),
        _ => Some(format!("[{}]", unique.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    const NAME_REGEX: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_REGEX: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    const PREFIX_REGEX: &str = r"prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    #[test]
    fn parses_and_prints_canonically() {
        // (input, String() of the parsed selector)
        let cases = [
            ("", ""),
            ("   ", ""),
            ("\t\r\n", ""),
            ("x=a,y=b,z=c", "x=a,y=b,z=c"),
            ("x!=a,y=b", "x!=a,y=b"),
            ("x=", "x="),
            ("x= ", "x="),
            ("x=,z= ", "x=,z="),
            ("x= ,z= ", "x=,z="),
            ("a!=", "a!="),
            ("x==a", "x==a"),
            ("!x", "!x"),
            ("! x", "!x"),
            ("x>1", "x>1"),
            ("x>1,z<5", "x>1,z<5"),
            ("x < 5", "x<5"),
            ("x>01", "x>01"),
            ("\rx", "x"),
            ("a ", "a"),
            ("a=b\t,\tc", "a=b,c"),
            ("b=1,a=2", "a=2,b=1"),
            ("x=a,a=x", "a=x,x=a"),
            // Requirements on one key keep their order (a stable sort).
            ("x=a,x!=b", "x=a,x!=b"),
            ("x!=b,x=a", "x!=b,x=a"),
            ("z,!y,x in (b),w", "w,x in (b),!y,z"),
            (
                "this-is-a-dns.domain.com/key-with-dash",
                "this-is-a-dns.domain.com/key-with-dash",
            ),
            (
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
            ),
            (
                "app.kubernetes.io/name=my-app_1.0",
                "app.kubernetes.io/name=my-app_1.0",
            ),
            ("foo  in\t (abc)", "foo in (abc)"),
            ("x notin\n (abc)", "x notin (abc)"),
            ("x  notin\t\t(abc,def)", "x notin (abc,def)"),
            ("a in (b, c)", "a in (b,c)"),
            ("a in(c,b)", "a in (b,c)"),
            ("x in (abc,)", "x in (,abc)"),
            ("x in (abc,abc)", "x in (abc)"),
            ("x in ()", "x in ()"),
            ("x in ( )", "x in ()"),
            ("x notin ( )", "x notin ()"),
            ("x notin (, a)", "x notin (,a)"),
            ("a in (,b)", "a in (,b)"),
            ("a in (,)", "a in ()"),
            ("x in (a,,b)", "x in (,a,b)"),
            // Upstream since 2025 (v1.33 rejected these).
            ("x in (a,,)", "x in (,a)"),
            ("x in (a,,,)", "x in (,a)"),
            ("x in (a,,,,,,)", "x in (,a)"),
            ("x in (a,,a,,a,,a,,)", "x in (,a)"),
            (
                "x notin (abc,,def),bar,z in (),w",
                "bar,w,x notin (,abc,def),z in ()",
            ),
            // `in` and `notin` are values (and keys) where an operator cannot stand.
            ("a in (x,y,notin, z,in)", "a in (in,notin,x,y,z)"),
            ("notin=in", "notin=in"),
            ("in in (in)", "in in (in)"),
            ("!in", "!in"),
            ("in", "in"),
            // A NUL byte ends an identifier, and the input where a token would start.
            ("a\0", "a"),
            ("a=b,c \0d", "a=b,c"),
        ];
        for (input, want) in cases {
            let selector =
                LabelSelector::parse(input).unwrap_or_else(|e| panic!("parse({input:?}) failed: {e}"));
            assert_eq!(selector.to_string(), want, "parse({input:?})");
            let again = LabelSelector::parse(want).unwrap();
            assert_eq!(again, selector, "re-parse of {want:?}");
        }
    }

    #[test]
    fn parse_errors_are_worded_as_upstream() {
        let long = "a".repeat(64);
        let cases: Vec<(String, String)> = vec![
            ("x==a==b", "found '==', expected: ',' or 'end of string'".into()),
            ("!x=a", "found '=', expected: ',' or 'end of string'".into()),
            ("x=a=b", "found '=', expected: ',' or 'end of string'".into()),
            ("a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'".into()),
            ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt".into()),
            ("x,,y", "found ',', expected: identifier after ','".into()),
            ("a in (xyz),", "found '', expected: identifier after ','".into()),
            ("x,=y", "found '=', expected: identifier after ','".into()),
            (",x,y", "found ',', expected: !, identifier, or 'end of string'".into()),
            ("(", "found '(', expected: !, identifier, or 'end of string'".into()),
            ("!=a", "found '!=', expected: !, identifier, or 'end of string'".into()),
            ("=a", "found '=', expected: !, identifier, or 'end of string'".into()),
            ("!", "unable to parse requirement: found '', expected: identifier".into()),
            ("!!a", "unable to parse requirement: found '!', expected: identifier".into()),
            ("x nott in (y)", "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt".into()),
            ("a (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt".into()),
            ("a in b", "unable to parse requirement: found 'b' expected: '('".into()),
            ("a notin(", "unable to parse requirement: found '', expected: ',', ')' or identifier".into()),
            ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".into()),
            ("a in (xyz abc)", "unable to parse requirement: found 'abc', expected: ',' or ')'".into()),
            ("a in (b,=)", "unable to parse requirement: found '=', expected: ',', or identifier".into()),
            ("a in (b,", "unable to parse requirement: found '', expected: ',', or identifier".into()),
            ("a=(b)", "unable to parse requirement: found '(', expected: identifier".into()),
            ("a>,b", "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer".into()),
            // Keys, checked by the parser at a nil path.
            (
                "a/b/c",
                format!("unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name {NAME_REGEX} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
            ),
            ("-a=b", format!("unable to parse requirement: <nil>: Invalid value: \"-a\": name part {NAME_REGEX}")),
            ("a.=b", format!("unable to parse requirement: <nil>: Invalid value: \"a.\": name part {NAME_REGEX}")),
            ("/a", "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty".into()),
            (
                "a/",
                format!("unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; name part {NAME_REGEX}"),
            ),
            ("Example.com/a", format!("unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": {PREFIX_REGEX}")),
            ("a..b/c", format!("unable to parse requirement: <nil>: Invalid value: \"a..b/c\": {PREFIX_REGEX}")),
            (
                &format!("{long} in (a)"),
                format!("unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 characters"),
            ),
            ("ключ", format!("unable to parse requirement: <nil>: Invalid value: \"ключ\": name part {NAME_REGEX}")),
            ("a\"b", format!("unable to parse requirement: <nil>: Invalid value: \"a\\\"b\": name part {NAME_REGEX}")),
            // Values, checked when the requirement is built, at values[i][key] (sorted order).
            ("x=a||y=b", format!("unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {VALUE_REGEX}")),
            ("x=a/b", format!("unable to parse requirement: values[0][x]: Invalid value: \"a/b\": {VALUE_REGEX}")),
            ("x in (b,-a)", format!("unable to parse requirement: values[0][x]: Invalid value: \"-a\": {VALUE_REGEX}")),
            ("x in (a,b-)", format!("unable to parse requirement: values[1][x]: Invalid value: \"b-\": {VALUE_REGEX}")),
            (
                &format!("x={long}"),
                format!("unable to parse requirement: values[0][x]: Invalid value: \"{long}\": must be no more than 63 characters"),
            ),
            (
                &format!("x={long}-"),
                format!("unable to parse requirement: values[0][x]: Invalid value: \"{long}-\": must be no more than 63 characters; {VALUE_REGEX}"),
            ),
            ("x<a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".into()),
            ("x>1.5", "unable to parse requirement: values[0]: Invalid value: \"1.5\": for 'Gt', 'Lt' operators, the value must be an integer".into()),
            (
                "x>9223372036854775808",
                "unable to parse requirement: values[0]: Invalid value: \"9223372036854775808\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
            ),
            ("x>-1", format!("unable to parse requirement: values[0][x]: Invalid value: \"-1\": {VALUE_REGEX}")),
            (
                "x>a.b-",
                format!("unable to parse requirement: [values[0]: Invalid value: \"a.b-\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][x]: Invalid value: \"a.b-\": {VALUE_REGEX}]"),
            ),
            // The NUL byte inside a token separates it from the next.
            ("a\0b=c", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt".into()),
        ]
        .into_iter()
        .map(|(i, e): (&str, String)| (i.to_owned(), e))
        .collect();
        for (input, want) in cases {
            match LabelSelector::parse(&input) {
                Ok(s) => panic!("parse({input:?}) = {s:?}, want error {want:?}"),
                Err(e) => assert_eq!(e.message(), want, "parse({input:?})"),
            }
        }
    }

    #[test]
    fn matches_as_upstream() {
        let foo_baz = [("foo", "bar"), ("baz", "blah")];
        // (selector, labels, matches)
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&str, Pairs, bool)] = &[
            ("", &[("x", "y")], true),
            ("", &[], true),
            ("x=y", &[("x", "y")], true),
            ("x==y", &[("x", "y")], true),
            ("x=y,z=w", &[("x", "y"), ("z", "w")], true),
            ("x!=y,z!=w", &[("x", "z"), ("z", "a")], true),
            ("notin=in", &[("notin", "in")], true),
            ("x", &[("x", "z")], true),
            ("x", &[("x", "")], true),
            ("!x", &[("y", "z")], true),
            ("x>1", &[("x", "2")], true),
            ("x<1", &[("x", "0")], true),
            ("x<1", &[("x", "-5")], true),
            ("x>1", &[("x", "+2")], true),
            ("x>1", &[("x", "0002")], true),
            ("x=z", &[], false),
            ("x=y", &[("x", "z")], false),
            ("x=y,z=w", &[("x", "w"), ("z", "w")], false),
            ("x!=y,z!=w", &[("x", "z"), ("z", "w")], false),
            ("x", &[("y", "z")], false),
            ("!x", &[("x", "z")], false),
            ("x>1", &[("x", "0")], false),
            ("x>1", &[("x", "1")], false),
            ("x<1", &[("x", "2")], false),
            ("x>1", &[], false),
            ("x<1", &[], false),
            ("x>1", &[("x", "v2")], false),
            ("x>1", &[("x", "99999999999999999999")], false),
            ("x=", &[("x", "")], true),
            ("x=", &[], false),
            ("x!=", &[], true),
            ("x!=", &[("x", "")], false),
            ("x!=", &[("x", "a")], true),
            ("x in (foo)", &[("x", "foo"), ("y", "baz")], true),
            ("x in (foo),y notin (alpha)", &[("x", "foo"), ("y", "baz")], true),
            ("x in (foo),y in (alpha)", &[("x", "foo"), ("y", "baz")], false),
            ("x notin (),y", &[("y", "")], true),
            ("!x,y", &[("y", "")], true),
            ("x notin (),!y", &[("y", "")], false),
            ("x in ()", &[("y", "baz")], false),
            ("x in ()", &[("x", "")], true),
            ("x in (,a)", &[("x", "a")], true),
            ("x in (,a)", &[("x", "")], true),
            ("x in (,a)", &[("x", "b")], false),
            ("x notin (a,b)", &[], true),
            ("x notin (a,b)", &[("x", "b")], false),
            ("x notin (a,b)", &[("x", "c")], true),
            ("foo=bar", &foo_baz, true),
            ("baz=blah", &foo_baz, true),
            ("foo=bar,baz=blah", &foo_baz, true),
            ("foo=blah", &foo_baz, false),
            ("baz=bar", &foo_baz, false),
            ("foo=bar,foobar=bar,baz=blah", &foo_baz, false),
            (
                "example.com/tier in (web, db)",
                &[("example.com/tier", "db")],
                true,
            ),
            ("example.com/tier in (web, db)", &[("tier", "db")], false),
        ];
        for (selector, set, want) in cases {
            let parsed = LabelSelector::parse(selector).unwrap();
            let set = labels(set);
            assert_eq!(parsed.matches(&set), *want, "{selector:?} on {set:?}");
            let as_json = serde_json::to_value(&set).unwrap();
            assert_eq!(
                parsed.matches_json(Some(&as_json)),
                *want,
                "{selector:?} on {as_json}"
            );
        }
    }

    #[test]
    fn nothing_everything_and_empty() {
        let everything = LabelSelector::everything();
        let nothing = LabelSelector::nothing();
        let some = labels(&[("a", "b")]);
        assert!(everything.is_empty() && !everything.is_nothing());
        assert!(everything.matches(&some) && everything.matches(&BTreeMap::new()));
        assert!(!nothing.is_empty() && nothing.is_nothing());
        assert!(!nothing.matches(&some) && !nothing.matches(&BTreeMap::new()));
        assert!(!nothing.matches_json(None));
        assert_eq!(everything.to_string(), "");
        assert_eq!(nothing.to_string(), "");
        assert!(nothing.requirements().is_empty());
        assert_eq!(LabelSelector::parse("").unwrap(), everything);
        assert_eq!(LabelSelector::default(), everything);
        assert!(!LabelSelector::parse("a").unwrap().is_empty());
        assert_eq!("a=b".parse::<LabelSelector>().unwrap().to_string(), "a=b");
    }

    #[test]
    fn matches_json_labels() {
        let selector = LabelSelector::parse("a=b,!c").unwrap();
        assert!(selector.matches_json(Some(&json!({"a": "b", "d": "e"}))));
        assert!(!selector.matches_json(Some(&json!({"a": "b", "c": "x"}))));
        assert!(!selector.matches_json(None));
        assert!(!selector.matches_json(Some(&Value::Null)));
        // A non-string value counts as absent.
        assert!(!selector.matches_json(Some(&json!({"a": 1}))));
        assert!(selector.matches_json(Some(&json!({"a": "b", "c": 1}))));
        let not_a = LabelSelector::parse("!a").unwrap();
        assert!(not_a.matches_json(None));
        assert!(not_a.matches_json(Some(&Value::Null)));
        assert!(LabelSelector::everything().matches_json(None));
    }

    #[test]
    fn requirement_constructor_rules() {
        use Operator::*;
        let long = "a".repeat(254);
        // (key, operator, values, error or None)
        let cases: Vec<(&str, Operator, Vec<String>, Option<String>)> = vec![
            ("x1", In, vec![], Some("values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".into())),
            ("x2", NotIn, vec![], Some("values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".into())),
            ("x3", In, strings(&["foo"]), None),
            ("x4", NotIn, strings(&["foo"]), None),
            ("x5", Equals, strings(&["foo", "bar"]), Some("values: Invalid value: []string{\"foo\", \"bar\"}: exact-match compatibility requires one single value".into())),
            ("x5", NotEquals, vec![], Some("values: Invalid value: []string(nil): exact-match compatibility requires one single value".into())),
            ("x6", Exists, vec![], None),
            ("x7", DoesNotExist, vec![], None),
            ("x8", Exists, strings(&["foo"]), Some("values: Invalid value: []string{\"foo\"}: values set must be empty for exists and does not exist".into())),
            ("x8", DoesNotExist, strings(&[""]), Some("values: Invalid value: []string{\"\"}: values set must be empty for exists and does not exist".into())),
            ("x11", GreaterThan, strings(&["1"]), None),
            ("x12", LessThan, strings(&["6"]), None),
            ("x13", GreaterThan, vec![], Some("values: Invalid value: []string(nil): for 'Gt', 'Lt' operators, exactly one value is required".into())),
            ("x14", GreaterThan, strings(&["bar"]), Some("values[0]: Invalid value: \"bar\": for 'Gt', 'Lt' operators, the value must be an integer".into())),
            ("x15", LessThan, strings(&["bar"]), Some("values[0]: Invalid value: \"bar\": for 'Gt', 'Lt' operators, the value must be an integer".into())),
            (&long, Exists, vec![], Some(format!("key: Invalid value: \"{long}\": name part must be no more than 63 characters"))),
            ("x16", Equals, vec![long.clone()], Some(format!("values[0][x16]: Invalid value: \"{long}\": must be no more than 63 characters"))),
            ("x17", Equals, strings(&["a b"]), Some(format!("values[0][x17]: Invalid value: \"a b\": {VALUE_REGEX}"))),
            ("", Exists, vec![], Some(format!("key: Invalid value: \"\": name part must be non-empty; name part {NAME_REGEX}"))),
            (
                "-k",
                In,
                strings(&["ok", "-v"]),
                Some(format!("[key: Invalid value: \"-k\": name part {NAME_REGEX}, values[1][-k]: Invalid value: \"-v\": {VALUE_REGEX}]")),
            ),
            (
                "x18",
                In,
                strings(&["-v", "-v"]),
                Some(format!("[values[0][x18]: Invalid value: \"-v\": {VALUE_REGEX}, values[1][x18]: Invalid value: \"-v\": {VALUE_REGEX}]")),
            ),
            ("x19", Equals, strings(&["tab\there"]), Some(format!("values[0][x19]: Invalid value: \"tab\\there\": {VALUE_REGEX}"))),
        ];
        for (key, operator, values, want) in cases {
            let got = Requirement::new(key, operator, values.clone());
            match (got, want) {
                (Ok(r), None) => {
                    assert_eq!(
                        (r.key(), r.operator(), r.values()),
                        (key, operator, values.as_slice())
                    );
                }
                (Err(e), Some(want)) => assert_eq!(e.message(), want, "{key} {operator} {values:?}"),
                (got, want) => panic!("{key} {operator} {values:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn prints_requirements_as_upstream() {
        use Operator::*;
        let r = |k: &str, op, v: &[&str]| Requirement::new(k, op, strings(v)).unwrap();
        let cases = [
            (
                vec![
                    r("x", In, &["def", "abc"]),
                    r("y", NotIn, &["jkl"]),
                    r("z", Exists, &[]),
                ],
                "x in (abc,def),y notin (jkl),z",
            ),
            (
                vec![
                    r("x", NotIn, &["abc", "def"]),
                    r("y", NotEquals, &["jkl"]),
                    r("z", DoesNotExist, &[]),
                ],
                "x notin (abc,def),y!=jkl,!z",
            ),
            (
                vec![
                    r("x", NotIn, &["abc"]),
                    r("y", In, &["mno", "jkl"]),
                    r("z", NotIn, &[""]),
                ],
                "x notin (abc),y in (jkl,mno),z notin ()",
            ),
            (
                vec![
                    r("x", Equals, &["abc"]),
                    r("y", DoubleEquals, &["jkl"]),
                    r("z", NotEquals, &["a"]),
                    r("z", Exists, &[]),
                ],
                "x=abc,y==jkl,z!=a,z",
            ),
            (
                vec![
                    r("x", GreaterThan, &["2"]),
                    r("y", LessThan, &["8"]),
                    r("z", Exists, &[]),
                ],
                "x>2,y<8,z",
            ),
            // Sorted by key on construction; set values sorted on output, duplicates kept.
            (
                vec![r("b", In, &["b", "a", "b"]), r("a", Exists, &[])],
                "a,b in (a,b,b)",
            ),
        ];
        for (requirements, want) in cases {
            assert_eq!(LabelSelector::from_requirements(requirements).to_string(), want);
        }
        assert_eq!(Operator::GreaterThan.to_string(), "gt");
        assert_eq!(Operator::DoesNotExist.as_str(), "!");
    }

    #[test]
    fn from_set_selects_exactly() {
        let set = labels(&[("app", "foo"), ("a", "b")]);
        let selector = LabelSelector::from_set(&set);
        assert_eq!(selector.to_string(), "a=b,app=foo");
        assert!(selector.matches(&labels(&[("app", "foo"), ("a", "b"), ("x", "y")])));
        assert!(!selector.matches(&labels(&[("app", "foo")])));
        assert!(LabelSelector::from_set(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn requires_exact_match() {
        let cases = [
            ("key=value", "key", Some("value")),
            ("key==value", "key", Some("value")),
            ("key in (value)", "key", Some("value")),
            ("key in (a,b)", "key", None),
            ("key notin (value)", "key", None),
            ("key!=value", "key", None),
            ("key", "key", None),
            ("key=value", "other", None),
            ("a=1,key=value", "key", Some("value")),
            // The first requirement on the key decides.
            ("key,key=value", "key", None),
            ("key=", "key", Some("")),
        ];
        for (selector, key, want) in cases {
            let parsed = LabelSelector::parse(selector).unwrap();
            assert_eq!(parsed.requires_exact_match(key), want, "{selector:?} {key:?}");
        }
        assert_eq!(LabelSelector::nothing().requires_exact_match("a"), None);
    }

    #[test]
    fn from_json_as_label_selector_as_selector() {
        // (metav1.LabelSelector, String() of the result, whether it selects nothing)
        let cases = [
            (json!(null), "", true),
            (json!({}), "", false),
            (json!({"matchLabels": {}, "matchExpressions": []}), "", false),
            (json!({"matchLabels": null, "matchExpressions": null}), "", false),
            (json!({"matchLabels": {"b": "2", "a": "1"}}), "a=1,b=2", false),
            (json!({"matchLabels": {"a": null}}), "a=", false),
            (
                json!({"matchLabels": {"tier": "web"}, "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                    {"key": "tier", "operator": "Exists"},
                    {"key": "canary", "operator": "DoesNotExist", "values": []},
                    {"key": "zone", "operator": "NotIn", "values": ["a"]},
                ]}),
                "!canary,env in (dev,prod),tier=web,tier,zone notin (a)",
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": null}]}),
                "a",
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "x"]}]}),
                "a in (x,x)",
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [""]}]}),
                "a in ()",
                false,
            ),
            (
                json!({"unknownField": 1, "matchLabels": {"a": "b"}}),
                "a=b",
                false,
            ),
        ];
        for (input, want, nothing) in cases {
            let selector =
                LabelSelector::from_json(&input).unwrap_or_else(|e| panic!("from_json({input}) failed: {e}"));
            assert_eq!(selector.to_string(), want, "from_json({input})");
            assert_eq!(selector.is_nothing(), nothing, "from_json({input})");
        }

        let selector = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}],
        }))
        .unwrap();
        assert!(selector.matches(&labels(&[("app", "web")])));
        assert!(selector.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("env", "dev")])));
        assert!(!selector.matches(&labels(&[("app", "db")])));
        assert!(
            !LabelSelector::from_json(&Value::Null)
                .unwrap()
                .matches(&BTreeMap::new())
        );
        assert!(
            LabelSelector::from_json(&json!({}))
                .unwrap()
                .matches(&BTreeMap::new())
        );
    }

    #[test]
    fn from_json_errors() {
        let cases = [
            (json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}), "\"Foo\" is not a valid label selector operator".to_owned()),
            (json!({"matchExpressions": [{"key": "a", "operator": "in", "values": ["b"]}]}), "\"in\" is not a valid label selector operator".to_owned()),
            (json!({"matchExpressions": [{"key": "a"}]}), "\"\" is not a valid label selector operator".to_owned()),
            (json!({"matchExpressions": [null]}), "\"\" is not a valid label selector operator".to_owned()),
            (json!({"matchExpressions": [{"key": "a", "operator": "In"}]}), "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".to_owned()),
            (json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}), "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".to_owned()),
            (json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}), "values: Invalid value: []string{\"b\"}: values set must be empty for exists and does not exist".to_owned()),
            (json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["b c"]}]}), format!("values[0][a]: Invalid value: \"b c\": {VALUE_REGEX}")),
            (json!({"matchExpressions": [{"operator": "Exists"}]}), format!("key: Invalid value: \"\": name part must be non-empty; name part {NAME_REGEX}")),
            (json!({"matchLabels": {"a b": "c"}}), format!("key: Invalid value: \"a b\": name part {NAME_REGEX}")),
            (json!({"matchLabels": {"a": "-"}}), format!("values[0][a]: Invalid value: \"-\": {VALUE_REGEX}")),
            // matchLabels are checked (in key order) before matchExpressions.
            (
                json!({"matchLabels": {"z": "-", "a": "ok"}, "matchExpressions": [{"key": "a", "operator": "Bad"}]}),
                format!("values[0][z]: Invalid value: \"-\": {VALUE_REGEX}"),
            ),
            (json!("a=b"), "json: cannot unmarshal string into Go value of type v1.LabelSelector".to_owned()),
            (json!([]), "json: cannot unmarshal array into Go value of type v1.LabelSelector".to_owned()),
            (json!({"matchLabels": []}), "json: cannot unmarshal array into Go struct field LabelSelector.matchLabels of type map[string]string".to_owned()),
            (json!({"matchLabels": {"a": 1}}), "json: cannot unmarshal number into Go struct field LabelSelector.matchLabels of type string".to_owned()),
            (json!({"matchExpressions": {}}), "json: cannot unmarshal object into Go struct field LabelSelector.matchExpressions of type []v1.LabelSelectorRequirement".to_owned()),
            (json!({"matchExpressions": ["a"]}), "json: cannot unmarshal string into Go struct field LabelSelector.matchExpressions of type v1.LabelSelectorRequirement".to_owned()),
            (json!({"matchExpressions": [{"key": 1, "operator": "Exists"}]}), "json: cannot unmarshal number into Go struct field LabelSelector.matchExpressions.key of type string".to_owned()),
            (json!({"matchExpressions": [{"key": "a", "operator": true}]}), "json: cannot unmarshal bool into Go struct field LabelSelector.matchExpressions.operator of type string".to_owned()),
            (json!({"matchExpressions": [{"key": "a", "operator": "In", "values": "b"}]}), "json: cannot unmarshal string into Go struct field LabelSelector.matchExpressions.values of type []string".to_owned()),
            (json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}), "json: cannot unmarshal number into Go struct field LabelSelector.matchExpressions.values of type string".to_owned()),
        ];
        for (input, want) in cases {
            match LabelSelector::from_json(&input) {
                Ok(s) => panic!("from_json({input}) = {s}, want error {want:?}"),
                Err(e) => assert_eq!(e.to_string(), want, "from_json({input})"),
            }
        }
    }

    #[test]
    fn validation_helpers() {
        assert!(is_qualified_name("example.com/My_Name-1.x").is_empty());
        assert!(is_qualified_name(&"a".repeat(63)).is_empty());
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        let prefix = format!(
            "{}/a",
            ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".")
        );
        assert!(
            is_qualified_name(&prefix).is_empty(),
            "a 253-character prefix is valid"
        );
        let too_long = format!("x{prefix}");
        assert_eq!(
            is_qualified_name(&too_long),
            vec!["prefix part must be no more than 253 characters"]
        );
        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("A.b-c_9").is_empty());
        assert_eq!(is_valid_label_value("a_"), vec![VALUE_REGEX]);
        assert!(is_dns1123_subdomain("a.b-c.d").is_empty());
        assert_eq!(is_dns1123_subdomain("a.-b").len(), 1);
        assert_eq!(is_dns1123_subdomain("").len(), 1);
        assert_eq!(is_dns1123_subdomain("a.").len(), 1);
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("\n\t\r\u{7}\u{1}\u{7f}"), "\"\\n\\t\\r\\a\\x01\\x7f\"");
        assert_eq!(go_quote("é"), "\"é\"");
    }

    /// Random inputs over the selector alphabet: parsing never panics, and whatever parses
    /// prints to a string that parses back to the same selector.
    #[test]
    fn random_inputs_parse_or_fail_cleanly_and_round_trip() {
        const PIECES: &[&str] = &[
            "a",
            "b",
            "x",
            "k8s.io/",
            "app",
            "1",
            "-1",
            "42",
            "in",
            "notin",
            " in ",
            " notin ",
            "=",
            "==",
            "!=",
            "!",
            ">",
            "<",
            "(",
            ")",
            ",",
            " ",
            "\t",
            "\n",
            "\0",
            "/",
            ".",
            "-",
            "_",
            "é",
            "ключ",
            "\"",
            "||",
            "a=b",
            "x in (a,b)",
        ];
        let mut next = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let input: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            if let Ok(selector) = LabelSelector::parse(&input) {
                parsed += 1;
                let printed = selector.to_string();
                let again = LabelSelector::parse(&printed)
                    .unwrap_or_else(|e| panic!("{input:?} printed as {printed:?}: {e}"));
                assert_eq!(again, selector, "{input:?} printed as {printed:?}");
            }
        }
        assert!(parsed > 1_000, "only {parsed} random inputs parsed");
    }
}
