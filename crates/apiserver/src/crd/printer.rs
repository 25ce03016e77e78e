//! Server-side Tables of custom resources: Name, then the version's `additionalPrinterColumns`
//! (or upstream's default, Age), each cell found with the column's JSONPath and typed as
//! upstream's tableconvertor does (`date` cells print as ages; `priority` 1 columns are for
//! `-o wide`).

use serde_json::{Value, json};

use crate::table::format::Ctx;
use crate::table::{CREATED_DOC, DynamicPrinter, NAME_DOC};

/// One printer column of a CRD version.
#[derive(Clone, Debug)]
pub struct Column {
    name: String,
    kind: String,
    format: String,
    description: String,
    priority: i64,
    path: Vec<Step>,
}

impl Column {
    /// The columns of a CRD version; upstream's default (Age) when it declares none.
    pub fn from_version(version: &Value) -> Vec<Column> {
        let declared = version["additionalPrinterColumns"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if declared.is_empty() {
            return vec![Column {
                name: "Age".into(),
                kind: "date".into(),
                format: String::new(),
                description: CREATED_DOC.into(),
                priority: 0,
                path: parse_path(".metadata.creationTimestamp").unwrap_or_default(),
            }];
        }
        declared
            .iter()
            .filter_map(|c| {
                let path_text = c["jsonPath"].as_str()?;
                Some(Column {
                    name: c["name"].as_str()?.to_owned(),
                    kind: c["type"].as_str().unwrap_or("string").to_owned(),
                    format: c["format"].as_str().unwrap_or_default().to_owned(),
                    description: c["description"].as_str().map(str::to_owned).unwrap_or_else(|| {
                        format!("Custom resource definition column (in JSONPath format): {path_text}")
                    }),
                    priority: c["priority"].as_i64().unwrap_or(0),
                    path: parse_path(path_text)?,
                })
            })
            .collect()
    }
}

/// The printer of one custom resource version.
pub struct Printer {
    pub columns: Vec<Column>,
}

impl DynamicPrinter for Printer {
    fn columns(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0,
        })];
        out.extend(self.columns.iter().map(|c| {
            json!({
                "name": c.name, "type": c.kind, "format": c.format,
                "description": c.description, "priority": c.priority,
            })
        }));
        out
    }

    fn cells(&self, obj: &Value, ctx: &Ctx) -> Vec<Value> {
        let mut cells = vec![Value::from(crate::table::format::name(obj))];
        for column in &self.columns {
            let found = find(obj, &column.path);
            cells.push(match found {
                None => Value::Null,
                Some(v) => cell(&column.kind, v, ctx),
            });
        }
        cells
    }
}

/// A cell of a column type (upstream's `cellForJSONValue`; strings print as JSONPath does).
fn cell(kind: &str, v: &Value, ctx: &Ctx) -> Value {
    match kind {
        "string" => match v {
            Value::String(s) => s.clone().into(),
            other => other.to_string().into(),
        },
        "integer" => match v {
            Value::Number(n) if n.is_i64() => n.clone().into(),
            Value::Number(n) => n.as_f64().map_or(Value::Null, |f| Value::from(f as i64)),
            _ => Value::Null,
        },
        "number" => match v {
            Value::Number(_) => v.clone(),
            _ => Value::Null,
        },
        "boolean" => match v {
            Value::Bool(_) => v.clone(),
            _ => Value::Null,
        },
        "date" => match crate::table::format::timestamp(v) {
            Some(_) => ctx.since(v).into(),
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// One step of the simple JSONPath printer columns use.
#[derive(Clone, Debug)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.a.b=="x")]`: the elements whose field equals the value.
    Filter(Vec<String>, Value),
}

/// Parses `.a.b[0].c`, `.a['x.y']`, `.a[*].b` and `.a[?(@.type=="Ready")].status`.
fn parse_path(text: &str) -> Option<Vec<Step>> {
    let text = text.trim();
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let mut steps = Vec::new();
    let mut rest = text.strip_prefix('$').unwrap_or(text);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_owned()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = find_bracket_end(r)?;
            let inner = r[..end].trim();
            rest = &r[end + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Ok(i) = inner.parse::<usize>() {
                steps.push(Step::Index(i));
            } else if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                let (lhs, rhs) = filter.split_once("==")?;
                let field: Vec<String> = lhs
                    .trim()
                    .strip_prefix("@.")?
                    .split('.')
                    .map(str::to_owned)
                    .collect();
                let rhs = rhs.trim();
                let value = if let Some(s) = rhs.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Value::from(s)
                } else if let Some(s) = rhs.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    Value::from(s)
                } else {
                    serde_json::from_str(rhs).ok()?
                };
                steps.push(Step::Filter(field, value));
            } else {
                let key = inner.trim_matches(|c| c == '\'' || c == '"');
                steps.push(Step::Field(key.to_owned()));
            }
        } else {
            return None;
        }
    }
    Some(steps)
}

fn find_bracket_end(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The first value the path finds.
fn find<'a>(obj: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let Some((step, rest)) = path.split_first() else {
        return Some(obj);
    };
    match step {
        Step::Field(f) => find(obj.get(f)?, rest),
        Step::Index(i) => find(obj.get(*i)?, rest),
        Step::All => obj.as_array()?.iter().find_map(|v| find(v, rest)),
        Step::Filter(field, want) => obj.as_array()?.iter().find_map(|item| {
            let mut v = item;
            for f in field {
                v = v.get(f)?;
            }
            if v == want { find(item, rest) } else { None }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_find_cells() {
        let obj = json!({
            "metadata": {"name": "a", "creationTimestamp": "2026-01-10T11:00:00Z"},
            "spec": {"replicas": 3, "image": "nginx", "a.b": "dotted"},
            "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]}
        });
        let version = json!({"additionalPrinterColumns": [
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Dotted", "type": "string", "jsonPath": ".spec['a.b']"},
            {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ]});
        let printer = Printer {
            columns: Column::from_version(&version),
        };
        let ctx = Ctx {
            now: "2026-01-10T12:00:00Z".parse().unwrap(),
        };
        assert_eq!(
            printer.cells(&obj, &ctx),
            vec![
                json!("a"),
                json!(3),
                json!("nginx"),
                json!("True"),
                json!("dotted"),
                Value::Null,
                json!("60m")
            ]
        );
        assert_eq!(printer.columns()[2]["priority"], 1);
        let default = Printer {
            columns: Column::from_version(&json!({})),
        };
        assert_eq!(default.columns()[1]["name"], "Age");
        assert_eq!(default.cells(&obj, &ctx), vec![json!("a"), json!("60m")]);
    }
}
