//! Tests of `FakeConfig` flag parsing and rendering.

use mcp_host_testkit::FakeConfig;

#[track_caller]
fn check_round_trip(config: FakeConfig, expect_args: &[&str]) {
    let args = config.to_args();
    assert_eq!(args, expect_args);
    assert_eq!(FakeConfig::from_args(args).unwrap(), config);
}

#[track_caller]
fn check_rejected(args: &[&str], expect_error: &str) {
    let error = FakeConfig::from_args(args.iter().map(|arg| arg.to_string())).unwrap_err();
    assert_eq!(error, expect_error);
}

#[test]
fn round_trip() {
    check_round_trip(FakeConfig::default(), &[]);
    check_round_trip(
        FakeConfig {
            name: "srv".to_owned(),
            page_size: 2,
            n_tools: 0,
            ..FakeConfig::default()
        },
        &["--name", "srv", "--tools", "0", "--page-size", "2"],
    );
    check_round_trip(
        FakeConfig {
            protocol_version: Some("2024-11-05".to_owned()),
            repeat_cursor: true,
            init_delay_ms: 50,
            crash_at_init: true,
            crash_on_call: true,
            crash_after: Some(0),
            ignore_eof: true,
            ignore_sigterm: true,
            spawn_grandchild: true,
            stderr_flood_bytes: 1000,
            garbage_lines: true,
            huge_line_bytes: 5,
            list_changed: true,
            list_changed_flood: 3,
            extra_tools: vec!["a__b".to_owned(), "c".to_owned()],
            notify_flood: 7,
            close_stdout_after_init: true,
            grandchild: true,
            ..FakeConfig::default()
        },
        &[
            "--protocol-version",
            "2024-11-05",
            "--repeat-cursor",
            "--init-delay-ms",
            "50",
            "--crash-at-init",
            "--crash-on-call",
            "--crash-after",
            "0",
            "--ignore-eof",
            "--ignore-sigterm",
            "--spawn-grandchild",
            "--stderr-flood-bytes",
            "1000",
            "--garbage-lines",
            "--huge-line-bytes",
            "5",
            "--list-changed",
            "--list-changed-flood",
            "3",
            "--tool",
            "a__b",
            "--tool",
            "c",
            "--notify-flood",
            "7",
            "--close-stdout-after-init",
            "--grandchild",
        ],
    );
}

#[test]
fn round_trip_of_the_hardening_flags() {
    check_round_trip(
        FakeConfig {
            init_gate: Some("/tmp/gate".to_owned()),
            read_slowly_after_init_ms: Some(20),
            request_flood: 3,
            request_flood_method: Some("sampling/createMessage".to_owned()),
            ..FakeConfig::default()
        },
        &[
            "--init-gate",
            "/tmp/gate",
            "--read-slowly-after-init",
            "20",
            "--request-flood",
            "3",
            "--request-flood-method",
            "sampling/createMessage",
        ],
    );
}

#[test]
fn marker_is_ignored() {
    let args = ["--marker", "m-1", "--tools", "1"].map(str::to_owned);
    let config = FakeConfig::from_args(args).unwrap();
    assert_eq!(
        config,
        FakeConfig {
            n_tools: 1,
            ..FakeConfig::default()
        }
    );
}

#[test]
fn rejects_bad_args() {
    check_rejected(&["--bogus"], "unknown argument: --bogus");
    check_rejected(&["positional"], "unknown argument: positional");
    check_rejected(&["--tools"], "missing value for --tools");
    check_rejected(&["--marker"], "missing value for --marker");
    check_rejected(&["--tools", "many"], "invalid number for --tools: many");
    check_rejected(
        &["--crash-after", "-1"],
        "invalid number for --crash-after: -1",
    );
}
