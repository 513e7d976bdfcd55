#![forbid(unsafe_code)]
//! bearer-oauth2 (work in progress)
