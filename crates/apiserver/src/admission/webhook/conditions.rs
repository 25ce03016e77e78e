//! `matchConditions`: CEL expressions over `object`, `oldObject` and `request`, all of which
//! must be true for the webhook to be called (evaluated in the CRD rules' CEL environment).

use serde_json::Value;

use crate::crd::cel_library;
use crate::crd::validation_rules::to_cel;

/// Whether every condition holds; Err names the condition that could not be evaluated.
pub fn all_true(hook: &Value, request: &Value) -> Result<bool, String> {
    for condition in hook["matchConditions"].as_array().into_iter().flatten() {
        let name = condition["name"].as_str().unwrap_or_default();
        let expression = condition["expression"].as_str().unwrap_or_default();
        let failed = |e: &dyn std::fmt::Display| format!("failed to evaluate match condition {name:?}: {e}");
        let program = cel_library::env().compile(expression).map_err(|e| failed(&e))?;
        let mut ctx = cel_library::context();
        for (variable, value) in [
            ("object", &request["object"]),
            ("oldObject", &request["oldObject"]),
            ("request", request),
        ] {
            ctx.add_variable_from_value(variable, to_cel(value, None, true));
        }
        match program.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Ok(false),
            Ok(other) => return Err(failed(&format!("expected a bool, got {other:?}"))),
            Err(e) => return Err(failed(&e)),
        }
    }
    Ok(true)
}
