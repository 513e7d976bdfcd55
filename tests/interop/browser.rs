//! A person at a browser, reduced to plain HTTP: follows redirects, keeps
//! cookies, and submits the provider's login, consent and device-confirm
//! forms (oidc-provider's `devInteractions` accept any login and password).
//!
//! Cookies are kept by hand (name, value, origin, path) rather than through
//! reqwest's `cookies` feature, which would change reqwest's feature set
//! for every crate in the workspace's test builds.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use url::Url;

/// More steps than any of the provider's flows take (about eight).
const MAX_STEPS: usize = 20;

struct Cookie {
    origin: String,
    path: String,
    name: String,
    value: String,
}

/// Where the browser ended: the last page's URL and body.
#[derive(Debug)]
pub struct Finished {
    pub url: Url,
    pub body: String,
}

pub struct Browser {
    http: reqwest::Client,
    jar: Vec<Cookie>,
    login: String,
    password: String,
    stop_at: Option<Url>,
}

impl Browser {
    /// A browser that signs in as `login`.
    pub fn new(login: &str) -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap(),
            jar: Vec::new(),
            login: login.to_owned(),
            password: "any-password".to_owned(),
            stop_at: None,
        }
    }

    /// Stops, without requesting it, at a URL under `prefix` (a redirect
    /// URI where nothing listens): [`Finished::url`] is then that URL, as a
    /// person would copy it from the address bar.
    pub fn stop_at(mut self, prefix: Url) -> Self {
        self.stop_at = Some(prefix);
        self
    }

    /// Opens `url` and submits every form on the way (login, consent,
    /// confirmation) until a page without a form: a redirect to a loopback
    /// callback, or the provider's "you may close this window".
    pub async fn complete(&mut self, url: Url) -> Result<Finished, String> {
        let mut next = (url, None::<Vec<(String, String)>>);
        for _ in 0..MAX_STEPS {
            let (url, form) = next;
            if let Some(prefix) = &self.stop_at {
                if url.as_str().starts_with(prefix.as_str()) {
                    return Ok(Finished {
                        url,
                        body: String::new(),
                    });
                }
            }
            let mut request = match &form {
                None => self.http.get(url.clone()),
                Some(fields) => self.http.post(url.clone()).form(fields),
            };
            if let Some(cookies) = self.cookies_for(&url) {
                request = request.header(COOKIE, cookies);
            }
            let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
            self.keep_cookies(&url, &response);
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| format!("{url}: {status} without Location"))?;
                let target = url
                    .join(location)
                    .map_err(|e| format!("bad Location: {e}"))?;
                next = (target, None);
                continue;
            }
            let body = response.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{url}: {status}: {}", excerpt(&body)));
            }
            match self.fill_form(&body) {
                Some((action, fields)) => {
                    let action = url
                        .join(&action)
                        .map_err(|e| format!("bad form action: {e}"))?;
                    next = (action, Some(fields));
                }
                None => return Ok(Finished { url, body }),
            }
        }
        Err(format!("no end after {MAX_STEPS} steps"))
    }

    fn cookies_for(&self, url: &Url) -> Option<String> {
        let origin = url.origin().ascii_serialization();
        let path = url.path();
        let matching: Vec<String> = self
            .jar
            .iter()
            .filter(|c| c.origin == origin && path_matches(path, &c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!matching.is_empty()).then(|| matching.join("; "))
    }

    fn keep_cookies(&mut self, url: &Url, response: &reqwest::Response) {
        let origin = url.origin().ascii_serialization();
        for header in response.headers().get_all(SET_COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            let mut parts = header.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let path = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case("path"))
                .map_or("/", |(_, v)| v)
                .to_owned();
            self.jar
                .retain(|c| !(c.origin == origin && c.path == path && c.name == name));
            // An empty value is how the provider deletes a cookie.
            if !value.is_empty() {
                self.jar.push(Cookie {
                    origin: origin.clone(),
                    path,
                    name: name.to_owned(),
                    value: value.to_owned(),
                });
            }
        }
    }

    /// The page's first form: its action and fields, hidden ones as they
    /// are, `login` and `password` filled in. Buttons are not submitted
    /// (the device confirmation page's second button is "abort").
    fn fill_form(&self, html: &str) -> Option<(String, Vec<(String, String)>)> {
        let start = html.find("<form")?;
        let end = html[start..]
            .find("</form>")
            .map_or(html.len(), |e| start + e);
        let form = &html[start..end];
        let action = attribute(tag_at(form, 0), "action")?;
        let mut fields = Vec::new();
        let mut rest = form;
        while let Some(i) = rest.find("<input") {
            let tag = tag_at(rest, i);
            if let Some(name) = attribute(tag, "name") {
                let value = match name.as_str() {
                    "login" => self.login.clone(),
                    "password" => self.password.clone(),
                    _ => attribute(tag, "value").unwrap_or_default(),
                };
                fields.push((name, value));
            }
            rest = &rest[i + tag.len()..];
        }
        Some((html_unescape(&action), fields))
    }
}

/// RFC 6265 §5.1.4 path-match.
fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    request_path == cookie_path
        || request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || request_path[cookie_path.len()..].starts_with('/'))
}

/// The tag starting at `i`, up to its `>`.
fn tag_at(html: &str, i: usize) -> &str {
    let end = html[i..].find('>').map_or(html.len(), |e| i + e + 1);
    &html[i..end]
}

/// A double-quoted attribute of one tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(html_unescape(&tag[start..start + len]))
}

fn html_unescape(text: &str) -> String {
    text.replace("&#x2F;", "/")
        .replace("&#x3D;", "=")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn excerpt(body: &str) -> String {
    body.chars().take(300).collect()
}
