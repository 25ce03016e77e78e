//! The CEL environment CRD validation rules run in: cel-rust's standard library (macros, `matches`,
//! `duration`/`timestamp`), its strings and lists extensions, optional syntax, and the Kubernetes
//! libraries real rules use (k8s.io/apiserver/pkg/cel/library) written here on top: regex
//! `find`/`findAll`, lists `isSorted`/`sum`/`min`/`max`/`indexOf`/`lastIndexOf`, `url`/`isURL`,
//! `quantity`/`isQuantity`.

use std::cmp::Ordering;
use std::sync::{Arc, LazyLock};

use cel::common::types::{DYN_TYPE, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::extractors::{Arguments, This};
use cel::objects::Opaque;
use cel::{Context, Env, ExecutionError, Value};

type Result<T> = std::result::Result<T, ExecutionError>;

/// The environment rules compile in and run with, built once.
pub fn env() -> Arc<Env> {
    static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
        let mut env = Env::stdlib().with_optional_support(true);
        // Both extensions only add overloads; a failure would be a bug in this list.
        let _ = env.add_extension(cel::extensions::strings);
        let _ = env.add_extension(cel::extensions::lists);
        let _ = env.add_member_overload(
            "indexOf",
            "k8s.list.indexOf",
            LIST_TYPE,
            vec![DYN_TYPE],
            list_index_of,
        );
        let _ = env.add_member_overload(
            "lastIndexOf",
            "k8s.list.lastIndexOf",
            LIST_TYPE,
            vec![DYN_TYPE],
            list_last_index_of,
        );
        Arc::new(env)
    });
    ENV.clone()
}

/// A fresh root context with the Kubernetes functions; rules add `self` / `oldSelf` to it.
pub fn context() -> Context<'static, 'static> {
    let mut ctx = Context::with_env(env());
    // Names the environment already declares are skipped (add_function refuses them).
    let _ = ctx.add_function("find", find);
    let _ = ctx.add_function("findAll", find_all);
    let _ = ctx.add_function("isSorted", is_sorted);
    let _ = ctx.add_function("sum", sum);
    let _ = ctx.add_function("min", min);
    let _ = ctx.add_function("max", max);
    let _ = ctx.add_function("url", url);
    let _ = ctx.add_function("isURL", is_url);
    let _ = ctx.add_function("getScheme", |This(u): This<Value>| {
        url_part(&u, |u| u.scheme.clone())
    });
    let _ = ctx.add_function("getHost", |This(u): This<Value>| url_part(&u, |u| u.host.clone()));
    let _ = ctx.add_function("getHostname", |This(u): This<Value>| {
        url_part(&u, |u| u.hostname())
    });
    let _ = ctx.add_function("getPort", |This(u): This<Value>| url_part(&u, |u| u.port()));
    let _ = ctx.add_function("getEscapedPath", |This(u): This<Value>| {
        url_part(&u, |u| u.path.clone())
    });
    let _ = ctx.add_function("getQuery", get_query);
    let _ = ctx.add_function("quantity", quantity);
    let _ = ctx.add_function("isQuantity", is_quantity);
    let _ = ctx.add_function("isInteger", |This(q): This<Value>| {
        quantity_of(&q).map(|q| Value::Bool(q.fract() == 0.0))
    });
    let _ = ctx.add_function("asInteger", as_integer);
    let _ = ctx.add_function("asApproximateFloat", |This(q): This<Value>| {
        quantity_of(&q).map(Value::Float)
    });
    let _ = ctx.add_function("sign", |This(q): This<Value>| {
        quantity_of(&q).map(|q| {
            Value::Int(if q > 0.0 {
                1
            } else if q < 0.0 {
                -1
            } else {
                0
            })
        })
    });
    let _ = ctx.add_function("compareTo", |This(a): This<Value>, b: Value| {
        compare_quantities(&a, &b).map(|o| Value::Int(o as i64))
    });
    let _ = ctx.add_function("isGreaterThan", |This(a): This<Value>, b: Value| {
        compare_quantities(&a, &b).map(|o| Value::Bool(o == Ordering::Greater))
    });
    let _ = ctx.add_function("isLessThan", |This(a): This<Value>, b: Value| {
        compare_quantities(&a, &b).map(|o| Value::Bool(o == Ordering::Less))
    });
    let _ = ctx.add_function("add", |This(a): This<Value>, b: Value| {
        quantity_arith(&a, &b, 1.0)
    });
    let _ = ctx.add_function("sub", |This(a): This<Value>, b: Value| {
        quantity_arith(&a, &b, -1.0)
    });
    ctx
}

fn error(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

fn string_of<'a>(v: &'a Value, function: &str) -> Result<&'a str> {
    match v {
        Value::String(s) => Ok(s.as_str()),
        other => Err(error(
            function,
            format!("expected a string, got {:?}", other.type_of()),
        )),
    }
}

fn list_of<'a>(v: &'a Value, function: &str) -> Result<&'a [Value]> {
    match v {
        Value::List(l) => Ok(l.as_slice()),
        other => Err(error(
            function,
            format!("expected a list, got {:?}", other.type_of()),
        )),
    }
}

/// Regular expressions: RE2 syntax, which the regex crate implements.
fn regex(pattern: &str, function: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|e| error(function, e))
}

fn find(This(s): This<Value>, pattern: Value) -> Result<Value> {
    let s = string_of(&s, "find")?;
    let re = regex(string_of(&pattern, "find")?, "find")?;
    Ok(re.find(s).map(|m| m.as_str()).unwrap_or_default().into())
}

fn find_all(This(s): This<Value>, Arguments(args): Arguments) -> Result<Value> {
    // As a member call, Arguments holds the pattern and the optional limit.
    let s = string_of(&s, "findAll")?;
    let pattern = args.first().ok_or_else(|| error("findAll", "missing pattern"))?;
    let re = regex(string_of(pattern, "findAll")?, "findAll")?;
    let limit = match args.get(1) {
        Some(Value::Int(n)) if *n >= 0 => *n as usize,
        _ => usize::MAX,
    };
    let found: Vec<Value> = re
        .find_iter(s)
        .take(limit)
        .map(|m| Value::from(m.as_str()))
        .collect();
    Ok(Value::List(Arc::new(found)))
}

fn compare(a: &Value, b: &Value, function: &str) -> Result<Ordering> {
    a.partial_cmp(b).ok_or_else(|| {
        error(
            function,
            format!("{:?} and {:?} are not comparable", a.type_of(), b.type_of()),
        )
    })
}

fn is_sorted(This(list): This<Value>) -> Result<Value> {
    let items = list_of(&list, "isSorted")?;
    for pair in items.windows(2) {
        if compare(&pair[0], &pair[1], "isSorted")? == Ordering::Greater {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}

fn sum(This(list): This<Value>) -> Result<Value> {
    let items = list_of(&list, "sum")?;
    let mut int: i64 = 0;
    let mut float: Option<f64> = None;
    for item in items {
        match item {
            Value::Int(i) => {
                int = int
                    .checked_add(*i)
                    .ok_or_else(|| error("sum", "integer overflow"))?
            }
            Value::UInt(u) => {
                int = int
                    .checked_add(*u as i64)
                    .ok_or_else(|| error("sum", "integer overflow"))?
            }
            Value::Float(f) => *float.get_or_insert(0.0) += f,
            Value::Duration(_) => return Err(error("sum", "durations are not supported")),
            other => return Err(error("sum", format!("cannot sum {:?}", other.type_of()))),
        }
    }
    Ok(match float {
        Some(f) => Value::Float(f + int as f64),
        None => Value::Int(int),
    })
}

/// `list.min()` / `list.max()` (Kubernetes lists library), also the variadic `min(a, b)` forms.
fn extreme(target: Option<Value>, args: &[Value], wanted: Ordering, function: &str) -> Result<Value> {
    let items: Vec<Value> = match (target, args) {
        (Some(Value::List(l)), []) => l.as_ref().clone(),
        (None, [Value::List(l)]) => l.as_ref().clone(),
        (Some(t), rest) => std::iter::once(t).chain(rest.iter().cloned()).collect(),
        (None, rest) => rest.to_vec(),
    };
    let mut best = items
        .first()
        .cloned()
        .ok_or_else(|| error(function, format!("{function} called on an empty list")))?;
    for item in &items[1..] {
        if compare(item, &best, function)? == wanted {
            best = item.clone();
        }
    }
    Ok(best)
}

fn min(ftx: &cel::FunctionContext, Arguments(args): Arguments) -> Result<Value> {
    let target = ftx.this.as_ref().and_then(|t| Value::try_from(t.as_ref()).ok());
    extreme(target, &args, Ordering::Less, "min")
}

fn max(ftx: &cel::FunctionContext, Arguments(args): Arguments) -> Result<Value> {
    let target = ftx.this.as_ref().and_then(|t| Value::try_from(t.as_ref()).ok());
    extreme(target, &args, Ordering::Greater, "max")
}

fn to_value(v: &CowVal<'_, '_>) -> Result<Value> {
    Value::try_from(v.as_ref()).map_err(|_| error("indexOf", "unsupported value"))
}

fn owned(v: Value) -> Result<CowVal<'static, 'static>> {
    let boxed: Box<dyn Val> = v.try_into().map_err(|_| error("indexOf", "unsupported value"))?;
    Ok(CowVal::Owned(boxed))
}

fn list_position<'b, 'v>(args: Vec<CowVal<'b, 'v>>, last: bool) -> Result<CowVal<'b, 'v>> {
    let [list, wanted]: [CowVal; 2] = args
        .try_into()
        .map_err(|_| error("indexOf", "expected one argument"))?;
    let (list, wanted) = (to_value(&list)?, to_value(&wanted)?);
    let items = list_of(&list, "indexOf")?;
    let mut positions = items
        .iter()
        .enumerate()
        .filter(|(_, v)| **v == wanted)
        .map(|(i, _)| i as i64);
    let found = if last {
        positions.next_back()
    } else {
        positions.next()
    };
    owned(Value::Int(found.unwrap_or(-1)))
}

fn list_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>> {
    list_position(args, false)
}

fn list_last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>> {
    list_position(args, true)
}

/// A parsed URL (Go's url.URL as the Kubernetes URLs library exposes it).
#[derive(Debug, PartialEq, Eq)]
struct Url {
    scheme: String,
    host: String,
    path: String,
    query: String,
}

impl Opaque for Url {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.URL"
    }
}

impl Url {
    /// Absolute URLs only, as Go's url.ParseRequestURI (what `url()` and `isURL()` use).
    fn parse(s: &str) -> Option<Url> {
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (before_fragment, _) = s.split_once('#').unwrap_or((s, ""));
        let (scheme, rest) = before_fragment.split_once(':')?;
        let mut chars = scheme.chars();
        if !chars.next()?.is_ascii_alphabetic()
            || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return None;
        }
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, path) = match rest.strip_prefix("//") {
            Some(authority) => {
                let (authority, path) = match authority.find('/') {
                    Some(i) => (&authority[..i], &authority[i..]),
                    None => (authority, ""),
                };
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                (host.to_owned(), path.to_owned())
            }
            None if rest.starts_with('/') => (String::new(), rest.to_owned()),
            None => return None,
        };
        Some(Url {
            scheme: scheme.to_owned(),
            host,
            path,
            query: query.to_owned(),
        })
    }

    fn hostname(&self) -> String {
        if let Some(v6) = self.host.strip_prefix('[') {
            return v6.split(']').next().unwrap_or_default().to_owned();
        }
        self.host.split(':').next().unwrap_or_default().to_owned()
    }

    fn port(&self) -> String {
        let after = match self.host.rfind(']') {
            Some(i) => &self.host[i + 1..],
            None => &self.host,
        };
        after
            .split_once(':')
            .map(|(_, p)| p.to_owned())
            .unwrap_or_default()
    }
}

fn url(s: Value) -> Result<Value> {
    let s = string_of(&s, "url")?;
    Url::parse(s).map(|u| Value::Opaque(Arc::new(u))).ok_or_else(|| {
        error(
            "url",
            format!("URL parse error during conversion from string: parse {s:?}: invalid URI for request"),
        )
    })
}

fn is_url(s: Value) -> Result<Value> {
    Ok(Value::Bool(Url::parse(string_of(&s, "isURL")?).is_some()))
}

fn url_part(v: &Value, part: impl Fn(&Url) -> String) -> Result<Value> {
    match v {
        Value::Opaque(o) if o.runtime_type_name() == "kubernetes.URL" => {
            let url = o.downcast_ref::<Url>().ok_or_else(|| error("url", "not a URL"))?;
            Ok(part(url).into())
        }
        other => Err(error("url", format!("expected a URL, got {:?}", other.type_of()))),
    }
}

fn get_query(This(u): This<Value>) -> Result<Value> {
    let query = url_part(&u, |u| u.query.clone())?;
    let mut map: std::collections::HashMap<String, Vec<Value>> = std::collections::HashMap::new();
    if let Value::String(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            map.entry(k.into_owned())
                .or_default()
                .push(Value::from(v.into_owned()));
        }
    }
    let map: std::collections::HashMap<String, Value> = map
        .into_iter()
        .map(|(k, v)| (k, Value::List(Arc::new(v))))
        .collect();
    Ok(map.into())
}

/// A resource quantity, held as its numeric value (comparisons and arithmetic are what rules use).
#[derive(Debug, PartialEq)]
struct Quantity(f64);

impl Eq for Quantity {}

impl Opaque for Quantity {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.Quantity"
    }
}

fn quantity(s: Value) -> Result<Value> {
    let text = string_of(&s, "quantity")?;
    apimachinery::quantity::parse(text)
        .map(|q| Value::Opaque(Arc::new(Quantity(q))))
        .ok_or_else(|| {
            error(
                "quantity",
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            )
        })
}

fn is_quantity(s: Value) -> Result<Value> {
    Ok(Value::Bool(
        apimachinery::quantity::parse(string_of(&s, "isQuantity")?).is_some(),
    ))
}

fn quantity_of(v: &Value) -> Result<f64> {
    match v {
        Value::Opaque(o) if o.runtime_type_name() == "kubernetes.Quantity" => o
            .downcast_ref::<Quantity>()
            .map(|q| q.0)
            .ok_or_else(|| error("quantity", "not a quantity")),
        Value::Int(i) => Ok(*i as f64),
        other => Err(error(
            "quantity",
            format!("expected a quantity, got {:?}", other.type_of()),
        )),
    }
}

fn as_integer(This(q): This<Value>) -> Result<Value> {
    let q = quantity_of(&q)?;
    if q.fract() != 0.0 || q.abs() > i64::MAX as f64 {
        return Err(error("asInteger", "cannot convert value to integer"));
    }
    Ok(Value::Int(q as i64))
}

fn compare_quantities(a: &Value, b: &Value) -> Result<Ordering> {
    let (a, b) = (quantity_of(a)?, quantity_of(b)?);
    a.partial_cmp(&b)
        .ok_or_else(|| error("compareTo", "not comparable"))
}

fn quantity_arith(a: &Value, b: &Value, sign: f64) -> Result<Value> {
    Ok(Value::Opaque(Arc::new(Quantity(
        quantity_of(a)? + sign * quantity_of(b)?,
    ))))
}
