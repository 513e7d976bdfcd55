#![forbid(unsafe_code)]
//! bearer-testkit (work in progress)
