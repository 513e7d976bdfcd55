//! Drives `examples/cli_sign_in.rs` as a person at a terminal would: reads
//! the authorization URL it prints, signs in (the caller's `browse`), and
//! types back what `browse` says to paste. Shared by the test-kit and the
//! oidc-provider tests.

#[path = "../../examples/cli_sign_in.rs"]
#[allow(dead_code)]
mod cli_sign_in;

use std::sync::Arc;

use reqwest_bearer::TokenKey;
use reqwest_bearer::oauth2::UserSignIn;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use url::Url;

/// The CLI's sign-in over in-memory stdin and stdout: `browse` gets the
/// printed authorization URL and returns the line to paste.
pub async fn sign_in_at_the_terminal(
    sign_in: Arc<UserSignIn>,
    browse: impl AsyncFnOnce(Url) -> String,
) -> TokenKey {
    let (stdin, mut typed) = tokio::io::duplex(4096);
    let (printed, stdout) = tokio::io::duplex(4096);
    let cli = tokio::spawn(async move {
        cli_sign_in::sign_in_by_pasting(&sign_in, BufReader::new(stdin), stdout)
            .await
            .map_err(|e| e.to_string())
    });
    let mut lines = BufReader::new(printed).lines();
    let authorize: Url = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the CLI prints a URL");
        if let Ok(url) = line.trim().parse() {
            break url;
        }
    };
    let pasted = browse(authorize).await;
    typed
        .write_all(format!("{pasted}\n").as_bytes())
        .await
        .unwrap();
    cli.await.unwrap().expect("signed in")
}
