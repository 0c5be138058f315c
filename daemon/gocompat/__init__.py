"""Go-compatibility helpers: regexp syntax, durations, timestamps and protobuf Timestamp, with Go's meaning."""
