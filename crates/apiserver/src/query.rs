//! Query parameters of an API request.

use apimachinery::status::ApiError;

#[derive(Clone, Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
    /// The request's User-Agent: the field manager when the client names none.
    user_agent: String,
}

/// Upstream's limit on field manager names.
const MAX_FIELD_MANAGER: usize = 128;

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        Query {
            pairs,
            user_agent: String::new(),
        }
    }

    pub fn with_user_agent(mut self, user_agent: &str) -> Query {
        self.user_agent = user_agent.to_owned();
        self
    }

    /// The `fieldManager` parameter, or (as upstream) the User-Agent up to its first `/`.
    pub fn field_manager(&self) -> Result<String, ApiError> {
        match self.get("fieldManager") {
            Some(m) if m.chars().count() > MAX_FIELD_MANAGER => Err(ApiError::bad_request(format!(
                "fieldManager: Too long: may not be more than {MAX_FIELD_MANAGER} bytes"
            ))),
            Some(m) => Ok(m.to_owned()),
            None => Ok(self
                .user_agent
                .split('/')
                .next()
                .unwrap_or("")
                .chars()
                .take(MAX_FIELD_MANAGER)
                .collect()),
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean flag: present as `true`/`1`/empty means true.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1" | ""))
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {name}: {v:?}"))),
        }
    }

    /// `dryRun=All` (the only value upstream accepts).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dryRun value: {other:?}: supported values: \"All\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=true&limit=5&dryRun=All",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.int("limit").unwrap(), Some(5));
        assert!(q.dry_run().unwrap());
        assert!(Query::parse(Some("limit=x")).int("limit").is_err());
        assert!(Query::parse(Some("dryRun=Yes")).dry_run().is_err());
    }
}
