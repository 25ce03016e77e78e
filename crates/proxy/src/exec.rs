//! Running the rule-loading programs (`nft`, `iptables-restore`, `conntrack`).

use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs `program args…` with `input` on stdin; an error carries its stderr.
pub async fn run_with_stdin(program: &str, args: &[&str], input: &str) -> anyhow::Result<()> {
    let out = output_with_stdin(program, args, input).await?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub async fn output_with_stdin(
    program: &str,
    args: &[&str],
    input: &str,
) -> anyhow::Result<std::process::Output> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("run {program}"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    // Written concurrently with reading the output: a large script must not deadlock on a
    // full pipe while the program reports errors.
    let input = input.as_bytes().to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        drop(stdin);
    });
    let out = child
        .wait_with_output()
        .await
        .with_context(|| format!("wait for {program}"))?;
    let _ = writer.await;
    Ok(out)
}
