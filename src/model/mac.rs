//! A MAC address: six bytes, written as lowercase colon hex (`02:42:0a:01:00:02`) on
//! screen, in state.json and in the journal alike.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// The MAC cnm gives the host-side links it names (bridges, veth host ends): from a
    /// hash of the name, locally administered and unicast. A link made again gets the
    /// same one, and a link that carries it is one cnm made (`cnm gc` reads it so).
    pub fn of_name(name: &str) -> Mac {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(name.as_bytes());
        let mut mac = [0x02, 0, 0, 0, 0, 0];
        mac[1..].copy_from_slice(&hash[..5]);
        Mac(mac)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for Mac {
    type Err = &'static str;

    /// Six pairs of hex digits, of either case, separated by `:`.
    fn from_str(text: &str) -> Result<Mac, Self::Err> {
        const FORM: &str = "a MAC address is six hex pairs, such as 02:42:0a:01:00:05";
        let mut bytes = [0u8; 6];
        let mut pairs = text.split(':');
        for byte in &mut bytes {
            let pair = pairs
                .next()
                .filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or(FORM)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| FORM)?;
        }
        match pairs.next() {
            Some(_) => Err(FORM),
            None => Ok(Mac(bytes)),
        }
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|reason| serde::de::Error::custom(format!("`{text}`: {reason}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_either_case_and_shows_lowercase() {
        let mac: Mac = "02:42:AC:11:00:0f".parse().unwrap();
        assert_eq!(mac.octets(), [0x02, 0x42, 0xac, 0x11, 0x00, 0x0f]);
        assert_eq!(mac.to_string(), "02:42:ac:11:00:0f");
        assert_eq!(serde_json::to_string(&mac).unwrap(), "\"02:42:ac:11:00:0f\"");
        assert_eq!(serde_json::from_str::<Mac>("\"02:42:ac:11:00:0f\"").unwrap(), mac);
        for bad in [
            "02:42:ac:11:00",
            "02:42:ac:11:00:0f:00",
            "2:42:ac:11:00:0f0",
            "02:42:ac:11:00:zz",
            "+2:42:ac:11:00:0f",
            "",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Mac>("\"not a mac\"").is_err());
    }
}
