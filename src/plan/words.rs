//! Plan text written piece by piece: addresses, MACs and numbers pushed onto a line as
//! `Display` would write them, without going through `core::fmt`, whose cost per
//! argument a plan of a hundred thousand lines feels.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

use crate::model::Mac;

/// Four decimal octets.
pub fn push_ipv4(text: &mut String, ip: Ipv4Addr) {
    for (at, octet) in ip.octets().into_iter().enumerate() {
        if at > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
}

/// An IPv6 address is rare enough in a plan to be formatted.
pub fn push_ip(text: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => push_ipv4(text, ip),
        IpAddr::V6(ip) => {
            use std::fmt::Write;
            let _ = write!(text, "{ip}");
        }
    }
}

/// `ADDRESS/PREFIX`.
pub fn push_network(text: &mut String, network: IpNetwork) {
    push_ip(text, network.ip());
    text.push('/');
    push_number(text, network.prefix().into());
}

pub fn push_number(text: &mut String, number: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    text.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// Lower-case hex pairs joined by `:`.
pub fn push_mac(text: &mut String, mac: Mac) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (at, byte) in mac.0.into_iter().enumerate() {
        if at > 0 {
            text.push(':');
        }
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(push: impl FnOnce(&mut String)) -> String {
        let mut text = String::from("x");
        push(&mut text);
        text
    }

    #[test]
    fn an_ipv4_address_is_written_as_display_writes_it() {
        for octet in 0..=u8::MAX {
            for ip in [
                Ipv4Addr::new(octet, 0, 0, 0),
                Ipv4Addr::new(0, octet, 9, 10),
                Ipv4Addr::new(100, 99, octet, 255),
                Ipv4Addr::new(1, 10, 200, octet),
            ] {
                assert_eq!(pushed(|t| push_ipv4(t, ip)), format!("x{ip}"));
            }
        }
    }

    #[test]
    fn networks_numbers_and_macs_are_written_as_display_writes_them() {
        for network in [
            "10.1.0.3/24",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "fd00::2/64",
            "::/0",
        ] {
            let network: IpNetwork = network.parse().unwrap();
            assert_eq!(pushed(|t| push_network(t, network)), format!("x{network}"));
        }
        for number in [0, 7, 10, 99, 100, 1500, 65535, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(pushed(|t| push_number(t, number)), format!("x{number}"));
        }
        for mac in [
            [0; 6],
            [0x02, 0x42, 0x0a, 0x01, 0x00, 0xff],
            [0xff; 6],
            [0xab, 0xcd, 0xef, 0x10, 0x09, 0x90],
        ] {
            assert_eq!(pushed(|t| push_mac(t, Mac(mac))), format!("x{}", Mac(mac)));
        }
    }
}
