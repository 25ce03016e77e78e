//! What the printers share: reading untyped JSON, ages (upstream's `HumanDuration`), label and
//! selector strings, and the container columns of workload kinds.

use jiff::Timestamp;
use serde_json::Value;

/// What a row is computed against: the server's current time.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub now: Timestamp,
}

impl Ctx {
    pub fn now() -> Ctx {
        Ctx {
            now: Timestamp::now(),
        }
    }

    /// The time since `ts` as upstream prints it, `<unknown>` when unset (upstream's
    /// `translateTimestampSince`).
    pub fn since(&self, ts: &Value) -> String {
        match timestamp(ts) {
            Some(ts) => human_duration(self.now.duration_since(ts).as_nanos()),
            None => "<unknown>".into(),
        }
    }

    /// The AGE cell: time since `metadata.creationTimestamp`.
    pub fn age(&self, obj: &Value) -> String {
        self.since(&obj["metadata"]["creationTimestamp"])
    }
}

/// A Kubernetes timestamp (RFC 3339, second or microsecond precision); None when absent,
/// unparsable or Go's zero time (which upstream treats as unset).
pub fn timestamp(value: &Value) -> Option<Timestamp> {
    let ts: Timestamp = value.as_str()?.parse().ok()?;
    // 0001-01-01T00:00:00Z, Go's zero time.
    let zero = ts.as_second() == -62_135_596_800 && ts.subsec_nanosecond() == 0;
    (!zero).then_some(ts)
}

/// Upstream's `duration.HumanDuration`: about two or three significant figures, e.g. `45s`,
/// `3m12s`, `17m`, `5h3m`, `20h`, `2d3h`, `120d`, `3y14d`, `9y`. A duration more than a second
/// negative (clock skew) is `<invalid>`.
pub fn human_duration(nanos: i128) -> String {
    const SECOND: i128 = 1_000_000_000;
    const MINUTE: i128 = 60 * SECOND;
    const HOUR: i128 = 60 * MINUTE;
    // Integer division truncates toward zero, as Go's int conversion of d.Seconds() does.
    let seconds = nanos / SECOND;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = nanos / MINUTE;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = nanos / HOUR;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    if hours < 24 * 365 * 8 {
        return with_remainder(days / 365, "y", days % 365, "d");
    }
    format!("{}y", days / 365)
}

fn with_remainder(major: i128, major_unit: &str, minor: i128, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

/// A string field, "" when absent (Go's zero value).
pub fn s(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// A string field that is present and not empty.
pub fn nonempty(value: &Value) -> Option<&str> {
    value.as_str().filter(|v| !v.is_empty())
}

/// An integer field, 0 when absent.
pub fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// An `int32` field (0 when absent or out of range, which upstream's decoder would refuse):
/// sums of them cannot overflow an i64.
pub fn int32(value: &Value) -> i64 {
    value
        .as_i64()
        .and_then(|v| i32::try_from(v).ok())
        .map_or(0, i64::from)
}

/// A boolean field, false when absent.
pub fn flag(value: &Value) -> bool {
    value.as_bool().unwrap_or(false)
}

/// An array field, empty when absent.
pub fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The number of entries of a map field (`data`, …), 0 when absent.
pub fn map_len(value: &Value) -> i64 {
    value.as_object().map_or(0, |m| m.len() as i64)
}

/// Whether the field is set (not absent, not null).
pub fn present(value: &Value) -> bool {
    !value.is_null()
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    s(&obj["metadata"]["name"])
}

/// An IntOrString as upstream's `String()`: the number, or the string.
pub fn int_or_string(value: &Value) -> String {
    match value {
        Value::String(v) => v.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".into(),
    }
}

/// A quantity as a string. Stored quantities are shown as written: upstream would show them in
/// canonical form (`1024Mi` as `1Gi`), which rkube does not compute yet.
pub fn quantity(value: &Value) -> String {
    match value {
        Value::String(v) => v.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".into(),
    }
}

/// A label map as upstream's `labels.FormatLabels`: `k=v,k2=v2` sorted by key, `<none>` when
/// empty.
pub fn format_labels(map: &Value) -> String {
    let mut pairs: Vec<String> = map
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect())
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// A LabelSelector as upstream's `LabelSelectorAsSelector(…).String()`: requirements sorted by
/// key (`k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`); "" for a nil or empty selector; Err
/// for a selector upstream refuses to convert.
pub fn selector_string(selector: &Value) -> Result<String, ()> {
    if !selector.is_object() {
        return Ok(String::new());
    }
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector["matchLabels"].as_object() {
        for (k, v) in labels {
            requirements.push((k.clone(), format!("{k}={}", s(v))));
        }
    }
    for expr in list(&selector["matchExpressions"]) {
        let key = s(&expr["key"]);
        let mut values: Vec<&str> = list(&expr["values"]).iter().map(s).collect();
        values.sort_unstable();
        values.dedup();
        let text = match s(&expr["operator"]) {
            op @ ("In" | "NotIn") => {
                if values.is_empty() {
                    return Err(());
                }
                let word = if op == "In" { "in" } else { "notin" };
                format!("{key} {word} ({})", values.join(","))
            }
            "Exists" if values.is_empty() => key.to_owned(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return Err(()),
        };
        requirements.push((key.to_owned(), text));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(","))
}

/// A LabelSelector as upstream's `metav1.FormatLabelSelector`: `<none>` when it selects by
/// nothing, `<error>` when it cannot be converted.
pub fn format_label_selector(selector: &Value) -> String {
    match selector_string(selector) {
        Ok(text) if text.is_empty() => "<none>".into(),
        Ok(text) => text,
        Err(()) => "<error>".into(),
    }
}

/// The Containers and Images cells of a pod spec (upstream's `layoutContainerCells`).
pub fn containers(pod_spec: &Value) -> (String, String) {
    let containers = list(&pod_spec["containers"]);
    let names: Vec<&str> = containers.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(&c["image"])).collect();
    (names.join(","), images.join(","))
}

/// Up to `max` items joined by `sep`, then ` + N more...` (upstream's list formatting).
pub fn with_more(items: &[String], max: usize, total: usize, sep: &str) -> String {
    let shown = items.iter().take(max).cloned().collect::<Vec<_>>().join(sep);
    if total > max {
        format!("{shown} + {} more...", total - max)
    } else {
        shown
    }
}

/// `<none>` for an empty string.
pub fn or_none(text: String) -> String {
    if text.is_empty() { "<none>".into() } else { text }
}

/// Upstream's `printBoolPtr`: `True`, `False`, or `<unset>`.
pub fn bool_ptr(value: &Value) -> String {
    match value.as_bool() {
        Some(true) => "True".into(),
        Some(false) => "False".into(),
        None => "<unset>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_durations_match_upstream() {
        const S: i128 = 1_000_000_000;
        const M: i128 = 60 * S;
        const H: i128 = 60 * M;
        const D: i128 = 24 * H;
        let cases: &[(i128, &str)] = &[
            (-3 * S, "<invalid>"),
            (-2 * S, "<invalid>"),
            (-S - S / 2, "0s"),
            (-S, "0s"),
            (-S / 2, "0s"),
            (0, "0s"),
            (S / 2, "0s"),
            (5 * S, "5s"),
            (59 * S, "59s"),
            (119 * S, "119s"),
            (2 * M, "2m"),
            (2 * M + S, "2m1s"),
            (3 * M + 12 * S, "3m12s"),
            (9 * M + 59 * S, "9m59s"),
            (10 * M, "10m"),
            (10 * M + 30 * S, "10m"),
            (179 * M, "179m"),
            (3 * H, "3h"),
            (3 * H + 30 * M, "3h30m"),
            (7 * H + 59 * M, "7h59m"),
            (8 * H, "8h"),
            (47 * H + 59 * M, "47h"),
            (48 * H, "2d"),
            (2 * D + 3 * H, "2d3h"),
            (7 * D + 23 * H, "7d23h"),
            (8 * D, "8d"),
            (729 * D, "729d"),
            (730 * D, "2y"),
            (3 * 365 * D + 14 * D, "3y14d"),
            (8 * 365 * D - D, "7y364d"),
            (8 * 365 * D, "8y"),
            (20 * 365 * D + 100 * D, "20y"),
        ];
        for (nanos, want) in cases {
            assert_eq!(human_duration(*nanos), *want, "{nanos}ns");
        }
    }

    #[test]
    fn ages_against_now() {
        let ctx = Ctx {
            now: "2026-01-10T12:00:00Z".parse().unwrap(),
        };
        let at = |ts: &str| ctx.age(&json!({"metadata": {"creationTimestamp": ts}}));
        assert_eq!(at("2026-01-10T11:59:55Z"), "5s");
        assert_eq!(at("2026-01-10T11:56:48Z"), "3m12s");
        assert_eq!(at("2026-01-08T09:00:00Z"), "2d3h");
        assert_eq!(at("2026-01-10T12:00:30Z"), "<invalid>");
        assert_eq!(at("2026-01-10T11:59:59.5Z"), "0s");
        assert_eq!(at("0001-01-01T00:00:00Z"), "<unknown>");
        assert_eq!(at("yesterday"), "<unknown>");
        assert_eq!(ctx.age(&json!({"metadata": {}})), "<unknown>");
    }

    #[test]
    fn selectors_and_labels_print_as_upstream() {
        assert_eq!(format_labels(&json!({"b": "2", "a": "1"})), "a=1,b=2");
        assert_eq!(format_labels(&json!({})), "<none>");
        assert_eq!(format_labels(&Value::Null), "<none>");
        let sel = json!({
            "matchLabels": {"tier": "web", "app": "x"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "zone", "operator": "NotIn", "values": ["a"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "gpu", "operator": "Exists"}
            ]
        });
        assert_eq!(
            format_label_selector(&sel),
            "app=x,!canary,env in (dev,prod),gpu,tier=web,zone notin (a)"
        );
        assert_eq!(format_label_selector(&json!({})), "<none>");
        assert_eq!(format_label_selector(&Value::Null), "<none>");
        assert_eq!(selector_string(&json!({})), Ok(String::new()));
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]});
        assert_eq!(format_label_selector(&bad), "<error>");
        let bad_op = json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        assert_eq!(format_label_selector(&bad_op), "<error>");
    }

    #[test]
    fn lists_with_more() {
        let items: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(with_more(&items, 3, 3, ","), "a,b,c");
        assert_eq!(with_more(&items, 3, 7, ","), "a,b,c + 4 more...");
        assert_eq!(with_more(&items[..1], 3, 1, ","), "a");
    }
}
