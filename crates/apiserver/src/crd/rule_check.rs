//! The part of cel-go's type checker CRD authors meet most: references to names that are not
//! declared (`undeclared reference to 'x' (in container '')`) and selections of fields the
//! schema does not declare (`undefined field 'x'`). cel-rust only parses, so without this such
//! rules would be accepted and fail on every write. Deliberately conservative: a field is only
//! undefined on an object whose schema lists its properties and keeps no unknown fields.

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr};

use super::schema::{Additional, Schema};
use super::validation_rules::escaped_property;

/// Names cel-go declares besides variables: type names usable as values and conversions.
const DECLARED: [&str; 12] = [
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
    "optional_type",
];

/// Library namespaces whose functions are called as `ns.f(...)`.
const NAMESPACES: [&str; 5] = ["strings", "lists", "math", "sets", "cel"];

/// The first problem of `program` (compiled from `source`) for a rule on `schema`, in cel-go's
/// issue format.
pub fn check(program: &cel::Program, source: &str, schema: &Schema) -> Option<String> {
    let mut checker = Checker {
        schema,
        scope: Vec::new(),
        problem: None,
    };
    checker.expr(program.expression());
    let (id, message) = checker.problem?;
    let offset = program
        .source_info()
        .offset_for(id)
        .map_or(0, |(start, _)| start as usize);
    Some(issue(source, offset, &message))
}

/// `ERROR: <input>:L:C: message`, the source line and a caret under the column, as cel-go.
fn issue(source: &str, offset: usize, message: &str) -> String {
    let before: String = source.chars().take(offset).collect();
    let line = before.matches('\n').count();
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count());
    let text = source.lines().nth(line).unwrap_or_default();
    format!(
        "ERROR: <input>:{}:{}: {message}\n | {text}\n | {}^",
        line + 1,
        column + 1,
        ".".repeat(column)
    )
}

struct Checker<'s> {
    schema: &'s Schema,
    /// Comprehension variables in scope, with the schema of their values where known.
    scope: Vec<(String, Option<&'s Schema>)>,
    problem: Option<(u64, String)>,
}

impl<'s> Checker<'s> {
    fn report(&mut self, id: u64, message: String) {
        if self.problem.is_none() {
            self.problem = Some((id, message));
        }
    }

    /// Checks `e`; returns the schema of its value when it is a known part of `self`/`oldSelf`.
    fn expr(&mut self, e: &IdedExpr) -> Option<&'s Schema> {
        match &e.expr {
            Expr::Ident(name) => {
                if let Some((_, s)) = self.scope.iter().rev().find(|(n, _)| n == name) {
                    return *s;
                }
                match name.as_str() {
                    "self" | "oldSelf" => Some(self.schema),
                    n if DECLARED.contains(&n) || n.starts_with('@') || n.starts_with("__") => None,
                    n => {
                        self.report(e.id, format!("undeclared reference to '{n}' (in container '')"));
                        None
                    }
                }
            }
            Expr::Select(select) => {
                let operand = self.expr(&select.operand)?;
                field_of(operand, &select.field).unwrap_or_else(|| {
                    self.report(e.id, format!("undefined field '{}'", select.field));
                    None
                })
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    let namespace = matches!(&target.expr, Expr::Ident(n)
                        if NAMESPACES.contains(&n.as_str()) && !self.scope.iter().any(|(v, _)| v == n));
                    if !namespace {
                        self.expr(target);
                    }
                }
                for arg in &call.args {
                    self.expr(arg);
                }
                None
            }
            Expr::Comprehension(c) => {
                let range = self.expr(&c.iter_range);
                self.expr(&c.accu_init);
                // One variable: a list's item or a map's key. Two: index and item, or key and value.
                let element = range.and_then(|s| match (&s.items, &s.additional) {
                    (Some(items), _) => Some(items.as_ref()),
                    (None, Additional::Schema(value)) if c.iter_var2.is_some() => Some(value.as_ref()),
                    _ => None,
                });
                let (first, second) = match &c.iter_var2 {
                    Some(_) => (None, element),
                    None if range.is_some_and(|s| s.items.is_some()) => (element, None),
                    None => (None, None),
                };
                let depth = self.scope.len();
                self.scope.push((c.iter_var.clone(), first));
                if let Some(v2) = &c.iter_var2 {
                    self.scope.push((v2.clone(), second));
                }
                self.scope.push((c.accu_var.clone(), None));
                self.expr(&c.loop_cond);
                self.expr(&c.loop_step);
                self.expr(&c.result);
                self.scope.truncate(depth);
                None
            }
            Expr::List(list) => {
                for item in &list.elements {
                    self.expr(item);
                }
                None
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        self.expr(&m.key);
                        self.expr(&m.value);
                    }
                }
                None
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.expr(&f.value);
                    }
                }
                None
            }
            Expr::Literal(_) | Expr::Unspecified => None,
        }
    }
}

/// The schema of `field` on a value of `schema`: `Some(Some(_))` when declared, `Some(None)`
/// when it may exist but its schema is unknown, `None` when the schema rules it out.
fn field_of<'s>(schema: &'s Schema, field: &str) -> Option<Option<&'s Schema>> {
    if let Some(p) = schema.properties.get(field) {
        return Some(Some(p));
    }
    if let Some((_, p)) = schema
        .properties
        .iter()
        .find(|(name, _)| escaped_property(name).as_deref() == Some(field))
    {
        return Some(Some(p));
    }
    if let Additional::Schema(a) = &schema.additional {
        return Some(Some(a));
    }
    let closed = schema.kind.as_deref() == Some("object")
        && !schema.properties.is_empty()
        && !schema.preserve_unknown
        && !schema.embedded_resource
        && !matches!(field, "apiVersion" | "kind" | "metadata");
    if closed { None } else { Some(None) }
}

/// How deeply comprehensions (the macros `all`, `exists`, `map`, `filter`, ...) nest in `e`.
pub fn comprehension_nesting(e: &IdedExpr) -> u32 {
    let deepest =
        |items: &mut dyn Iterator<Item = &IdedExpr>| items.map(comprehension_nesting).max().unwrap_or(0);
    match &e.expr {
        Expr::Comprehension(c) => {
            let body = deepest(&mut [&c.loop_cond, &c.loop_step, &c.result].into_iter());
            let outside = deepest(&mut [&c.iter_range, &c.accu_init].into_iter());
            (body + 1).max(outside)
        }
        Expr::Call(call) => deepest(&mut call.target.iter().map(|t| t.as_ref()).chain(call.args.iter())),
        Expr::Select(select) => comprehension_nesting(&select.operand),
        Expr::List(list) => deepest(&mut list.elements.iter()),
        Expr::Map(map) => deepest(&mut map.entries.iter().filter_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => Some(&m.value),
            EntryExpr::StructField(_) => None,
        })),
        Expr::Struct(_) | Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 0,
    }
}
