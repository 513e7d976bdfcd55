//! `cargo run --example cli_sign_in`: sign in the way `requests-oauthlib`
//! does it. The program prints the authorization URL; you open it, sign
//! in, and paste back the URL your browser was sent to (or just its
//! `code`). Nothing listens on the redirect URI: the browser may show an
//! error page there, and its address bar holds the answer.
//!
//! ```python
//! oauth = OAuth2Session(client_id, redirect_uri=redirect_uri, scope=scope)
//! url, state = oauth.authorization_url(authorize_url)
//! print("Open", url)
//! token = oauth.fetch_token(token_url, authorization_response=input("Paste: "))
//! ```
//!
//! Run as is, the in-process test kit plays the provider (it approves at
//! once) and the API.

use std::error::Error;
use std::sync::Arc;

use reqwest_bearer::oauth2::UserSignIn;
use reqwest_bearer::reqwest::Url;
use reqwest_bearer::reqwest_middleware::ClientBuilder;
use reqwest_bearer::{BearerAuth, RequestBuilderExt, TokenCache, TokenKey, reqwest};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// The one user of a CLI.
pub const ME: &str = "me";

/// Prints the authorization URL to `output`, reads the pasted callback URL
/// (or code) from `input`, and completes the sign-in: the returned key
/// gets the signed-in user's token from a cache over `sign_in`.
pub async fn sign_in_by_pasting(
    sign_in: &UserSignIn,
    mut input: impl AsyncBufRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
) -> Result<TokenKey, Box<dyn Error>> {
    let (url, pending) = sign_in.start()?.into_parts();
    let prompt = format!(
        "Open this URL in a browser and sign in:\n\n    {url}\n\n\
         Then paste the URL your browser was sent to (or just its code):\n"
    );
    output.write_all(prompt.as_bytes()).await?;
    output.flush().await?;
    let mut line = String::new();
    input.read_line(&mut line).await?;
    let pasted = line.trim();
    if pasted.is_empty() {
        return Err("nothing was pasted".into());
    }
    let key = match Url::parse(pasted) {
        Ok(callback_url) => sign_in.finish(ME, &pending, &callback_url).await?,
        Err(_) => sign_in.finish_with_code(ME, &pending, pasted).await?,
    };
    Ok(key)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let provider = bearer_testkit::TestServer::start().await;
    let sign_in = Arc::new(
        UserSignIn::new(
            provider.authorize_url(),
            provider.token_url(),
            provider.client_id(),
            // Registered with the provider; nothing needs to listen there.
            "http://localhost:9/callback".parse()?,
        )
        .client_secret(provider.client_secret())
        .scope("read"),
    );
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let key = sign_in_by_pasting(&sign_in, stdin, tokio::io::stdout()).await?;

    let auth = BearerAuth::new(
        TokenCache::builder(sign_in.clone()).build(),
        provider.base_url(),
    )?;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    let echo = client
        .get(provider.api_url("/api/echo"))
        .token_key(key)
        .send()
        .await?
        .text()
        .await?;
    println!("\nSigned in. The API saw: {echo}");
    Ok(())
}
