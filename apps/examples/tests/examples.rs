//! Runs the examples as a user would and checks what they print or serve. `cargo test` builds
//! the examples before the tests, next to this test's own binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/examples-… → target/<profile>/examples/. `cargo test` leaves the
    // example as `<name>-<hash>`; `cargo build --examples` adds a plain `<name>`. The newest wins.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let hashed = format!("{name}-");
    let newest = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            file == name
                || (file.starts_with(&hashed)
                    && file[hashed.len()..].chars().all(|c| c.is_ascii_hexdigit()))
        })
        .max_by_key(|entry| entry.metadata().and_then(|m| m.modified()).ok());
    newest
        .map(|entry| entry.path())
        .unwrap_or_else(|| panic!("no {name} in {}: cargo test builds it", dir.display()))
}

#[test]
fn detect_synthetic_prints_the_disc_in_every_frame() {
    let output = Command::new(example("detect_synthetic"))
        .arg("12")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let frames: Vec<&str> = stdout.lines().filter(|l| l.starts_with("frame ")).collect();
    assert!(frames.len() >= 12, "{stdout}");
    // The classical detector finds the disc it was shown, with a high score, in most frames.
    let found = frames
        .iter()
        .filter(|l| {
            l.split("striped disc ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|score| score.parse::<f32>().ok())
                .is_some_and(|score| score > 0.8)
        })
        .count();
    assert!(
        found * 10 >= frames.len() * 9,
        "{found} of {}: {stdout}",
        frames.len()
    );
    assert!(stdout.contains("frames in, "), "{stdout}");
}

#[test]
fn serve_results_answers_with_the_newest_prediction() {
    let mut child = Command::new(example("serve_results"))
        .args(["20", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("serving http://")
        .and_then(|rest| rest.strip_suffix("/latest"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();

    let get = |path: &str| -> String {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    // The first result takes a frame or two to arrive.
    let started = Instant::now();
    let answer = loop {
        let answer = get("/latest");
        if answer.starts_with("HTTP/1.1 200") || started.elapsed() > Duration::from_secs(15) {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let payload: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["version"], 1);
    assert!(payload["frame"]["sequence"].as_u64().unwrap() >= 1);
    let detections = payload["detections"].as_array().unwrap();
    assert!(
        detections.iter().any(|d| d["label_name"] == "striped disc"),
        "{payload}"
    );
    // Later requests see later frames.
    std::thread::sleep(Duration::from_millis(300));
    let later: serde_json::Value =
        serde_json::from_str(get("/latest").split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(later["frame"]["sequence"].as_u64() > payload["frame"]["sequence"].as_u64());
    assert!(get("/elsewhere").starts_with("HTTP/1.1 404"));
    child.kill().unwrap();
    child.wait().unwrap();
}
