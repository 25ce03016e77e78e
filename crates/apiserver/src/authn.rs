//! Authentication: x509 client certificates (verified by TLS, see `pki`) and static bearer
//! tokens from a token file in upstream's `--token-auth-file` format, one per line:
//! `token,user,uid,"group1,group2"` (groups optional; `#` starts a comment line).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};

use crate::pki::UserInfo;

/// Static bearer tokens and whom they stand for.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    users: HashMap<String, UserInfo>,
}

impl Tokens {
    pub fn load(path: &Path) -> anyhow::Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read token file {}", path.display()))?;
        Tokens::parse(&text).with_context(|| format!("token file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Tokens> {
        let mut users = HashMap::new();
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line).with_context(|| format!("line {number}"))?;
            if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
                bail!("line {number}: expected token,user,uid[,\"groups\"]");
            }
            let groups = match fields.get(3) {
                Some(g) if !g.is_empty() => g
                    .split(',')
                    .map(|g| g.trim().to_owned())
                    .filter(|g| !g.is_empty())
                    .collect(),
                _ => Vec::new(),
            };
            if users
                .insert(
                    fields[0].clone(),
                    UserInfo {
                        name: fields[1].clone(),
                        groups,
                    },
                )
                .is_some()
            {
                bail!("line {number}: duplicate token");
            }
        }
        Ok(Tokens { users })
    }

    /// The user a request's `Authorization: Bearer <token>` header names, if the token is known.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<&UserInfo> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.users.get(token)
    }
}

/// Splits one CSV line (fields may be double-quoted, `""` is a quote inside quotes).
fn split_csv(line: &str) -> anyhow::Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if field.is_empty() => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        bail!("unterminated quote");
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_token_files() {
        let tokens = Tokens::parse("# comment\nsecret1,alice,1\nsecret2,bob,2,\"dev,ops\"\n").unwrap();
        let alice = tokens.authenticate(Some("Bearer secret1")).unwrap();
        assert_eq!((alice.name.as_str(), alice.groups.len()), ("alice", 0));
        let bob = tokens.authenticate(Some("Bearer secret2")).unwrap();
        assert_eq!(bob.groups, ["dev", "ops"]);
        assert!(tokens.authenticate(Some("Bearer nope")).is_none());
        assert!(tokens.authenticate(Some("Basic c2VjcmV0MQ==")).is_none());
        assert!(tokens.authenticate(None).is_none());
    }

    #[test]
    fn refuses_malformed_files() {
        assert!(Tokens::parse("justatoken\n").is_err());
        assert!(Tokens::parse("a,b,1\na,c,2\n").is_err());
        assert!(Tokens::parse("a,b,1,\"unterminated\n").is_err());
    }
}
