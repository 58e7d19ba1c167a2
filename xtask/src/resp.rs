//! A minimal blocking RESP2 client for xtask: enough to probe, wait for, inspect and stop the
//! embedded server (PING, INFO, MODULE LIST, FT.INFO, GET, SHUTDOWN) and to write a small test
//! catalog. xtask runs before anything else is built, so it does not pull in the redis crate;
//! the serving code talks to Redis through `redis-rs`, never through this module.

use std::{
    io::{self, BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::{Context, Result, bail};

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Value>),
}

impl Value {
    /// The reply as text (simple, bulk or integer), `None` for errors, nil and arrays.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Simple(s) => Some(s.clone()),
            Value::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The value following `key` in a flat key/value array (FT.INFO, MODULE LIST entries).
    pub fn field(&self, key: &str) -> Option<&Value> {
        let Value::Array(items) = self else {
            return None;
        };
        items
            .chunks(2)
            .find(|kv| kv.len() == 2 && kv[0].text().as_deref() == Some(key))
            .map(|kv| &kv[1])
    }
}

/// One connection to a RESP server.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects to `addr` (`host:port`), with short timeouts: xtask probes, it does not wait.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Conn> {
        let sock: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .with_context(|| format!("bad address {addr}"))?
            .next()
            .with_context(|| format!("{addr} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&sock, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    /// Sends one command and reads its reply.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value> {
        self.send(args)?;
        self.read()
    }

    /// Writes one command without reading the reply (pipelining: pair with `read`).
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<()> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&req)?;
        Ok(())
    }

    /// Reads one reply.
    pub fn read(&mut self) -> Result<Value> {
        read_value(&mut self.reader)
    }
}

fn read_line(r: &mut impl BufRead) -> Result<String> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    if !line.ends_with(b"\r\n") {
        bail!("not a RESP reply: {:?}", String::from_utf8_lossy(&line));
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn read_value(r: &mut impl BufRead) -> Result<Value> {
    let line = read_line(r)?;
    let (tag, rest) = line.split_at(line.len().min(1));
    let int = |s: &str| -> Result<i64> {
        s.parse()
            .with_context(|| format!("not a RESP reply: bad length {s:?}"))
    };
    Ok(match tag {
        "+" => Value::Simple(rest.to_owned()),
        "-" => Value::Error(rest.to_owned()),
        ":" => Value::Int(int(rest)?),
        "$" => {
            let n = int(rest)?;
            if n < 0 {
                return Ok(Value::Nil);
            }
            let mut buf = vec![0; n as usize + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(n as usize);
            Value::Bulk(buf)
        }
        "*" => {
            let n = int(rest)?;
            if n < 0 {
                return Ok(Value::Nil);
            }
            let mut items = Vec::with_capacity(n as usize);
            for _ in 0..n {
                items.push(read_value(r)?);
            }
            Value::Array(items)
        }
        _ => bail!("not a RESP reply: {line:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        read_value(&mut BufReader::new(bytes)).unwrap()
    }

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(parse(b"+PONG\r\n"), Value::Simple("PONG".into()));
        assert_eq!(
            parse(b"-LOADING Redis is loading the dataset in memory\r\n"),
            Value::Error("LOADING Redis is loading the dataset in memory".into())
        );
        assert_eq!(parse(b":42\r\n"), Value::Int(42));
        assert_eq!(parse(b"$-1\r\n"), Value::Nil);
        assert_eq!(parse(b"$4\r\na\r\nb\r\n"), Value::Bulk(b"a\r\nb".to_vec()));
        let v = parse(b"*4\r\n+num_docs\r\n$3\r\n120\r\n$4\r\nname\r\n*0\r\n");
        assert_eq!(
            v.field("num_docs").and_then(Value::text),
            Some("120".into())
        );
        assert_eq!(v.field("name"), Some(&Value::Array(vec![])));
        assert_eq!(v.field("missing"), None);
    }

    #[test]
    fn rejects_what_is_not_resp() {
        let err = read_value(&mut BufReader::new(&b"HTTP/1.1 400 Bad Request\r\n"[..]));
        assert!(err.unwrap_err().to_string().contains("not a RESP reply"));
        let err = read_value(&mut BufReader::new(&b"+OK"[..]));
        assert!(err.is_err());
    }
}
