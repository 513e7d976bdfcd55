//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same checks the `cargo fuzz` targets run, on a stable toolchain: no
//! panic, and every documented invariant of the three parsers holds.
//! Findings of fuzzing runs stay here as named regression tests.

#[path = "../fuzz/src/cases.rs"]
mod cases;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable corpus entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let data = std::fs::read(&path).expect("readable corpus file");
            (path, data)
        })
        .collect();
    files.sort();
    files
}

/// Feeds every file to `check`, naming the file that fails.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let files = corpus(target);
    assert!(files.len() >= 10, "the {target} corpus lost its seeds");
    for (path, data) in &files {
        if std::panic::catch_unwind(|| check(data)).is_err() {
            panic!(
                "{target}: {} breaks an invariant (see the panic above)",
                path.display()
            );
        }
    }
    files.len()
}

#[test]
fn token_response_corpus() {
    replay("token_response", cases::token_response);
}

#[test]
fn www_authenticate_corpus() {
    replay("www_authenticate", cases::www_authenticate);
}

#[test]
fn jwt_exp_corpus() {
    replay("jwt_exp", cases::jwt_exp);
}

/// The seeds mean what their names say: `ok_*` parse to a token, `err_*`
/// to an error, so a parser change that flips one is noticed.
#[test]
fn token_response_seed_names_match_outcomes() {
    use reqwest_bearer::oauth2::parse_token_response;
    for (path, data) in corpus("token_response") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (status, headers, body) = cases::decode_token_response(&data);
        let parsed = parse_token_response(status, &headers, body);
        if name.starts_with("ok_") {
            assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
        } else if name.starts_with("err_") {
            assert!(parsed.is_err(), "{name} parsed");
        }
    }
}

#[test]
fn corpus_input_format_decodes_status_headers_and_body() {
    let (status, headers, body) = cases::decode_token_response(
        b"503\nRetry-After: 7\nbad header line\n\n{\"error\":\"x\"}\n\nmore",
    );
    assert_eq!(status, 503);
    assert_eq!(headers.get("retry-after").unwrap(), "7");
    assert_eq!(headers.len(), 1);
    assert_eq!(body, b"{\"error\":\"x\"}\n\nmore");
    let (status, headers, body) = cases::decode_token_response(b"junk");
    assert_eq!((status, headers.len(), body), (200, 0, &b""[..]));
}
