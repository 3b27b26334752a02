//! Values as the language spells them: names, addresses, subnets, MACs, ports and
//! durations. Each parser returns the typed value or the reason it is not one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnetwork::{Ipv4Network, Ipv6Network};

use crate::model::{Mac, Protocol, PublishedPort};

pub const NAME_MAX: usize = 64;

/// Object names: `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`, at most 64 bytes. A name becomes a file
/// under the namespace directory, so it can never be `..` or hold a `/` or NUL.
pub fn name(text: &str) -> Result<(), &'static str> {
    let mut chars = text.chars();
    match chars.next() {
        None => return Err("a name cannot be empty"),
        Some(c) if !c.is_ascii_alphanumeric() => return Err("a name starts with a letter or a digit"),
        Some(_) => {}
    }
    if text.len() > NAME_MAX {
        return Err("a name is at most 64 bytes");
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(match bad {
            '/' => "a name cannot contain `/`",
            '\0' => "a name cannot contain NUL",
            _ => "a name holds only letters, digits, `_`, `.` and `-`",
        });
    }
    if text.contains("..") {
        return Err("a name cannot contain `..`");
    }
    Ok(())
}

/// Interface names: 1 to 15 bytes, no `/`, no blanks, no `:`, not `.` or `..`.
pub fn ifname(text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > 15 {
        return Err("an interface name is 1 to 15 bytes".into());
    }
    if text == "." || text == ".." {
        return Err("an interface name cannot be `.` or `..`".into());
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!("`{c}` is not allowed in an interface name"));
    }
    Ok(())
}

pub fn hostname(text: &str) -> Result<(), &'static str> {
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if text.len() <= 253 && text.split('.').all(valid_label) {
        Ok(())
    } else {
        Err("a hostname is dot-separated labels of letters, digits and `-`, at most 253 bytes")
    }
}

pub fn ipv4(text: &str) -> Result<Ipv4Addr, String> {
    text.parse().map_err(|_| match text.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => "this is an IPv6 address; use the `ipv6` option".to_string(),
        _ => "not an IPv4 address such as 10.1.0.5".to_string(),
    })
}

pub fn ipv6(text: &str) -> Result<Ipv6Addr, String> {
    text.parse()
        .map_err(|_| "not an IPv6 address such as fd00::5".to_string())
}

pub fn ip(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| "not an IP address such as 10.1.0.5 or fd00::5".to_string())
}

/// The host address a port is published on: IPv4, as the DNAT rules are.
pub fn host_ip4(text: &str) -> Result<IpAddr, String> {
    match text
        .parse()
        .map_err(|_| "not an IPv4 address such as 127.0.0.1".to_string())?
    {
        IpAddr::V6(_) => Err("ports are published on IPv4 host addresses only (for now)".into()),
        v4 => Ok(v4),
    }
}

pub fn subnet4(text: &str) -> Result<Ipv4Network, String> {
    let Some((addr, prefix)) = text.split_once('/') else {
        return Err("a subnet is ADDRESS/PREFIX, such as 10.1.0.0/24".into());
    };
    let addr = ipv4(addr)?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or("the prefix length is a number from 0 to 32")?;
    let net = Ipv4Network::new(addr, prefix).map_err(|e| e.to_string())?;
    if net.network() != addr {
        return Err(format!(
            "host bits are set; the network address is {}/{prefix}",
            net.network()
        ));
    }
    Ok(net)
}

pub fn subnet6(text: &str) -> Result<Ipv6Network, String> {
    let Some((addr, prefix)) = text.split_once('/') else {
        return Err("a subnet is ADDRESS/PREFIX, such as fd00:1::/64".into());
    };
    let addr = ipv6(addr)?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 128)
        .ok_or("the prefix length is a number from 0 to 128")?;
    let net = Ipv6Network::new(addr, prefix).map_err(|e| e.to_string())?;
    if net.network() != addr {
        return Err(format!(
            "host bits are set; the network address is {}/{prefix}",
            net.network()
        ));
    }
    Ok(net)
}

/// A unicast MAC address other than all zeros, such as `02:42:0a:01:00:02`.
pub fn mac(text: &str) -> Result<Mac, &'static str> {
    let mac: Mac = text.parse()?;
    let bytes = mac.octets();
    if bytes[0] & 1 == 1 {
        return Err("this is a multicast address; the first byte must be even");
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err("the all-zero address cannot be given to an interface");
    }
    Ok(mac)
}

/// The MAC Docker derives from an IPv4 address: 02:42 and the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> Mac {
    let [a, b, c, d] = ip.octets();
    Mac([0x02, 0x42, a, b, c, d])
}

/// The MTUs Linux accepts on an interface.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

pub fn mtu(text: &str) -> Result<u32, Option<String>> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Some("an MTU is a whole number of bytes".to_string()));
    }
    // All digits: a number too large for u32 is out of range, not malformed.
    let value: Option<u32> = text.parse().ok();
    value.filter(|mtu| MTU_RANGE.contains(mtu)).ok_or(None)
}

pub fn port(text: &str) -> Result<u16, &'static str> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or("a port is a number from 1 to 65535")
}

/// `HOSTPORT:PORT[/tcp|/udp]`, as `docker run -p` spells it.
pub fn published_port(text: &str, host_ip: Option<IpAddr>) -> Result<PublishedPort, String> {
    let (ports, protocol) = match text.rsplit_once('/') {
        Some((ports, "tcp")) => (ports, Protocol::Tcp),
        Some((ports, "udp")) => (ports, Protocol::Udp),
        Some((_, other)) => return Err(format!("unknown protocol `{other}`; use tcp or udp")),
        None => (text, Protocol::Tcp),
    };
    let (host_port, port_) = ports
        .split_once(':')
        .ok_or("ports are HOSTPORT:PORT, such as 8080:80 or 5353:53/udp")?;
    Ok(PublishedPort {
        host_ip,
        host_port: port(host_port)?,
        port: port(port_)?,
        protocol,
    })
}

/// The longest duration: a timeout is a wait, and a day is longer than any wait of cnm's.
const DURATION_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// `500ms`, `2s`, `1m`, or a plain number of seconds; at most [`DURATION_MAX`].
pub fn duration(text: &str) -> Result<Duration, &'static str> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err("a duration is a number and a unit, such as 500ms, 2s or 1m");
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        _ => return Err("a duration's unit is ms, s or m"),
    };
    const TOO_LONG: &str = "a duration is at most 1440m (one day)";
    // All digits: a number too large for u64 is too long, not malformed.
    let number: u64 = number.parse().map_err(|_| TOO_LONG)?;
    let duration = number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .filter(|d| *d <= DURATION_MAX);
    duration.ok_or(TOO_LONG)
}

/// `A..B` with whole numbers, A <= B, at most `limit` values.
pub fn range(text: &str, limit: u64) -> Result<(i64, i64), String> {
    let (start, end) = text
        .split_once("..")
        .ok_or("a range is START..END, such as 1..10")?;
    let start: i64 = start
        .parse()
        .map_err(|_| format!("`{start}` is not a whole number"))?;
    let end: i64 = end
        .parse()
        .map_err(|_| format!("`{end}` is not a whole number"))?;
    if start > end {
        return Err(format!("{start} is greater than {end}"));
    }
    if (end as i128 - start as i128) >= limit as i128 {
        return Err(format!("a loop runs at most {limit} times"));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("web-1.a_b").is_ok());
        assert_eq!(name("../etc"), Err("a name starts with a letter or a digit"));
        assert_eq!(name("a/b"), Err("a name cannot contain `/`"));
        assert_eq!(name("a..b"), Err("a name cannot contain `..`"));
        assert_eq!(name("a\0"), Err("a name cannot contain NUL"));
        assert_eq!(name(&"a".repeat(65)), Err("a name is at most 64 bytes"));
        assert!(name(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn subnets_must_be_network_addresses() {
        assert!(subnet4("10.1.0.0/24").is_ok());
        assert_eq!(
            subnet4("10.1.0.5/24").unwrap_err(),
            "host bits are set; the network address is 10.1.0.0/24"
        );
        assert!(subnet4("10.1.0.0/33").is_err());
        assert!(subnet4("10.1.0.0").is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(mac("02:42:AC:11:00:02").unwrap().to_string(), "02:42:ac:11:00:02");
        assert!(mac("01:00:5e:00:00:01").is_err());
        assert!(mac("02:42:ac:11:00").is_err());
        assert_eq!(
            mac_for("10.1.0.2".parse().unwrap()).to_string(),
            "02:42:0a:01:00:02"
        );
    }

    #[test]
    fn ports_and_durations() {
        let p = published_port("8080:80/udp", None).unwrap();
        assert_eq!((p.host_port, p.port, p.protocol), (8080, 80, Protocol::Udp));
        assert!(published_port("8080", None).is_err());
        assert!(published_port("0:80", None).is_err());
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("3"), Ok(Duration::from_secs(3)));
        assert!(duration("3h").is_err());
        assert_eq!(duration("1440m"), Ok(Duration::from_secs(86_400)));
        for too_long in [
            "1441m",
            "86401s",
            "86400001ms",
            "999999999999999999m",
            "18446744073709551616s",
        ] {
            assert_eq!(
                duration(too_long),
                Err("a duration is at most 1440m (one day)"),
                "{too_long}"
            );
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(range("1..3", 100), Ok((1, 3)));
        assert!(range("3..1", 100).is_err());
        assert!(range("1..x", 100).is_err());
        assert!(range("1..1000", 100).is_err());
        assert!(range("-9223372036854775808..9223372036854775807", 100).is_err());
    }
}
