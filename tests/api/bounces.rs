//! Bounces and complaints: each delivery's VERP return path, read back from a real SMTP
//! server (aiosmtpd) that records the envelope sender.

use crate::helpers::{
    SmtpSink, active_subscriber, arxiv_paper, databases, header_value, run_due_digests,
    store_full_papers, test_links as links, tomorrow,
};
use paperboy::config::{DeliverySettings, Secret, Settings};
use paperboy::delivery::{Mailer, Worker};
use paperboy::domain::Verp;

fn smtp_mailer(port: u16, bounce_domain: Option<&str>) -> Mailer {
    let settings = Settings {
        smtp_url: Some(Secret::new(format!("smtp://127.0.0.1:{port}?tls=none"))),
        from: "paperboy <digest@papers.example.org>".into(),
        bounce_domain: bounce_domain.map(str::to_string),
        ..Settings::default()
    };
    Mailer::from_settings(&settings).unwrap()
}

fn fast_delivery() -> DeliverySettings {
    DeliverySettings {
        retry_base_secs: 1,
        retry_max_secs: 2,
        messages_per_second: 1000,
        ..DeliverySettings::default()
    }
}

#[tokio::test]
async fn each_delivery_returns_to_its_own_signed_verp_address_and_the_from_header_stays() {
    for (domain, expected) in [
        (None, "papers.example.org"),
        (Some("bounce.example.net"), "bounce.example.net"),
    ] {
        for db in databases().await {
            let dir = tempfile::tempdir().unwrap();
            let Some(sink) = SmtpSink::start(dir.path()) else {
                return;
            };
            let store = db.store().await;
            let ada =
                active_subscriber(&store, "ada@example.org", "diffusion", "daily", 8, "UTC").await;
            active_subscriber(&store, "bob@example.org", "diffusion", "daily", 8, "UTC").await;
            store_full_papers(
                &store,
                vec![arxiv_paper("2403.00001", "Diffusion models", "x", None)],
            )
            .await;
            let mailer = smtp_mailer(sink.port, domain);
            run_due_digests(&store, &mailer, tomorrow()).await;
            let report = Worker::new(store.clone(), mailer, links(), fast_delivery())
                .drain()
                .await
                .unwrap();
            assert_eq!(report.sent, 2, "{}", db.backend);
            let received = sink.wait_for(2);
            assert_eq!(received.len(), 2);
            let verp = Verp::new(links().keys().clone(), expected);
            let mut named = Vec::new();
            for m in &received {
                assert_eq!(
                    header_value(m, "From"),
                    Some("paperboy <digest@papers.example.org>")
                );
                let sender = header_value(m, "X-MailFrom").expect("the envelope sender");
                assert!(sender.starts_with("bounces+"), "{sender}");
                assert!(sender.ends_with(&format!("@{expected}")), "{sender}");
                let id = verp.delivery_of(sender).expect("a VERP address of ours");
                let to = header_value(m, "To").unwrap().to_string();
                named.push((id, to));
            }
            named.sort();
            assert_ne!(named[0].0, named[1].0, "one address per delivery");
            let digest = store.digests_of(ada.id).await.unwrap().remove(0);
            let delivery = store.deliveries_of(digest.id).await.unwrap().remove(0);
            assert!(
                named.contains(&(delivery.0, "ada@example.org".to_string())),
                "{named:?} names Ada's delivery {}",
                delivery.0
            );
            db.cleanup().await;
        }
    }
}
