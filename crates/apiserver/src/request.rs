//! What a request asks for, from its method and path alone (upstream's RequestInfo): the API
//! group-version, resource, namespace, name, subresource and verb. Handlers dispatch on this.

use apimachinery::status::ApiError;

/// A parsed API request target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/api` (the core group's versions).
    CoreVersions,
    /// `/apis` (every group).
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>` (the resources of one group-version).
    Resources { group: String, version: String },
    /// A resource path.
    Resource(ResourceRequest),
    /// A non-resource path (`/version`, `/healthz`, `/openapi/...`).
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub verb: Verb,
}

/// The Kubernetes verb of a resource request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// Parses `path` (without query) for `method`; `watch` is the `?watch=` query flag.
pub fn parse(method: &http::Method, path: &str, watch: bool) -> Result<Target, ApiError> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Ok(Target::CoreVersions),
        ["apis"] => return Ok(Target::Groups),
        ["apis", group] => return Ok(Target::Group((*group).to_owned())),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Ok(Target::Other(path.to_owned())),
    };
    if rest.is_empty() {
        return Ok(Target::Resources {
            group: group.to_owned(),
            version: version.to_owned(),
        });
    }
    // Upstream also accepts the deprecated /watch/ prefix.
    let (rest, watch) = match rest {
        ["watch", rest @ ..] => (rest, true),
        _ => (rest, watch),
    };
    // namespaces/<ns>/<resource>... addresses a namespaced resource, except that
    // namespaces/<name>[/<sub>] is the namespace object itself.
    let (namespace, rest): (Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, resource, tail @ ..]
            if !matches!(*resource, "status" | "finalize") || !tail.is_empty() =>
        {
            (Some(ns), &rest[2..])
        }
        _ => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        // Subresources with further segments (pods/proxy/<path>) address the subresource.
        [resource, name, sub, ..] => (*resource, Some(*name), Some(*sub)),
        _ => return Err(ApiError::path_not_found()),
    };
    use http::Method;
    let verb = match (method, name.is_some()) {
        (&Method::GET | &Method::HEAD, _) if watch => Verb::Watch,
        (&Method::GET | &Method::HEAD, true) => Verb::Get,
        (&Method::GET | &Method::HEAD, false) => Verb::List,
        (&Method::POST, _) => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        _ => return Err(ApiError::method_not_allowed()),
    };
    Ok(Target::Resource(ResourceRequest {
        group: group.to_owned(),
        version: version.to_owned(),
        resource: resource.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
        verb,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn res(method: Method, path: &str) -> ResourceRequest {
        match parse(&method, path, false).unwrap() {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resource_paths() {
        let r = res(Method::GET, "/api/v1/namespaces/default/pods/web");
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.resource.as_str()),
            ("", "v1", "pods")
        );
        assert_eq!(
            (r.namespace.as_deref(), r.name.as_deref(), r.verb),
            (Some("default"), Some("web"), Verb::Get)
        );
        let r = res(Method::GET, "/apis/apps/v1/deployments");
        assert_eq!(
            (r.group.as_str(), r.namespace, r.verb),
            ("apps", None, Verb::List)
        );
        let r = res(Method::PUT, "/apis/apps/v1/namespaces/ns/deployments/d/scale");
        assert_eq!((r.subresource.as_deref(), r.verb), (Some("scale"), Verb::Update));
        let r = res(Method::DELETE, "/api/v1/namespaces/ns/configmaps");
        assert_eq!(r.verb, Verb::DeleteCollection);
        let r = res(Method::GET, "/api/v1/watch/namespaces/ns/pods");
        assert_eq!(r.verb, Verb::Watch);
    }

    #[test]
    fn namespaces_are_objects_too() {
        let r = res(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let r = res(Method::PUT, "/api/v1/namespaces/x/finalize");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.subresource.as_deref()),
            ("namespaces", Some("x"), Some("finalize"))
        );
        let r = res(Method::GET, "/api/v1/namespaces");
        assert_eq!(r.verb, Verb::List);
    }

    #[test]
    fn discovery_and_other_paths() {
        assert_eq!(parse(&Method::GET, "/api", false).unwrap(), Target::CoreVersions);
        assert_eq!(parse(&Method::GET, "/apis/", false).unwrap(), Target::Groups);
        assert_eq!(
            parse(&Method::GET, "/apis/apps", false).unwrap(),
            Target::Group("apps".into())
        );
        assert_eq!(
            parse(&Method::GET, "/apis/apps/v1", false).unwrap(),
            Target::Resources {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(
            parse(&Method::GET, "/version", false).unwrap(),
            Target::Other("/version".into())
        );
        assert!(parse(&Method::PUT, "/api/v1/pods", false).is_err());
    }
}
