#![forbid(unsafe_code)]
//! bearer-redis (work in progress)
