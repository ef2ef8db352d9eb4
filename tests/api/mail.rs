//! The mailer through the binary: `send-test-email` into a real SMTP server that this
//! project did not write (aiosmtpd, storing into a Maildir), and into the file outbox.

use std::process::Output;

use crate::helpers::{SmtpSink, base64_parts, paperboy};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_test_email_reaches_a_real_smtp_server_as_one_multipart_message() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sink) = SmtpSink::start(dir.path()) else {
        return;
    };
    let out = paperboy(dir.path())
        .env(
            "PAPERBOY_SMTP_URL",
            format!("smtp://127.0.0.1:{}?tls=none", sink.port),
        )
        .env("PAPERBOY_FROM", "paperboy <digest@papers.example.org>")
        .args(["send-test-email", "ada@example.org"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("sent to ada@example.org via SMTP relay 127.0.0.1:"),
        "{stdout}"
    );
    let received = sink.wait_for(1);
    assert_eq!(received.len(), 1, "exactly one message");
    let message = &received[0];
    let id = stdout.split("Message-ID ").nth(1).unwrap().trim();
    assert!(message.contains(&format!("Message-ID: {id}")), "{message}");
    assert!(id.ends_with("@papers.example.org>"), "{id}");
    assert!(message.contains("Subject: paperboy test email"));
    assert!(message.contains("To: ada@example.org"));
    assert!(message.contains("From: paperboy <digest@papers.example.org>"));
    assert!(message.contains("Content-Type: multipart/alternative"));
    let parts = base64_parts(message);
    assert_eq!(parts.len(), 2, "a text and an HTML part: {message}");
    assert!(parts[0].contains("mail from this instance reaches ada@example.org"));
    assert!(parts[1].starts_with("<!DOCTYPE html>"));
}

#[test]
fn without_smtp_the_message_lands_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let out = paperboy(dir.path())
        .args(["send-test-email", "ada@example.org"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("was written to data/outbox/"), "{stdout}");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("data/outbox"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    let message = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(message.contains("Subject: paperboy test email"));
}

#[test]
fn bad_addresses_and_unreachable_relays_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = paperboy(dir.path())
        .args(["send-test-email", "ada@example.org\r\nBcc: eve@example.org"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad).1);
    let down = paperboy(dir.path())
        .env(
            "PAPERBOY_SMTP_URL",
            "smtp://user:hunter2@127.0.0.1:9?tls=none",
        )
        .args(["send-test-email", "ada@example.org"])
        .output()
        .unwrap();
    let (_, stderr) = text(&down);
    assert_eq!(down.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: sending to a***@example.org via SMTP relay 127.0.0.1:9"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
