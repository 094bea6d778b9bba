//! How an API server error reads in a log line or a message for people.
//! `kube::Error`'s own Display appends the whole `Status` struct in Debug
//! form; users need the HTTP status, the reason and the API's message.

/// `HTTP 404 NotFound: the server could not find the requested resource`,
/// or the error's own text when it is not an API answer (connection, TLS,
/// timeout).
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!(" {}", status.reason)
            };
            let message = if status.message.is_empty() {
                "(no message)"
            } else {
                status.message.as_str()
            };
            format!("HTTP {}{reason}: {message}", status.code)
        }
        // Not an answer (connection, TLS, timeout): kube's own text says
        // only "client error (Connect)"; the causes say what failed.
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let part = cause.to_string();
                if !text.contains(&part) {
                    text.push_str(": ");
                    text.push_str(&part);
                }
                source = cause.source();
            }
            text
        }
    }
}

/// A watch error, with the API error inside it described as above.
pub fn describe_watch(e: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(e) => format!("initial list failed: {}", describe(e)),
        W::WatchStartFailed(e) => format!("watch could not start: {}", describe(e)),
        W::WatchFailed(e) => format!("watch stream failed: {}", describe(e)),
        W::WatchError(status) => describe(&kube::Error::Api(status.clone())),
        W::NoResourceVersion => e.to_string(),
    }
}

/// The HTTP status of an API answer; `None` when the server was not reached.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn api_errors_read_as_status_reason_and_message_without_a_debug_dump() {
        let status = Status::failure(
            "the server could not find the requested resource",
            "NotFound",
        )
        .with_code(404);
        let e = kube::Error::Api(Box::new(status));
        assert_eq!(
            describe(&e),
            "HTTP 404 NotFound: the server could not find the requested resource"
        );
        assert_eq!(status_code(&e), Some(404));
        assert!(!describe(&e).contains("Status {"), "{}", describe(&e));
    }
}
