//! The HTTP server as an operator and an attacker see it, against the real binary over
//! real sockets: a connection limit and an idle timeout, failed authentications limited
//! per client address, and the timing histograms of `/metrics`.

mod common;

use common::{free_port, wait_for, Deployment};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cret-token-for-ops-tests";

/// A daemon with the API on a free port, its token in a token file, and `http_extra`
/// added to the `http:` section.
fn start(http_extra: &str) -> (Deployment, common::Daemon, u16) {
    let port = free_port();
    let probe = Deployment::new(None);
    let token_file = probe.path("tokens.txt");
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()))
    };
    std::fs::write(&token_file, format!("ops {hash}\n")).unwrap();
    let http = format!(
        "http:\n  addr: \"127.0.0.1:{port}\"\n  token_file: \"{}\"\n{http_extra}",
        token_file.display()
    );
    let config = std::fs::read_to_string(&probe.config).unwrap() + &http;
    std::fs::write(&probe.config, config).unwrap();
    let daemon = probe.start();
    wait_for("the HTTP server", Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).ok());
    (probe, daemon, port)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Reads until the server closes the connection (EOF or reset): how long that took, or
/// None if it still had not after the stream's read timeout.
fn wait_closed(s: &mut TcpStream) -> Option<Instant> {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(Instant::now()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
            Err(_) => return Some(Instant::now()),
        }
    }
}

/// One request with `Connection: close`; the answer's status line and body.
fn request(port: u16, head: &str) -> (String, String) {
    let mut s = connect(port);
    write!(s, "{head}Host: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn stalled_connections_are_closed_when_idle_and_no_more_than_the_limit_are_served() {
    let (_d, daemon, port) = start("  max_connections: 4\n  idle_timeout_secs: 3\n");
    let idle = Duration::from_secs(3);

    // Four connections that stall as an attacker's would: one says nothing, two stop in
    // their headers, one (with a valid token) stops in its body.
    let mut stalled: Vec<(TcpStream, Instant)> = Vec::new();
    for partial in [
        String::new(),
        "GET /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_string(),
        "POST /v1/records HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le".to_string(),
        format!(
            "POST /v1/records HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: 60000\r\n\r\n{{\"subject\":"
        ),
    ] {
        let mut s = connect(port);
        s.write_all(partial.as_bytes()).unwrap();
        stalled.push((s, Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(300));

    // (b) A fifth, complete request is not served while the four hold every slot.
    let mut fifth = connect(port);
    fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let sent = Instant::now();
    fifth.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut answer = [0u8; 512];
    match fifth.read(&mut answer) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!(
            "a connection beyond the limit was served at once: {other:?} {}",
            String::from_utf8_lossy(&answer)
        ),
    }

    // (a) Each stalled connection is closed once it has been idle for the timeout: not
    // before, and not at the 30 s request timeout either.
    for (i, (s, last_byte)) in stalled.iter_mut().enumerate() {
        let closed = wait_closed(s).unwrap_or_else(|| panic!("stalled connection {i} was never closed"));
        let after = closed - *last_byte;
        assert!(
            after >= idle - Duration::from_millis(500) && after < idle + Duration::from_secs(5),
            "stalled connection {i} closed after {after:?}, the idle timeout is {idle:?}"
        );
    }

    // The waiting connection is served as soon as a slot is free.
    fifth.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut text = String::new();
    fifth.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(sent.elapsed() >= idle - Duration::from_secs(1), "served after {:?}", sent.elapsed());

    // (c) Normal authenticated requests work afterwards, more of them than the limit.
    for _ in 0..6 {
        let (status, body) =
            request(port, &format!("GET /v1/alerts HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"));
        assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
        assert!(body.trim_start().starts_with('['), "{body}");
    }
    assert!(daemon.log_text().contains("HTTP connection limit reached"), "{}", daemon.log_text());

    // A kept-alive connection is answered, then closed once no next request comes.
    let mut kept = connect(port);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let asked = Instant::now();
    let mut text = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match kept.read(&mut buf) {
            Ok(0) => break asked.elapsed(),
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("a kept-alive connection was never closed")
            }
            Err(_) => break asked.elapsed(),
        }
    };
    assert!(String::from_utf8_lossy(&text).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&text));
    assert!(closed >= idle - Duration::from_millis(500), "closed after {closed:?}");

    // A client that drips its headers a byte at a time is closed at the idle timeout too.
    let mut drip = connect(port);
    let mut writer = drip.try_clone().unwrap();
    let started = Instant::now();
    std::thread::spawn(move || {
        let header =
            b"GET /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in header {
            if writer.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let closed = wait_closed(&mut drip).expect("a client dripping its headers was never closed") - started;
    assert!(
        closed >= idle - Duration::from_millis(500) && closed < idle + Duration::from_secs(3),
        "{closed:?}"
    );
}

#[tokio::test]
async fn failed_authentications_are_limited_per_client_address_and_logged_without_the_token() {
    let (_d, daemon, port) = start("");
    let base = format!("http://127.0.0.1:{port}");
    // The whole of 127.0.0.0/8 is loopback: two clients with their own addresses.
    let from =
        |ip: [u8; 4]| reqwest::Client::builder().local_address(std::net::IpAddr::from(ip)).build().unwrap();
    let (guesser, neighbour) = (from([127, 0, 0, 2]), from([127, 0, 0, 3]));
    let guess = "guessed-token-0123456789abcdef";
    let get = |client: &reqwest::Client, token: &str| {
        client.get(format!("{base}/v1/alerts")).bearer_auth(token).send()
    };

    for i in 0..10 {
        assert_eq!(get(&guesser, guess).await.unwrap().status().as_u16(), 401, "guess {i}");
    }
    // Eleven failures in all: under the limit for everyone (20), over it for this client.
    let held = get(&guesser, guess).await.unwrap();
    assert_eq!(held.status().as_u16(), 429);
    assert!(held.headers().contains_key("retry-after"));
    // Another address is still told its token is wrong, not held back by the guesser.
    assert_eq!(get(&neighbour, guess).await.unwrap().status().as_u16(), 401);
    // A valid token is never held back, not even from the guessing address.
    assert_eq!(get(&guesser, TOKEN).await.unwrap().status().as_u16(), 200);

    let log = daemon.log_text();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("Authentication failed")).collect();
    assert!(failures.iter().any(|l| l.contains("127.0.0.2:")), "{log}");
    assert!(failures.iter().any(|l| l.contains("127.0.0.3:")), "{log}");
    assert!(!log.contains(guess) && !log.contains(TOKEN), "a presented token reached the log: {log}");
}

/// A sample: its name, its labels, its value.
type Sample = (String, Vec<(String, String)>, f64);

/// One family of the exposition: its type and its samples.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    samples: Vec<Sample>,
}

/// Parses the Prometheus text format (0.0.4) strictly: a HELP and a TYPE before each
/// family's samples, metric and label names as the format allows, every value a number,
/// every sample in a declared family, no series twice.
fn parse_exposition(text: &str) -> HashMap<String, Family> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut helped = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name_ok(name) && helped.insert(name.to_string()), "HELP twice or bad name: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            assert!(!families.contains_key(name), "TYPE twice: {line}");
            families.insert(name.to_string(), Family { kind: kind.to_string(), samples: vec![] });
        } else {
            assert!(!line.starts_with('#') && !line.trim().is_empty(), "stray line: {line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => {
                    let l = l.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                    let labels: Vec<(String, String)> = l
                        .split(',')
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                            assert!(
                                name_ok(k) && v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                                "{line}"
                            );
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (n, labels)
                }
                None => (series, vec![]),
            };
            assert!(name_ok(name), "{line}");
            assert!(seen.insert(series.to_string()), "series twice: {line}");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|f| families.get(*f).is_some_and(|f| f.kind == "histogram"))
                .unwrap_or(name);
            let f = families.get_mut(family).unwrap_or_else(|| panic!("a sample before its TYPE: {line}"));
            f.samples.push((name.to_string(), labels, value));
        }
    }
    families
}

/// A histogram's (le, cumulative count) pairs, checked: bounds increasing, counts never
/// falling, the last bucket +Inf and equal to _count. Returns (buckets, count, sum).
fn histogram(families: &HashMap<String, Family>, name: &str) -> (Vec<(f64, f64)>, f64, f64) {
    let f = families.get(name).unwrap_or_else(|| panic!("no {name} in /metrics"));
    assert_eq!(f.kind, "histogram", "{name}");
    let buckets: Vec<(f64, f64)> = f
        .samples
        .iter()
        .filter(|(n, _, _)| n == &format!("{name}_bucket"))
        .map(|(_, labels, v)| {
            let le = labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v.as_str()).unwrap();
            (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, *v)
        })
        .collect();
    assert!(buckets.len() > 1, "{name}: {buckets:?}");
    for w in buckets.windows(2) {
        assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1, "{name}: buckets not monotonic: {buckets:?}");
    }
    let one = |suffix: &str| {
        f.samples.iter().find(|(n, _, _)| n == &format!("{name}{suffix}")).map(|s| s.2).unwrap()
    };
    let (count, sum) = (one("_count"), one("_sum"));
    assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY), "{name}");
    assert_eq!(buckets.last().map(|b| b.1), Some(count), "{name}: +Inf bucket is not _count");
    (buckets, count, sum)
}

#[tokio::test]
async fn metrics_carry_evaluation_and_clock_pass_histograms_in_the_exposition_format() {
    let (_d, _daemon, port) = start("");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let records: String = (0..5)
        .map(|i| {
            format!(
                "{{\"subject\":\"KS-6{i:02}\",\"site\":\"KS\",\"record_id\":\"m{i}\",\"doses\":[{{\"start\":\"2019-02-26T09:10:00Z\"}}],\
                 \"adverse_events\":[{{\"id\":\"AE-{i}\",\"term\":\"Infusion related reaction\",\"grade\":3,\"onset\":\"2019-02-26T09:40:00Z\"}}]}}\n"
            )
        })
        .collect();
    let posted =
        client.post(format!("{base}/v1/records")).bearer_auth(TOKEN).body(records).send().await.unwrap();
    assert_eq!(posted.status().as_u16(), 202);

    // Evaluated (its alerts are there) and a clock pass done (one a second in the test config).
    let start = Instant::now();
    let families = loop {
        let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        let families = parse_exposition(&text);
        let open = families["vigil_alerts"].samples.iter().map(|s| s.2).sum::<f64>();
        let clock = histogram(&families, "vigil_clock_pass_seconds").1;
        let evaluated = families["vigil_evaluated_subjects_total"].samples[0].2;
        if open >= 5.0 && clock > 0.0 && evaluated >= 5.0 {
            break families;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no evaluation or clock pass in /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (buckets, count, sum) = histogram(&families, "vigil_evaluation_seconds");
    assert!(count > 0.0 && sum > 0.0, "{buckets:?} sum {sum}");
    // Five subjects took well under the top bound: some finite bucket holds them.
    assert!(buckets.iter().any(|(le, n)| le.is_finite() && *n > 0.0), "{buckets:?}");
    let (_, clock_count, clock_sum) = histogram(&families, "vigil_clock_pass_seconds");
    assert!(clock_count > 0.0 && clock_sum > 0.0);
    assert_eq!(families["vigil_evaluated_subjects_total"].kind, "counter");
    let escalations = &families["vigil_escalations_total"];
    assert_eq!((escalations.kind.as_str(), escalations.samples.len()), ("counter", 1));
    assert_eq!(escalations.samples[0].2, 0.0, "nothing has escalated yet");
}
