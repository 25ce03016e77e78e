//! What a container runs: the image config merged with the pod's command, args, env,
//! workingDir and securityContext user, as kubelet + containerd's CRI plugin merge them. Pure
//! functions (the rootfs's /etc/passwd and /etc/group are passed in as text).

use crate::{ImageConfig, SecurityConfig};

/// containerd's default PATH, kept when neither the image nor the pod sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub args: Vec<String>,
    /// `KEY=value`, each key once.
    pub env: Vec<String>,
    pub cwd: String,
}

/// The process of a container. Command and args as containerd's `WithProcessArgs`: a pod
/// `command` replaces the image's Entrypoint *and* Cmd; `args` alone replace only Cmd.
/// Environment: PATH default, `HOSTNAME`, then the image's, then the pod's, a later value
/// replacing an earlier one in place.
pub fn merge(
    image: &ImageConfig,
    command: &[String],
    args: &[String],
    env: &[(String, String)],
    working_dir: Option<&str>,
    hostname: &str,
) -> Result<Process, String> {
    let mut argv: Vec<String> = command.to_vec();
    let mut rest: Vec<String> = args.to_vec();
    if argv.is_empty() {
        if rest.is_empty() {
            rest = image.cmd.clone().unwrap_or_default();
        }
        let entrypoint = image.entrypoint.clone().unwrap_or_default();
        // `ENTRYPOINT [""]` in a Dockerfile clears the entrypoint.
        if !(entrypoint.len() == 1 && entrypoint[0].is_empty()) {
            argv = entrypoint;
        }
    }
    argv.extend(rest);
    if argv.is_empty() {
        return Err("no command specified".into());
    }

    let mut merged: Vec<String> = vec![format!("PATH={DEFAULT_PATH}"), format!("HOSTNAME={hostname}")];
    let pod_env = env.iter().map(|(k, v)| format!("{k}={v}"));
    for entry in image.env.iter().flatten().cloned().chain(pod_env) {
        set_env(&mut merged, entry);
    }

    let cwd = working_dir
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .or_else(|| image.working_dir.clone().filter(|d| !d.is_empty()))
        .unwrap_or_else(|| "/".into());
    Ok(Process {
        args: argv,
        env: merged,
        cwd,
    })
}

fn set_env(env: &mut Vec<String>, entry: String) {
    let key = entry.split('=').next().unwrap_or_default().to_owned();
    match env.iter_mut().find(|e| e.split('=').next() == Some(key.as_str())) {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// The user a container runs as: `runAsUser` / `runAsGroup` over the image's `User`
/// (`uid`, `uid:gid`, `name`, `name:group`), names looked up in the rootfs's files; a uid
/// without a group takes its passwd entry's gid (0 if none). Supplementary groups: the
/// user's memberships in /etc/group, then `supplementalGroups`.
pub fn resolve_user(
    image_user: Option<&str>,
    security: &SecurityConfig,
    passwd: &str,
    group: &str,
) -> Result<User, String> {
    let passwd: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 3)
        .collect();
    let (image_uid_part, image_gid_part) = match image_user.unwrap_or_default().split_once(':') {
        Some((u, g)) => (u.to_owned(), Some(g.to_owned())),
        None => (image_user.unwrap_or_default().to_owned(), None),
    };

    let uid = match security.run_as_user {
        Some(uid) => u32::try_from(uid).map_err(|_| format!("invalid runAsUser {uid}"))?,
        None if image_uid_part.is_empty() => 0,
        None => match image_uid_part.parse::<u32>() {
            Ok(uid) => uid,
            Err(_) => passwd
                .iter()
                .find(|f| f[0] == image_uid_part)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!("unable to find user {image_uid_part}: no matching entries in passwd file")
                })?,
        },
    };
    let entry = passwd.iter().find(|f| f[2].parse::<u32>().ok() == Some(uid));
    let gid = match (security.run_as_group, &image_gid_part) {
        (Some(gid), _) => u32::try_from(gid).map_err(|_| format!("invalid runAsGroup {gid}"))?,
        // The image's group applies only to the image's user.
        (None, Some(g)) if security.run_as_user.is_none() => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))?,
        },
        _ => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };

    let mut additional_gids = Vec::new();
    if let Some(name) = entry.map(|f| f[0]) {
        for g in &groups {
            let members = g.get(3).copied().unwrap_or_default();
            if members.split(',').any(|m| m == name)
                && let Ok(id) = g[2].parse::<u32>()
                && !additional_gids.contains(&id)
            {
                additional_gids.push(id);
            }
        }
    }
    for &g in &security.supplemental_groups {
        let id = u32::try_from(g).map_err(|_| format!("invalid supplemental group {g}"))?;
        if !additional_gids.contains(&id) {
            additional_gids.push(id);
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.map(strings),
            cmd: cmd.map(strings),
            env: Some(strings(&["PATH=/bin", "A=image", "B=image"])),
            working_dir: Some("/srv".into()),
            user: None,
        }
    }

    #[test]
    fn args_as_containerd_merges_them() {
        let img = image(Some(&["/entry", "-x"]), Some(&["cmd-arg"]));
        let run = |command: &[&str], args: &[&str]| {
            merge(&img, &strings(command), &strings(args), &[], None, "h").map(|p| p.args)
        };
        assert_eq!(run(&[], &[]).unwrap(), strings(&["/entry", "-x", "cmd-arg"]));
        assert_eq!(run(&[], &["a1"]).unwrap(), strings(&["/entry", "-x", "a1"]));
        assert_eq!(
            run(&["/bin/sh"], &[]).unwrap(),
            strings(&["/bin/sh"]),
            "command drops the image's Cmd too"
        );
        assert_eq!(
            run(&["/bin/sh"], &["-c", "x"]).unwrap(),
            strings(&["/bin/sh", "-c", "x"])
        );
        let cleared = image(Some(&[""]), Some(&["sh"]));
        assert_eq!(
            merge(&cleared, &[], &[], &[], None, "h").unwrap().args,
            strings(&["sh"])
        );
        let empty = image(None, None);
        assert_eq!(
            merge(&empty, &[], &[], &[], None, "h").unwrap_err(),
            "no command specified"
        );
    }

    #[test]
    fn env_pod_over_image_over_defaults_in_place() {
        let img = image(None, Some(&["sh"]));
        let env = vec![
            ("B".to_string(), "pod".to_string()),
            ("C".to_string(), "x=y".to_string()),
        ];
        let p = merge(&img, &[], &[], &env, None, "web-0").unwrap();
        assert_eq!(
            p.env,
            strings(&["PATH=/bin", "HOSTNAME=web-0", "A=image", "B=pod", "C=x=y"])
        );
        let bare = ImageConfig {
            cmd: Some(strings(&["sh"])),
            ..Default::default()
        };
        let p = merge(&bare, &[], &[], &[], None, "h").unwrap();
        assert_eq!(p.env[0], format!("PATH={DEFAULT_PATH}"));
    }

    #[test]
    fn working_dir_pod_then_image_then_root() {
        let img = image(None, Some(&["sh"]));
        assert_eq!(
            merge(&img, &[], &[], &[], Some("/work"), "h").unwrap().cwd,
            "/work"
        );
        assert_eq!(merge(&img, &[], &[], &[], None, "h").unwrap().cwd, "/srv");
        let bare = ImageConfig {
            cmd: Some(strings(&["sh"])),
            ..Default::default()
        };
        assert_eq!(merge(&bare, &[], &[], &[], None, "h").unwrap().cwd, "/");
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\napp:x:1001:\nwheel:x:10:app,other\naudio:x:29:app\nnogroup:x:65534:\n";

    #[test]
    fn users_from_image_and_security_context() {
        let none = SecurityConfig::default();
        let user = |image: Option<&str>, sec: &SecurityConfig| resolve_user(image, sec, PASSWD, GROUP);
        assert_eq!(
            user(None, &none).unwrap(),
            User {
                uid: 0,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            user(Some("app"), &none).unwrap(),
            User {
                uid: 1000,
                gid: 1001,
                additional_gids: vec![10, 29]
            }
        );
        assert_eq!(user(Some("1000:nogroup"), &none).unwrap().gid, 65534);
        assert_eq!(
            user(Some("4242"), &none).unwrap(),
            User {
                uid: 4242,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert!(
            user(Some("ghost"), &none)
                .unwrap_err()
                .contains("unable to find user ghost")
        );

        let sec = SecurityConfig {
            run_as_user: Some(65534),
            supplemental_groups: vec![5000, 65534],
            ..Default::default()
        };
        assert_eq!(
            user(Some("app:app"), &sec).unwrap(),
            User {
                uid: 65534,
                gid: 65534,
                additional_gids: vec![5000, 65534]
            }
        );
        let sec = SecurityConfig {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            ..Default::default()
        };
        assert_eq!(
            user(None, &sec).unwrap(),
            User {
                uid: 1000,
                gid: 3000,
                additional_gids: vec![10, 29]
            }
        );
        let bad = SecurityConfig {
            run_as_user: Some(-1),
            ..Default::default()
        };
        assert!(user(None, &bad).is_err());
    }
}
