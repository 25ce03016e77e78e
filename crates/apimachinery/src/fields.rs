//! Field selectors as kube-apiserver understands `?fieldSelector=` (k8s.io/apimachinery
//! `pkg/fields`).
//!
//! A field selector is a comma-separated list of terms `field=value`, `field==value` (the same)
//! or `field!=value`, all of which must hold. Neither side is trimmed: `a = b` compares the
//! field `a ` with ` b`. The field name runs to the first `!=`, `==` or `=`; in the value,
//! `\,`, `\=` and `\\` stand for `,`, `=` and `\`, any other escape is an error, and a bare `=`
//! is an error (a bare `,` ends the term). Empty terms are skipped, so the empty string selects
//! everything, and so is a term whose field and value are both empty (`=`).
//!
//! Which fields a resource supports is not this module's business: the API server checks
//! [`FieldSelector::requirements`] (or calls [`FieldSelector::check_fields`]) and reports
//! upstream's `field label not supported: <name>`.
//!
//! As upstream, terms are kept in the byte order of their source text, which is the order
//! [`Display`](fmt::Display) prints them in.

use std::fmt;
use std::str::FromStr;

/// A field selector that could not be parsed, or names a field the resource does not support;
/// messages as upstream words them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term without an operator: `invalid selector: '<selector>'; can't understand '<term>'`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax { selector: String, term: String },
    /// A backslash not followed by `\`, `,` or `=` (the sequence is `\x`, or `\` alone at the
    /// end of the value).
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscapeSequence(String),
    /// An unescaped `=` (or `,`) in a value. Upstream prints the character's code point
    /// (`… unescaped character in value: 61` for `=`), and so does this.
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    UnescapedCharacter(char),
    /// The resource has no selectable field of this name.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// The relation of a term. `field==value` parses as [`FieldOperator::Equals`], as upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

impl FieldOperator {
    /// `=` or `!=`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        }
    }
}

impl fmt::Display for FieldOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One term: `field` compared with `value` (unescaped).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

impl FieldRequirement {
    /// Whether the field's value, as `get` gives it (`None` compares as `""`), satisfies the
    /// term.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        let actual = get(&self.field).unwrap_or_default();
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

/// `field=value` or `field!=value`, the value escaped.
impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.field, self.operator, escape_value(&self.value))
    }
}

/// A field selector: the objects for which every term holds. No term selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector with no term, matching everything.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// A selector requiring all of `requirements`, in the order given.
    pub fn from_requirements(requirements: Vec<FieldRequirement>) -> Self {
        FieldSelector { requirements }
    }

    /// Parses `?fieldSelector=` (upstream's `fields.ParseSelector`).
    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut terms = split_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw_value)) = split_term(term) else {
                return Err(FieldSelectorError::Syntax {
                    selector: selector.to_owned(),
                    term: term.to_owned(),
                });
            };
            let value = unescape_value(raw_value)?;
            if field.is_empty() && value.is_empty() {
                continue;
            }
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the selector has no term.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, in the order they print.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the object, whose field values `get` gives (`None` for a field it does not
    /// provide, which compares as `""`), satisfies every term.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| r.matches(&get))
    }

    /// If some term requires `field` to equal one value, that value (upstream's
    /// `RequiresExactMatch`; the first such term wins).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.operator == FieldOperator::Equals && r.field == field)
            .map(|r| r.value.as_str())
    }

    /// Fails with `field label not supported: <name>` for the first term whose field
    /// `supported` rejects.
    pub fn check_fields(&self, supported: impl Fn(&str) -> bool) -> Result<(), FieldSelectorError> {
        match self.requirements.iter().find(|r| !supported(&r.field)) {
            Some(r) => Err(FieldSelectorError::UnsupportedField(r.field.clone())),
            None => Ok(()),
        }
    }

    /// Rewrites every term's field and value with `f` (upstream's `Transform`, through which
    /// the API server converts field labels of a version and rejects unsupported ones). A term
    /// that `f` turns into an empty field and an empty value is dropped.
    pub fn transform<E>(
        &self,
        mut f: impl FnMut(&str, &str) -> Result<(String, String), E>,
    ) -> Result<FieldSelector, E> {
        let mut requirements = Vec::with_capacity(self.requirements.len());
        for r in &self.requirements {
            let (field, value) = f(&r.field, &r.value)?;
            if field.is_empty() && value.is_empty() {
                continue;
            }
            requirements.push(FieldRequirement {
                field,
                operator: r.operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }
}

/// Upstream's `Selector.String()`: the terms joined by `,`, values escaped, `==` printed as `=`.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = FieldSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Escapes a literal value for a field selector: `\` → `\\`, `,` → `\,`, `=` → `\=`
/// (upstream's `fields.EscapeValue`).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_value`] (upstream's `fields.UnescapeValue`): `\\`, `\,` and `\=` are the
/// only escapes; an unescaped `,` or `=` is an error.
pub fn unescape_value(value: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => out.push(escaped),
                Some(other) => {
                    return Err(FieldSelectorError::InvalidEscapeSequence(format!("\\{other}")));
                }
                None => return Err(FieldSelectorError::InvalidEscapeSequence("\\".to_owned())),
            },
            ',' | '=' => return Err(FieldSelectorError::UnescapedCharacter(c)),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The comma-separated terms; an escaped comma (`\,`) stays inside its term, backslash kept.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, then `==`, then `=` tried at each position);
/// the value is returned still escaped.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn req(field: &str, operator: FieldOperator, value: &str) -> FieldRequirement {
        FieldRequirement {
            field: field.to_owned(),
            operator,
            value: value.to_owned(),
        }
    }

    #[test]
    fn parses_terms() {
        use FieldOperator::*;
        // (input, requirements in order, String())
        let cases: Vec<(&str, Vec<FieldRequirement>, &str)> = vec![
            ("", vec![], ""),
            (",", vec![], ""),
            ("=", vec![], ""),
            ("!=", vec![], ""),
            ("==", vec![], ""),
            ("a=b", vec![req("a", Equals, "b")], "a=b"),
            ("a==b", vec![req("a", Equals, "b")], "a=b"),
            ("a!=b", vec![req("a", NotEquals, "b")], "a!=b"),
            ("a=", vec![req("a", Equals, "")], "a="),
            ("=b", vec![req("", Equals, "b")], "=b"),
            (
                "a=b,c=d",
                vec![req("a", Equals, "b"), req("c", Equals, "d")],
                "a=b,c=d",
            ),
            // Terms are sorted by their source text.
            (
                "c=d,a=b",
                vec![req("a", Equals, "b"), req("c", Equals, "d")],
                "a=b,c=d",
            ),
            (
                "a=2,a!=1",
                vec![req("a", NotEquals, "1"), req("a", Equals, "2")],
                "a!=1,a=2",
            ),
            (
                "a=b,a==a",
                vec![req("a", Equals, "a"), req("a", Equals, "b")],
                "a=a,a=b",
            ),
            (",,a=b,", vec![req("a", Equals, "b")], "a=b"),
            (
                "metadata.name=x,metadata.namespace!=y",
                vec![
                    req("metadata.name", Equals, "x"),
                    req("metadata.namespace", NotEquals, "y"),
                ],
                "metadata.name=x,metadata.namespace!=y",
            ),
            // No trimming.
            ("a = b", vec![req("a ", Equals, " b")], "a = b"),
            // The field ends at the first operator.
            ("a=!b", vec![req("a", Equals, "!b")], "a=!b"),
            ("a!b=c", vec![req("a!b", Equals, "c")], "a!b=c"),
            // Escapes in values.
            ("a=b\\=c", vec![req("a", Equals, "b=c")], "a=b\\=c"),
            ("a=b\\,c", vec![req("a", Equals, "b,c")], "a=b\\,c"),
            ("a=b\\\\c", vec![req("a", Equals, "b\\c")], "a=b\\\\c"),
            (
                "a=\\,,b=\\=",
                vec![req("a", Equals, ","), req("b", Equals, "=")],
                "a=\\,,b=\\=",
            ),
            (
                "spec.nodeName=é",
                vec![req("spec.nodeName", Equals, "é")],
                "spec.nodeName=é",
            ),
            // An escaped comma in a field stays as written.
            ("a\\,b=c", vec![req("a\\,b", Equals, "c")], "a\\,b=c"),
        ];
        for (input, want, printed) in cases {
            let selector =
                FieldSelector::parse(input).unwrap_or_else(|e| panic!("parse({input:?}) failed: {e}"));
            assert_eq!(selector.requirements(), want.as_slice(), "parse({input:?})");
            assert_eq!(selector.to_string(), printed, "parse({input:?})");
            assert_eq!(selector.is_empty(), want.is_empty());
        }
    }

    #[test]
    fn parse_errors_are_worded_as_upstream() {
        let cases = [
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            ("z,a", "invalid selector: 'z,a'; can't understand 'a'"),
            ("a!b", "invalid selector: 'a!b'; can't understand 'a!b'"),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a===b",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a!==c",
                "invalid field selector: unescaped character in value: 61",
            ),
            ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
            ("a=b\\x", "invalid field selector: invalid escape sequence: \\x"),
            ("a=\\é", "invalid field selector: invalid escape sequence: \\é"),
            // Terms are checked in sorted order.
            ("b=\\x,a", "invalid selector: 'b=\\x,a'; can't understand 'a'"),
            ("c,a=\\x", "invalid field selector: invalid escape sequence: \\x"),
        ];
        for (input, want) in cases {
            match FieldSelector::parse(input) {
                Ok(s) => panic!("parse({input:?}) = {s:?}, want error {want:?}"),
                Err(e) => assert_eq!(e.to_string(), want, "parse({input:?})"),
            }
        }
        assert_eq!(
            FieldSelector::parse("a=b=c"),
            Err(FieldSelectorError::UnescapedCharacter('='))
        );
    }

    #[test]
    fn matches_with_missing_fields_as_empty() {
        let object: BTreeMap<&str, &str> = [("metadata.name", "web"), ("status.phase", "Running")]
            .into_iter()
            .collect();
        let get = |f: &str| object.get(f).map(|v| v.to_string());
        let cases = [
            ("", true),
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name!=web", false),
            ("metadata.name=db", false),
            ("metadata.name!=db", true),
            ("metadata.name=web,status.phase=Running", true),
            ("metadata.name=web,status.phase!=Running", false),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("spec.nodeName=node-1", false),
            ("spec.nodeName!=node-1", true),
        ];
        for (input, want) in cases {
            let selector = FieldSelector::parse(input).unwrap();
            assert_eq!(selector.matches(get), want, "{input:?}");
        }
        let with_comma = FieldSelector::parse("a=x\\,y").unwrap();
        assert!(with_comma.matches(|_| Some("x,y".to_owned())));
    }

    #[test]
    fn supported_fields_exact_match_and_transform() {
        let selector = FieldSelector::parse("spec.nodeName=n1,metadata.name!=x,metadata.name=web").unwrap();
        let supported = |f: &str| f.starts_with("metadata.");
        assert_eq!(
            selector.check_fields(supported).unwrap_err().to_string(),
            "field label not supported: spec.nodeName"
        );
        assert!(selector.check_fields(|_| true).is_ok());
        assert_eq!(selector.requires_exact_match("metadata.name"), Some("web"));
        assert_eq!(selector.requires_exact_match("spec.nodeName"), Some("n1"));
        assert_eq!(selector.requires_exact_match("status.phase"), None);
        assert_eq!(
            FieldSelector::parse("a!=b").unwrap().requires_exact_match("a"),
            None
        );

        // Rename a legacy field, drop a term turned empty, fail on another.
        let renamed = selector
            .transform(|f, v| -> Result<_, FieldSelectorError> {
                match f {
                    "spec.nodeName" => Ok(("spec.host".to_owned(), v.to_owned())),
                    "metadata.name" if v == "x" => Ok((String::new(), String::new())),
                    _ => Ok((f.to_owned(), v.to_owned())),
                }
            })
            .unwrap();
        assert_eq!(renamed.to_string(), "metadata.name=web,spec.host=n1");
        let err = selector
            .transform(|f, v| {
                if f.starts_with("spec.") {
                    Err(FieldSelectorError::UnsupportedField(f.to_owned()))
                } else {
                    Ok((f.to_owned(), v.to_owned()))
                }
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: spec.nodeName");
    }

    #[test]
    fn escaping_round_trips() {
        for value in ["", "plain", "a,b", "a=b", "a\\b", "\\,=", "é\\"] {
            let escaped = escape_value(value);
            assert_eq!(unescape_value(&escaped).unwrap(), value, "{value:?}");
            let selector = FieldSelector::from_requirements(vec![req("f", FieldOperator::Equals, value)]);
            let printed = selector.to_string();
            assert_eq!(FieldSelector::parse(&printed).unwrap(), selector, "{printed:?}");
        }
        assert_eq!(escape_value("a\\b,c=d"), "a\\\\b\\,c\\=d");
        assert_eq!(
            unescape_value("a,b"),
            Err(FieldSelectorError::UnescapedCharacter(','))
        );
        assert_eq!(FieldOperator::NotEquals.to_string(), "!=");
        assert_eq!(
            "a=b".parse::<FieldSelector>().unwrap(),
            FieldSelector::parse("a=b").unwrap()
        );
        assert!(FieldSelector::everything().is_empty());
    }

    /// Random inputs: parsing never panics, and what parses prints to a string that parses to
    /// the same terms (perhaps reordered: printing normalizes `==` and escapes).
    #[test]
    fn random_inputs_parse_or_fail_cleanly_and_round_trip() {
        const PIECES: &[&str] = &[
            "a",
            "b",
            "metadata.name",
            "=",
            "==",
            "!=",
            "!",
            ",",
            "\\",
            "\\,",
            "\\=",
            "\\\\",
            " ",
            "é",
            "\\é",
        ];
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1d);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = (next() % 10) as usize;
            let input: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            if let Ok(selector) = FieldSelector::parse(&input) {
                parsed += 1;
                let printed = selector.to_string();
                let again = FieldSelector::parse(&printed)
                    .unwrap_or_else(|e| panic!("{input:?} printed as {printed:?}: {e}"));
                let sorted = |s: &FieldSelector| {
                    let mut r = s.requirements().to_vec();
                    r.sort_by(|a, b| {
                        (&a.field, &a.value, a.operator.as_str()).cmp(&(
                            &b.field,
                            &b.value,
                            b.operator.as_str(),
                        ))
                    });
                    r
                };
                assert_eq!(
                    sorted(&again),
                    sorted(&selector),
                    "{input:?} printed as {printed:?}"
                );
            }
        }
        assert!(parsed > 1_000, "only {parsed} random inputs parsed");
    }
}
