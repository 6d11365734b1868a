//! The console in a real browser: Debian's headless Chromium driven through chromedriver
//! (W3C WebDriver over HTTP, spoken here with a few lines of std), against the console served
//! over TLS with the backend's own CA on 127.0.0.1. The flow is the issue's: log in, open the
//! timeline, filter it, open the DCSync alert, see its evidence, close it as TP, download its
//! xlsx, open an entity page; and the hostile-named alert's page raises no dialog.
//!
//! Screenshots are kept in `target/tmp/console-screenshots/`. Needs `chromium` and
//! `chromium-driver` (`cargo xtask setup` installs them); without chromedriver the test fails,
//! unless DCWATCH_SKIP_BROWSER=1 says to skip it.

mod console_support;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use calamine::{Reader as _, Xlsx};
use console_support::{PASSWORD, seed};
use dcwatch_backend::{config::TlsConfig, console, tls};
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long to wait for something the page is about to show (polling, not a timed assertion).
const PATIENCE: Duration = Duration::from_secs(15);
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver the test started, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// One HTTP/1.1 exchange with chromedriver; its JSON answer's `value`.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_mins(1)))
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open whatever the request says: read the header,
    // then exactly Content-Length bytes.
    let mut answer = Vec::new();
    let mut byte = [0_u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        let read = stream.read(&mut byte).map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("closed before the header ended".to_owned());
        }
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).to_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|length| length.trim().parse::<usize>().ok())
        .ok_or("no Content-Length")?;
    let mut payload = vec![0_u8; length];
    stream.read_exact(&mut payload).map_err(|e| e.to_string())?;
    let payload = String::from_utf8_lossy(&payload).into_owned();
    let value: Value = serde_json::from_str(&payload).map_err(|e| format!("{e}: {payload}"))?;
    if let Some(error) = value["value"].get("error") {
        return Err(format!("{error}: {}", value["value"]["message"]));
    }
    Ok(value["value"].clone())
}

struct Browser {
    driver: Driver,
    session: String,
    shots: PathBuf,
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        http(
            self.driver.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .unwrap_or_else(|error| panic!("{url}: {error}"));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None)
            .expect("url")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .expect("source")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .map(|found| {
            found
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|element| element[ELEMENT].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
    }

    /// The first element `css` selects, once the page shows one.
    fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(element) = self.find_all(css).into_iter().next() {
                return element;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no {css} on {}: {}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .unwrap_or_else(|error| panic!("click {css}: {error}"));
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .expect("clear");
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .expect("type");
    }

    /// The element's text; found again when a navigation replaced it between the find and the
    /// read (WebDriver's "stale element reference"), a few times.
    fn text(&self, css: &str) -> String {
        let mut last = None;
        for _ in 0..5 {
            let element = self.find(css);
            match self.call("GET", &format!("/element/{element}/text"), None) {
                Ok(text) => return text.as_str().unwrap_or_default().to_owned(),
                Err(failure) => last = Some(failure),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("text of {css}: {last:?}")
    }

    /// Waits until `css`'s text contains `wanted` (the page after a form post).
    fn wait_text(&self, css: &str, wanted: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css);
            if text.contains(wanted) {
                return text;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{css} says {text:?}, not {wanted:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the address holds `wanted` (the page a GET form leads to).
    fn wait_url(&self, wanted: &str) {
        let started = Instant::now();
        while !self.url().contains(wanted) {
            assert!(
                started.elapsed() < PATIENCE,
                "{} has no {wanted:?}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) {
        let png = self.call("GET", "/screenshot", None).expect("screenshot");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("base64");
        std::fs::write(self.shots.join(format!("{name}.png")), bytes).expect("write screenshot");
    }

    /// Whether a JavaScript dialog is open (an injected `alert(1)` would open one).
    fn dialog_open(&self) -> bool {
        self.call("GET", "/alert/text", None).is_ok()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
    }
}

fn wait_for_file(dir: &Path, extension: &str) -> PathBuf {
    let started = Instant::now();
    let mut last_seen: Option<(PathBuf, u64)> = None;
    loop {
        let paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .collect();
        // Chromium reserves the final name with an empty file and writes into a .crdownload
        // beside it, renamed over the placeholder when complete. The file is taken once it has
        // bytes, no .crdownload is left, and its size held between two looks.
        let in_progress = paths
            .iter()
            .any(|path| path.extension().is_some_and(|ext| ext == "crdownload"));
        let seen = paths
            .into_iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == extension))
            .find_map(|path| {
                let size = std::fs::metadata(&path).ok()?.len();
                (size > 0).then_some((path, size))
            });
        if let (false, Some(now), Some(before)) = (in_progress, &seen, &last_seen)
            && now == before
        {
            return now.0.clone();
        }
        last_seen = seen;
        assert!(started.elapsed() < PATIENCE, "no .{extension} downloaded");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The switch by which this browser profile trusts the console's certificate (signed by the
/// backend's CA, which the profile does not know): its public key's SHA-256, as Chromium takes
/// it. Every other certificate error still fails the page.
fn trust_flag(cert_pem: &[u8]) -> String {
    let spki = x509_spki(&pem_der(cert_pem));
    let hash = sha2_digest(&spki);
    format!(
        "--ignore-certificate-errors-spki-list={}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

fn pem_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let body: String = text
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM")
}

/// The DER SubjectPublicKeyInfo of a certificate: the 7th element of its TBSCertificate
/// (after version, serial, signature, issuer, validity, subject).
fn x509_spki(der: &[u8]) -> Vec<u8> {
    fn element(data: &[u8]) -> (usize, usize) {
        // (header length, content length) of the DER element at the start of `data`.
        let first = usize::from(data[1]);
        if first < 0x80 {
            (2, first)
        } else {
            let count = first & 0x7f;
            let length = data[2..2 + count]
                .iter()
                .fold(0_usize, |acc, byte| (acc << 8) | usize::from(*byte));
            (2 + count, length)
        }
    }
    let (header, _) = element(der);
    let tbs = &der[header..];
    let (tbs_header, tbs_length) = element(tbs);
    let mut rest = &tbs[tbs_header..tbs_header + tbs_length];
    let mut index = 0;
    loop {
        let (header, length) = element(rest);
        let whole = &rest[..header + length];
        // The version is the optional [0] element.
        let position = if rest[0] == 0xa0 { None } else { Some(index) };
        if position == Some(5) {
            return whole.to_vec();
        }
        if position.is_some() {
            index += 1;
        }
        rest = &rest[header + length..];
    }
}

fn sha2_digest(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_works_an_alert_in_chromium() {
    if !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var("DCWATCH_SKIP_BROWSER").is_ok_and(|value| value == "1"),
            "{CHROMEDRIVER} is missing: run `cargo xtask setup` (or DCWATCH_SKIP_BROWSER=1)"
        );
        return;
    }
    let store = console_support::TestStore::new(console_support::Backend::Sqlite);
    let seeded = seed(&store);
    let identity =
        tls::server_identity(&TlsConfig::default(), store.dir.path()).expect("certificate");
    let acceptor = console::acceptor(&identity.cert_pem, &identity.key_pem).expect("acceptor");
    let listener = console::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (state, _) = console_support::console_with_directory(&store);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(console::serve(
        listener,
        acceptor,
        console::router(state),
        async move {
            let _ = stopped.await;
        },
    ));
    let trust = trust_flag(&identity.cert_pem);
    let base = format!("https://localhost:{port}");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot folder");
    let work = tokio::task::spawn_blocking(move || run_flow(&base, &trust, &seeded, &shots));
    let outcome = work.await;
    let _ = stop.send(());
    let _ = server.await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

fn run_flow(base: &str, trust: &str, seeded: &console_support::Seeded, shots: &Path) {
    let profile = tempfile::tempdir().expect("profile");
    let downloads = tempfile::tempdir().expect("downloads");
    let browser = start(profile.path(), downloads.path(), shots, trust);

    // Unauthenticated: the timeline sends the browser to the login form.
    browser.go(&format!("{base}/alerts"));
    browser.find("#login");
    assert!(
        browser.url().contains("/login?next=/alerts"),
        "{}",
        browser.url()
    );
    browser.screenshot("1-login");
    browser.type_into("#name", "analyst");
    browser.type_into("#password", PASSWORD);
    browser.click("#login");
    browser.wait_text("#count-total", &format!("{} alerts", seeded.alerts));
    assert!(browser.url().ends_with("/alerts"), "{}", browser.url());
    assert_eq!(browser.find_all("tr[data-alert]").len(), seeded.alerts);
    assert!(
        !browser.dialog_open(),
        "the hostile name ran no script on the timeline"
    );

    // Filter by severity and the lab client's address: only the capture's own DCSync stays
    // (the hostile copy came from 10.99.0.66, the brute force is medium).
    browser.click("#filter-severity option[value='HIGH']");
    browser.type_into("#filter-entity", "10.99.0.2");
    browser.click("#apply");
    browser.wait_text("#count-total", "1 alerts");
    let rows = browser.find_all(&format!("tr[data-alert='{}']", seeded.dcsync));
    assert_eq!(rows.len(), 1);
    assert!(
        browser.url().contains("entity=10.99.0.2"),
        "{}",
        browser.url()
    );
    browser.screenshot("2-timeline-filtered");

    // The alert page: the story, the entities and the evidence.
    browser.click("a.alert-link");
    let description = browser.wait_text("#description", "LAB\\Administrator");
    assert!(description.contains("DsGetNCChanges"), "{description}");
    let evidence = browser.find_all("tr.activity");
    assert!(!evidence.is_empty(), "evidence rows");
    let first = browser.text("tr.activity");
    assert!(
        first.contains("dcerpc") && first.contains("10.99.0.2:"),
        "{first}"
    );
    browser.screenshot("3-alert");

    // Close as a true positive.
    browser.click("#classification option[value='TP']");
    browser.type_into("#close-comment", "confirmed with the DC's owner");
    browser.click("#close-button");
    let status = browser.wait_text("#status", "CLOSED");
    assert!(status.contains("TP"), "{status}");
    let history = browser.text("#history");
    assert!(history.contains("confirmed with the DC's owner") && history.contains("analyst"));
    browser.screenshot("4-closed");

    // The report downloads and reads back with the new status.
    browser.click("#report");
    let file = wait_for_file(downloads.path(), "xlsx");
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(
        std::fs::read(&file).expect("the download"),
    ))
    .expect("an xlsx");
    let summary = book.worksheet_range("Summary").expect("summary");
    assert_eq!(
        summary
            .get_value((5, 1))
            .map(ToString::to_string)
            .as_deref(),
        Some("Closed")
    );

    // An entity page from the alert's entity link.
    browser.go(&format!("{base}/alerts/{}", seeded.dcsync));
    browser.click("a.entity[href^='/accounts']");
    let name = browser.wait_text("#entity-name", "Administrator");
    assert_eq!(name, "LAB\\Administrator");
    assert!(!browser.find_all("tr.activity").is_empty());
    assert!(!browser.find_all("tr[data-alert]").is_empty());
    // What the stored directory says of it: tags with their reasons, its groups.
    let tags = browser.text("#tags");
    assert!(
        tags.contains("sensitive: member of Domain Admins"),
        "{tags}"
    );
    let groups = browser.text("#groups-direct");
    assert!(
        groups.contains("CN=Domain Admins,CN=Users,DC=lab,DC=example"),
        "{groups}"
    );
    browser.screenshot("5-account");
    // Its activities filtered by protocol, and the CSV export of the same filter.
    browser.type_into("#filter-protocol", "smb");
    browser.click("form.filters button[type='submit']");
    browser.wait_url("protocol=smb");
    assert!(
        !browser.find_all("tr.activity").is_empty(),
        "SMB activities of Administrator"
    );
    let first = browser.text("tr.activity");
    assert!(first.contains("smb"), "{first}");
    browser.click("#csv");
    let csv = wait_for_file(downloads.path(), "csv");
    let csv = std::fs::read_to_string(csv).expect("the CSV");
    assert!(csv.lines().count() > 1, "{csv}");
    assert!(
        csv.lines().skip(1).all(|line| line.contains("\"smb\"")),
        "{csv}"
    );
    browser.screenshot("5b-account-smb");

    // The hostile-named alert: shown as text, no dialog.
    browser.go(&format!("{base}/alerts/{}", seeded.hostile));
    browser.wait_text("#description", "<img src=x onerror=alert(1)>");
    assert!(!browser.dialog_open(), "no script ran");
    browser.screenshot("6-hostile");
}

fn start(profile: &Path, downloads: &Path, shots: &Path, trust: &str) -> Browser {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    let started = Instant::now();
    while http(port, "GET", "/status", None).is_err() {
        assert!(started.elapsed() < PATIENCE, "chromedriver never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.display()),
                trust,
            ],
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false
            }
        }
    }}});
    let session = http(port, "POST", "/session", Some(&capabilities)).expect("a session");
    Browser {
        driver,
        session: session["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned(),
        shots: shots.to_owned(),
    }
}
