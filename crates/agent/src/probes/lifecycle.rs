//! Lifecycle hooks (postStart, preStop) through the probe handlers, as upstream's
//! `lifecycle.handlerRunner`: exec (no timeout of its own), httpGet (any HTTP answer succeeds;
//! an HTTPS hook answered in plain HTTP is retried over HTTP), sleep. The caller bounds a hook
//! in time (preStop: the grace period) by dropping the future.
//!
//! On failure the pod worker records the event — without the message, which may hold secrets
//! (upstream: `FailedPostStartHook` "PostStartHook failed", `FailedPreStopHook` "PreStopHook
//! failed") — and, for postStart, kills the container and reports the returned message as the
//! container's `PostStartHookError`.

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use clientkit::events::EventType;

use super::exec::End;
use super::http::{HTTP_TO_HTTPS, Request};
use super::{EventSink, Purpose, Target, reasons};

/// The message of a failed postStart hook's event.
pub const POST_START_FAILED: &str = "PostStartHook failed";
/// The message of a failed preStop hook's event.
pub const PRE_STOP_FAILED: &str = "PreStopHook failed";
/// The container's waiting reason after a failed postStart hook.
pub const POST_START_HOOK_ERROR: &str = "PostStartHookError";

/// A pod as kubelet's `format.Pod` prints it in hook messages: `name_namespace(uid)`.
pub fn pod_description(name: &str, namespace: &str, uid: &str) -> String {
    format!("{name}_{namespace}({uid})")
}

/// Runs a hook to its end. `Err` carries upstream's message, e.g. `Exec lifecycle hook ([sh
/// -c exit 3]) for Container "app" in Pod "web_default(…)" failed - error: command 'sh -c exit
/// 3' exited with 3: , message: ""`.
pub async fn run_hook(
    handler: &LifecycleHandler,
    container: &Container,
    target: &Target,
    pod: &str,
    events: &EventSink,
) -> Result<(), String> {
    let name = super::go_quote(&container.name);
    let pod = super::go_quote(pod);
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let shown = format!("[{}]", command.join(" "));
        let joined = command.join(" ");
        let run = super::exec::run(target, command, None).await;
        let error = match &run.end {
            End::Exited(0) => return Ok(()),
            End::Exited(code) => format!(
                "command '{joined}' exited with {code}: {}",
                String::from_utf8_lossy(&run.stderr)
            ),
            End::TimedOut => format!("command {} timed out", super::go_quote(&joined)),
            End::Failed(err) => err.clone(),
        };
        return Err(format!(
            "Exec lifecycle hook ({shown}) for Container {name} in Pod {pod} failed - error: {error}, message: {}",
            super::go_quote(&run.output())
        ));
    }
    if let Some(action) = &handler.http_get {
        let path = action.path.clone().unwrap_or_default();
        return http_hook(action, container, target, events)
            .await
            .map_err(|error| {
                format!(
                    "HTTP lifecycle hook ({path}) for Container {name} in Pod {pod} failed - error: {error}"
                )
            });
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(std::time::Duration::from_secs(sleep.seconds.max(0) as u64)).await;
        return Ok(());
    }
    Err(format!(
        "Cannot run handler: invalid handler: {}",
        serde_json::to_string(handler).unwrap_or_default()
    ))
}

async fn http_hook(
    action: &k8s_openapi::api::core::v1::HTTPGetAction,
    container: &Container,
    target: &Target,
    events: &EventSink,
) -> Result<(), String> {
    let request = Request::build(action, Purpose::Lifecycle, container, target)?;
    match super::http::get(&request, Purpose::Lifecycle, target, None).await {
        Ok(_) => Ok(()),
        Err(err) if err.contains(HTTP_TO_HTTPS) && request.url.scheme == "https" => {
            let mut plain = request.clone();
            plain.url.scheme = "http".into();
            plain.headers.retain(|(n, _)| n != "Authorization");
            match super::http::get(&plain, Purpose::Lifecycle, target, None).await {
                Ok(_) => {
                    events(
                        EventType::Warning,
                        reasons::LIFECYCLE_HTTP_FALLBACK,
                        format!(
                            "request to HTTPS lifecycle hook {} got HTTP response, retry with HTTP succeeded",
                            plain.url.host_port()
                        ),
                    );
                    Ok(())
                }
                Err(_) => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}
