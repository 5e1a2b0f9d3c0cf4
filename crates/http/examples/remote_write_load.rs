//! Remote-write load client (issue 20's speed figure): sends the peer benchmark's data
//! (`gen.py -f csv`: `model,version,metric,timestamp_ms,value`, time order) to a
//! modelwatch (or any remote-write receiver) as Prometheus does — snappy-compressed
//! `WriteRequest`s, each holding every series with `--minutes` consecutive samples —
//! over ONE keep-alive HTTP/1.1 connection, one request at a time, and prints the
//! samples per second from the first byte sent to the last answer.
//!
//!     cargo run --release --example remote_write_load -p modelwatch-http -- \
//!         --csv data.csv --url http://127.0.0.1:7878/api/v1/write [--minutes 5]
//!
//! Series are `model_perf{model, version, metric}` (modelwatch maps the labels by
//! default). Bodies are encoded before the clock starts, as the peers' files are
//! generated before theirs. Standard library plus the crate's own prost and snap.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Instant;

use modelwatch_http::remote_write::proto;
use prost::Message;

struct Arguments {
    csv: String,
    host: String,
    path: String,
    minutes: usize,
}

fn arguments() -> Result<Arguments, String> {
    let mut csv = None;
    let mut url = None;
    let mut minutes = 5;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--csv" => csv = Some(value()?),
            "--url" => url = Some(value()?),
            "--minutes" => minutes = value()?.parse().map_err(|e| format!("--minutes: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must be http://HOST:PORT/PATH")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    Ok(Arguments {
        csv: csv.ok_or("--csv is required")?,
        host: host.to_owned(),
        path: format!("/{path}"),
        minutes: minutes.max(1),
    })
}

/// A series' labels and its samples.
type Series = (Vec<proto::Label>, Vec<proto::Sample>);

/// Every series' labels and its (timestamp, value) samples, in the file's order.
fn read_series(path: &str) -> Result<Vec<Series>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut index: HashMap<(String, String, String), usize> = HashMap::new();
    let mut series: Vec<Series> = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{path}: {e}"))?;
        let fields: Vec<&str> = line.split(',').collect();
        let [model, version, metric, timestamp, value] = fields[..] else {
            return Err(format!("{path}:{}: not 5 fields", number + 1));
        };
        if model == "model" {
            continue;
        }
        let bad = |what: &str| format!("{path}:{}: bad {what}", number + 1);
        let sample = proto::Sample {
            timestamp: timestamp.parse().map_err(|_| bad("timestamp"))?,
            value: value.parse().map_err(|_| bad("value"))?,
        };
        let key = (model.to_owned(), version.to_owned(), metric.to_owned());
        let at = *index.entry(key).or_insert_with(|| {
            let label = |name: &str, value: &str| proto::Label {
                name: name.into(),
                value: value.into(),
            };
            series.push((
                vec![
                    label("__name__", "model_perf"),
                    label("metric", metric),
                    label("model", model),
                    label("version", version),
                ],
                Vec::new(),
            ));
            series.len() - 1
        });
        series[at].1.push(sample);
    }
    Ok(series)
}

/// One compressed WriteRequest per `minutes` samples of every series.
fn encode(series: &[Series], minutes: usize) -> Vec<Vec<u8>> {
    let longest = series.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    let mut encoder = snap::raw::Encoder::new();
    (0..longest)
        .step_by(minutes)
        .map(|from| {
            let request = proto::WriteRequest {
                timeseries: series
                    .iter()
                    .filter(|(_, samples)| from < samples.len())
                    .map(|(labels, samples)| proto::TimeSeries {
                        labels: labels.clone(),
                        samples: samples[from..(from + minutes).min(samples.len())].to_vec(),
                    })
                    .collect(),
            };
            encoder
                .compress_vec(&request.encode_to_vec())
                .expect("snappy compresses any input")
        })
        .collect()
}

/// Sends one request and reads its answer; the status code.
fn send(
    stream: &mut BufReader<TcpStream>,
    host: &str,
    path: &str,
    body: &[u8],
) -> Result<u16, String> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n\
         User-Agent: remote_write_load\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let socket = stream.get_mut();
    socket
        .write_all(head.as_bytes())
        .and_then(|()| socket.write_all(body))
        .map_err(|e| format!("send: {e}"))?;
    let mut status = 0;
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if stream
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?
            == 0
        {
            return Err("connection closed".into());
        }
        let text = line.trim_end();
        if text.is_empty() {
            break;
        }
        if let Some(rest) = text.strip_prefix("HTTP/1.1 ") {
            status = rest.get(..3).and_then(|s| s.parse().ok()).unwrap_or(0);
        } else if let Some((name, value)) = text.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut answer = vec![0; length];
    stream
        .read_exact(&mut answer)
        .map_err(|e| format!("read body: {e}"))?;
    if !(200..300).contains(&status) {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    Ok(status)
}

fn run() -> Result<(), String> {
    let args = arguments()?;
    let series = read_series(&args.csv)?;
    let samples: usize = series.iter().map(|(_, s)| s.len()).sum();
    let bodies = encode(&series, args.minutes);
    drop(series);
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let socket = TcpStream::connect(&args.host).map_err(|e| format!("{}: {e}", args.host))?;
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut stream = BufReader::new(socket);
    let start = Instant::now();
    for body in &bodies {
        send(&mut stream, &args.host, &args.path, body)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"samples\":{samples},\"requests\":{},\"samples_per_request\":{},\"compressed_bytes\":{bytes},\
         \"seconds\":{seconds:.3},\"samples_per_second\":{:.0}}}",
        bodies.len(),
        samples / bodies.len().max(1),
        samples as f64 / seconds
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("remote_write_load: {error}");
            ExitCode::FAILURE
        }
    }
}
