//! `--public-base-url` / `VEIL_PUBLIC_BASE_URL`: sanitized paging links
//! point at Veil instead of graph.microsoft.com, so a client follows them
//! as they are. Over TCP, against the release binary and a test Graph; the
//! streaming and the DOM path must answer the same bytes. Without the
//! setting Graph's links stay (covered in `proxy_e2e.rs`; checked here too).

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// A `veil serve` started with extra flags, killed on drop.
struct Served {
    child: Child,
    base: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start(config: &VeilConfig, extra: &[&str], port: u16) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("stderr");
        let child = config
            .command(port)
            .args(extra)
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
            .spawn()
            .expect("spawn veil");
        let mut served = Served {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(30);
        let probe = client();
        loop {
            if let Some(status) = served.child.try_wait().expect("try_wait") {
                panic!("veil exited ({status}):\n{}", served.stderr());
            }
            let ready = probe
                .get(format!("{}/healthz", served.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if ready.is_ok() {
                return served;
            }
            assert!(
                Instant::now() < until,
                "veil not ready:\n{}",
                served.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get_json(url: &str) -> (String, Value) {
    let resp = client().get(url).send().await.expect("GET");
    assert_eq!(resp.status(), 200, "{url}");
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    (text, json)
}

#[tokio::test]
async fn next_link_through_veil_gives_page_two_on_both_paths() {
    let graph = GraphServer::start("entra-id").await;
    let config = VeilConfig::new("entra-id", &graph.url());
    let p1 = sample("entra-id", "users.json");
    let p2 = sample("entra-id", "users-page2.json");
    let graph_next = p1.json()["@odata.nextLink"].as_str().unwrap().to_string();

    let mut pages = Vec::new();
    for path in [&[][..], &["--dom-sanitizer"][..]] {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let extra: Vec<&str> = ["--public-base-url", base.as_str()]
            .into_iter()
            .chain(path.iter().copied())
            .collect();
        let veil = Served::start(&config, &extra, port).await;

        let (text1, page1) = get_json(&format!("{base}{}", p1.target())).await;
        let next = page1["@odata.nextLink"].as_str().expect("nextLink");
        assert!(
            next.starts_with(&format!("{base}/v1.0/users?")),
            "{path:?}: {next}"
        );
        assert!(next.contains("$skiptoken=p~"), "{path:?}: {next}");
        assert!(
            !text1.contains("graph.microsoft.com/v1.0/users?"),
            "{text1}"
        );

        // The client follows the link as it is.
        let (text2, page2) = get_json(next).await;
        assert_eq!(
            graph.last().target,
            graph_next.strip_prefix(GRAPH).unwrap(),
            "Graph receives its own link back"
        );
        assert_eq!(graph.last().target, p2.target());
        assert_eq!(
            page2["value"].as_array().map(Vec::len),
            p2.json()["value"].as_array().map(Vec::len)
        );
        let next2 = page2["@odata.nextLink"].as_str().expect("page 2 nextLink");
        assert!(next2.starts_with(&format!("{base}/")), "{next2}");
        let (_, _) = get_json(next2).await;
        assert_eq!(
            graph.last().target,
            p2.json()["@odata.nextLink"]
                .as_str()
                .unwrap()
                .strip_prefix(GRAPH)
                .unwrap()
        );
        drop(veil);
        // Compared without the base, which differs by port.
        pages.push((text1.replace(&base, "BASE"), text2.replace(&base, "BASE")));
    }
    assert_eq!(
        pages[0], pages[1],
        "streaming and DOM path answer differently"
    );
}

#[tokio::test]
async fn the_environment_variable_sets_it_and_the_default_keeps_graph_links() {
    let graph = GraphServer::start("entra-id").await;
    let p1 = sample("entra-id", "users.json");

    let veil = VeilConfig::new("entra-id", &graph.url())
        .env("VEIL_PUBLIC_BASE_URL", "https://veil.example.com/")
        .start()
        .await;
    let (_, page) = get_json(&veil.url(p1.target())).await;
    let next = page["@odata.nextLink"].as_str().unwrap();
    let rest = next
        .strip_prefix("https://veil.example.com/")
        .unwrap_or_else(|| panic!("{next}"));
    let resp = client()
        .get(veil.url(&format!("/{rest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        graph.last().target,
        p1.json()["@odata.nextLink"]
            .as_str()
            .unwrap()
            .strip_prefix(GRAPH)
            .unwrap()
    );

    let plain = VeilConfig::new("entra-id", &graph.url()).start().await;
    let (_, page) = get_json(&plain.url(p1.target())).await;
    let default_next = page["@odata.nextLink"].as_str().unwrap();
    assert!(default_next.starts_with(GRAPH), "{default_next}");
    assert_eq!(
        default_next.strip_prefix(GRAPH),
        next.strip_prefix("https://veil.example.com"),
        "only the base differs"
    );
}

#[test]
fn a_bad_public_base_url_refuses_to_start() {
    for (url, says) in [
        (
            "http://veil.example.com",
            "plain http:// only for a loopback",
        ),
        ("https://veil.example.com/prod", "no path"),
        ("veil.example.com", "must start with https://"),
    ] {
        let log = serve_refused(
            &VeilConfig::new("entra-id", "http://127.0.0.1:9").env("VEIL_PUBLIC_BASE_URL", url),
        );
        assert!(
            log.contains("VEIL_PUBLIC_BASE_URL") && log.contains(says),
            "{url}: {log}"
        );
    }
}
