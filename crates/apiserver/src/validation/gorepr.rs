//! Values in error messages as upstream prints them: Go's `%#v` of the internal types
//! (`map[string]string{"app":"web"}`, `v1.LabelSelector{…}`, `[]string{"10.0.0.1"}`), since
//! clients and tests compare whole messages.

use serde_json::Value;

/// `%q` of a Go string.
pub fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// `map[string]string{"a":"1", "b":"2"}`, or `map[string]string(nil)` for no map.
pub fn string_map(value: &Value) -> String {
    match value.as_object() {
        None => "map[string]string(nil)".to_owned(),
        Some(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), quote(v.as_str().unwrap_or_default())))
                .collect();
            format!("map[string]string{{{}}}", body.join(", "))
        }
    }
}

/// `[]string{"a", "b"}`, or `[]string(nil)`.
pub fn string_slice(value: &Value) -> String {
    match value.as_array() {
        None => "[]string(nil)".to_owned(),
        Some(items) => {
            let body: Vec<String> = items
                .iter()
                .map(|v| quote(v.as_str().unwrap_or_default()))
                .collect();
            format!("[]string{{{}}}", body.join(", "))
        }
    }
}

/// A metav1.LabelSelector: `v1.LabelSelector{MatchLabels:…, MatchExpressions:…}`; `null`
/// for none.
pub fn label_selector(value: &Value) -> String {
    if value.is_null() {
        return "null".to_owned();
    }
    let expressions = match value["matchExpressions"].as_array() {
        None => "[]v1.LabelSelectorRequirement(nil)".to_owned(),
        Some(items) => {
            let body: Vec<String> = items
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        quote(e["key"].as_str().unwrap_or_default()),
                        quote(e["operator"].as_str().unwrap_or_default()),
                        string_slice(&e["values"])
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", body.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        string_map(&value["matchLabels"]),
        expressions
    )
}

/// An int-or-string: `intstr.IntOrString{Type:0, IntVal:80, StrVal:""}`.
pub fn int_or_string(value: &Value) -> String {
    match value {
        Value::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", quote(s)),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_syntax() {
        assert_eq!(
            string_map(&json!({"b": "2", "a": "1"})),
            r#"map[string]string{"a":"1", "b":"2"}"#
        );
        assert_eq!(string_map(&Value::Null), "map[string]string(nil)");
        assert_eq!(string_slice(&json!(["10.0.0.1"])), r#"[]string{"10.0.0.1"}"#);
        assert_eq!(
            label_selector(&json!({"matchLabels": {"app": "web"}})),
            r#"v1.LabelSelector{MatchLabels:map[string]string{"app":"web"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"#
        );
    }
}
